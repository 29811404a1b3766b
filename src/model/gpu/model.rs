//! The GPU engine's model: weights uploaded packed, the scratch a pass
//! works in, RoPE tables and Lightning's slopes, and the pass size.

use std::collections::HashMap;

use crate::config::Arch;
use crate::gpu::kernels::Kernels;
use crate::gpu::weights::GpuWeight;
use crate::gpu::Gpu;
use crate::model::fit::{EngineOptions, Footprint};
use crate::names::LayerNames;

pub(super) struct Scratch {
    pub(super) ids: wgpu::Buffer,
    pub(super) x: wgpu::Buffer,
    pub(super) h: wgpu::Buffer,
    pub(super) q: wgpu::Buffer,
    pub(super) k: wgpu::Buffer,
    pub(super) v: wgpu::Buffer,
    pub(super) o: wgpu::Buffer,
    pub(super) o2: wgpu::Buffer,
    pub(super) gate: wgpu::Buffer,
    pub(super) up: wgpu::Buffer,
    pub(super) logits: wgpu::Buffer,
    pub(super) argmax: wgpu::Buffer,
    /// Bound where a kernel's optional input is switched off.
    pub(super) dummy: wgpu::Buffer,
}

pub struct GpuModel {
    pub arch: Arch,
    pub footprint: Footprint,
    pub(super) opts: EngineOptions,
    pub(super) kernels: Kernels,
    pub(super) w: HashMap<String, GpuWeight>,
    /// Each layer's tensor names.
    pub(super) names: Vec<LayerNames>,
    pub(super) s: Scratch,
    /// RoPE cos/sin tables by head size, for max_context positions.
    pub(super) rope: HashMap<u64, wgpu::Buffer>,
    pub(super) slopes: wgpu::Buffer,
    /// Rows per prefill pass: the plan's chunk, or fewer where the GPU is
    /// slow enough that a full one would run past a watchdog.
    pub(super) pass_rows: std::cell::Cell<u32>,
}

impl GpuModel {
    pub fn gpu(&self) -> &Gpu {
        self.kernels.gpu()
    }

    /// Keeps prefill passes to at most `rows` rows (at least 16, at most
    /// the plan's chunk).
    pub fn limit_pass_rows(&self, rows: u32) {
        self.pass_rows.set(rows.clamp(16, self.footprint.chunk));
    }

    /// Rows per prefill pass now.
    pub fn pass_rows(&self) -> u32 {
        self.pass_rows.get()
    }

    /// Sequences of up to `tokens` tokens a batch takes (all of the
    /// plan's slots: caches are sized for max_context).
    pub fn max_batch(&self, tokens: u32) -> u32 {
        if tokens > self.opts.max_context {
            return 1;
        }
        self.footprint.slots
    }

    pub(super) fn weight(&self, name: &str) -> &GpuWeight {
        // Every expected tensor was uploaded by `load`.
        &self.w[name]
    }
}
