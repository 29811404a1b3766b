//! The GPU's token mixers, one file each, and the one place that maps a
//! layer's `Mixer` to the buffers a batch keeps for it and to its recorded
//! forward. Adding a mixer here means: a file with its `GpuModel::record_*`
//! (heads come prepared by `record_heads`), a `LayerState` variant, and an
//! arm in each `match` below; its kernel goes in `shaders/` and `gpu::ops`.

pub(super) mod gated_delta;
pub(super) mod jet;
pub(super) mod lightning;
pub(super) mod softmax;

use super::buffers::buffer;
use super::model::GpuModel;
use super::pass::Layout;
use crate::config::Mixer;
use crate::gpu::recorder::Recorder;
use crate::model::mixer::conv_channels;

/// What one layer keeps for every sequence of a batch between calls.
pub(super) enum LayerState {
    /// Keys, values and log-sum-exps, `max_context` rows a sequence; the
    /// queries too with capture.
    Softmax {
        k: wgpu::Buffer,
        v: wgpu::Buffer,
        lse: wgpu::Buffer,
        q: Option<wgpu::Buffer>,
    },
    /// S_h of every query head, `[nh, dl, dl]` a sequence.
    Lightning { state: wgpu::Buffer },
    /// The convolution's last K-1 inputs `[K-1, C]` and S of every value
    /// head `[nv, dk, dv]`, a sequence.
    GatedDelta {
        hist: wgpu::Buffer,
        state: wgpu::Buffer,
    },
    /// A JetBlock's: the last K-1 inputs of its v `[K-1, nh dv]` and S of
    /// every head `[nh, dk, dv]`, a sequence.
    Jet {
        hist: wgpu::Buffer,
        state: wgpu::Buffer,
    },
}

impl GpuModel {
    /// A `mixer` layer's buffers for a batch of `n` sequences, zeroed.
    pub(super) fn layer_state(&self, mixer: Mixer, n: u32) -> LayerState {
        let gpu = self.gpu();
        let rows = n.max(1) as u64 * self.opts.max_context as u64;
        match mixer {
            Mixer::Softmax => {
                let a = &self.arch.attn;
                LayerState::Softmax {
                    k: buffer(gpu, "k cache", rows * a.kv_heads * a.head_dim * 4),
                    v: buffer(gpu, "v cache", rows * a.kv_heads * a.head_dim * 4),
                    lse: buffer(gpu, "lse", rows * a.heads * 4),
                    q: self
                        .opts
                        .capture
                        .then(|| buffer(gpu, "captured q", rows * a.heads * a.head_dim * 4)),
                }
            }
            Mixer::Lightning => {
                let l = &self.arch.lightning;
                LayerState::Lightning {
                    state: buffer(
                        gpu,
                        "state",
                        n.max(1) as u64 * l.heads * l.head_dim * l.head_dim * 4,
                    ),
                }
            }
            Mixer::GatedDelta | Mixer::Jet => {
                let g = &self.arch.gdn;
                let n = n.max(1) as u64;
                let hist = buffer(
                    gpu,
                    "conv history",
                    n * (g.conv_kernel - 1) * conv_channels(&self.arch, mixer) * 4,
                );
                let state = buffer(
                    gpu,
                    "state",
                    n * g.value_heads * g.key_dim * g.value_dim * 4,
                );
                match mixer {
                    Mixer::Jet => LayerState::Jet { hist, state },
                    _ => LayerState::GatedDelta { hist, state },
                }
            }
        }
    }

    /// Records layer `l`'s mixer over the pass's rows (normed in `h`),
    /// adding its projected output to the residual stream `x`.
    pub(super) fn record_mixer(
        &self,
        rec: &mut Recorder,
        l: usize,
        layout: &Layout,
        state: &LayerState,
    ) {
        match state {
            LayerState::Softmax { k, v, lse, q } => {
                self.record_softmax(rec, l, layout, [k, v, lse], q.as_ref())
            }
            LayerState::Lightning { state } => self.record_lightning(rec, l, layout, state),
            LayerState::GatedDelta { hist, state } => {
                self.record_gated_delta(rec, l, layout, [hist, state])
            }
            LayerState::Jet { hist, state } => self.record_jet(rec, l, layout, [hist, state]),
        }
    }
}
