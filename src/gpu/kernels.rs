//! The WGSL kernels: their sources (one family per file in `shaders/`,
//! with the preludes they need prepended: `packed.wgsl` to those that read
//! checkpoint weights, `segments.wgsl` to those that take a batch by
//! segments) and a cache of compiled pipelines, one per kernel and weight
//! dtype.

use std::cell::RefCell;
use std::collections::HashMap;

use super::device::Gpu;
use crate::error::{Error, Result};
use crate::safetensors::Dtype;

/// Files prepended to the kernel files that name them, by file name: naga
/// has no `#include`, and one definition cannot drift the way copies do.
pub const PRELUDES: &[(&str, &str)] = &[
    ("packed", include_str!("../../shaders/packed.wgsl")),
    ("segments", include_str!("../../shaders/segments.wgsl")),
];

/// The prelude that decodes packed weights: its kernels are compiled once
/// per weight dtype (`W_DTYPE`).
const PACKED: &str = "packed";

/// Shader files: (name, source, preludes prepended, in order).
const FILES: &[(&str, &str, &[&str])] = &[
    (
        "unpack",
        include_str!("../../shaders/unpack.wgsl"),
        &[PACKED],
    ),
    (
        "matmul",
        include_str!("../../shaders/matmul.wgsl"),
        &[PACKED],
    ),
    ("norm", include_str!("../../shaders/norm.wgsl"), &[PACKED]),
    ("heads", include_str!("../../shaders/heads.wgsl"), &[PACKED]),
    ("bias", include_str!("../../shaders/bias.wgsl"), &[PACKED]),
    ("embed", include_str!("../../shaders/embed.wgsl"), &[PACKED]),
    (
        "elementwise",
        include_str!("../../shaders/elementwise.wgsl"),
        &[],
    ),
    ("argmax", include_str!("../../shaders/argmax.wgsl"), &[]),
    (
        "attention",
        include_str!("../../shaders/attention.wgsl"),
        &["segments"],
    ),
    (
        "lightning",
        include_str!("../../shaders/lightning.wgsl"),
        &["segments"],
    ),
    (
        "gated_delta",
        include_str!("../../shaders/gated_delta.wgsl"),
        &["segments"],
    ),
    (
        "dynamic_conv",
        include_str!("../../shaders/dynamic_conv.wgsl"),
        &["segments"],
    ),
    ("routing", include_str!("../../shaders/routing.wgsl"), &[]),
    ("rows", include_str!("../../shaders/rows.wgsl"), &[]),
];

/// Every kernel's complete WGSL source, by file name (for validation).
pub fn sources() -> Vec<(&'static str, String)> {
    FILES
        .iter()
        .map(|&(name, src, preludes)| (name, compose(src, preludes)))
        .collect()
}

fn compose(src: &str, preludes: &[&str]) -> String {
    let mut out = String::new();
    for name in preludes {
        let (_, prelude) = PRELUDES
            .iter()
            .find(|p| p.0 == *name)
            .expect("every prelude is listed");
        out.push_str(prelude);
        out.push('\n');
    }
    out.push_str(src);
    out
}

/// How a weight tensor is stored, as the shaders' `W_DTYPE` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WDtype {
    F32 = 0,
    Bf16 = 1,
    F16 = 2,
}

impl WDtype {
    pub fn of(dtype: Dtype, tensor: &str) -> Result<WDtype> {
        match dtype {
            Dtype::F32 => Ok(WDtype::F32),
            Dtype::BF16 => Ok(WDtype::Bf16),
            Dtype::F16 => Ok(WDtype::F16),
            other => Err(Error::UnsupportedDtype {
                tensor: tensor.into(),
                dtype: other.to_string(),
                what: "the GPU engine".into(),
            }),
        }
    }

    pub fn bytes(self) -> u64 {
        if self == WDtype::F32 {
            4
        } else {
            2
        }
    }
}

/// A kernel: an entry point of one shader file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    Unpack,
    Matmul,
    Matvec,
    RmsNorm,
    Heads,
    Bias,
    Embed,
    Swiglu,
    Gate,
    Silu,
    Argmax,
    Attend,
    AttendPartial,
    AttendCombine,
    LightningChunk,
    LightningPartState,
    LightningCarryIn,
    LightningStep,
    GdnConv,
    GdnConvKeep,
    GdnPrepare,
    GdnRecur,
    GdnWy,
    GdnChunk,
    GdnPartState,
    GdnCarry,
    GdnNorm,
    DynConv,
    DynConvKeep,
    RowStats,
    CopyRows,
}

impl Kernel {
    /// The shader file (without `.wgsl`) whose entry point this is.
    pub fn file(self) -> &'static str {
        self.entry().0
    }

    fn entry(self) -> (&'static str, &'static str) {
        match self {
            Kernel::Unpack => ("unpack", "unpack"),
            Kernel::Matmul => ("matmul", "matmul"),
            Kernel::Matvec => ("matmul", "matvec"),
            Kernel::RmsNorm => ("norm", "rmsnorm"),
            Kernel::Heads => ("heads", "prepare"),
            Kernel::Bias => ("bias", "bias"),
            Kernel::Embed => ("embed", "embed"),
            Kernel::Swiglu => ("elementwise", "swiglu"),
            Kernel::Gate => ("elementwise", "gate"),
            Kernel::Silu => ("elementwise", "silu"),
            Kernel::Argmax => ("argmax", "argmax"),
            Kernel::Attend => ("attention", "attend"),
            Kernel::AttendPartial => ("attention", "partial"),
            Kernel::AttendCombine => ("attention", "combine"),
            Kernel::LightningChunk => ("lightning", "chunk"),
            Kernel::LightningPartState => ("lightning", "part_state"),
            Kernel::LightningCarryIn => ("lightning", "carry_in"),
            Kernel::LightningStep => ("lightning", "step"),
            Kernel::GdnConv => ("gated_delta", "conv"),
            Kernel::GdnConvKeep => ("gated_delta", "conv_keep"),
            Kernel::GdnPrepare => ("gated_delta", "prepare"),
            Kernel::GdnRecur => ("gated_delta", "recur"),
            Kernel::GdnWy => ("gated_delta", "wy"),
            Kernel::GdnChunk => ("gated_delta", "chunk"),
            Kernel::GdnPartState => ("gated_delta", "part_state"),
            Kernel::GdnCarry => ("gated_delta", "carry"),
            Kernel::GdnNorm => ("gated_delta", "gated_norm"),
            Kernel::DynConv => ("dynamic_conv", "conv"),
            Kernel::DynConvKeep => ("dynamic_conv", "conv_keep"),
            Kernel::RowStats => ("routing", "row_stats"),
            Kernel::CopyRows => ("rows", "copy_rows"),
        }
    }
}

/// Compiled pipelines, made on first use.
pub struct Kernels {
    gpu: Gpu,
    modules: RefCell<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: RefCell<HashMap<(Kernel, WDtype), wgpu::ComputePipeline>>,
}

impl Kernels {
    pub fn new(gpu: &Gpu) -> Kernels {
        Kernels {
            gpu: gpu.clone(),
            modules: Default::default(),
            pipelines: Default::default(),
        }
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The pipeline of `kernel` for weights stored as `dtype` (ignored by
    /// kernels without weights).
    pub fn pipeline(&self, kernel: Kernel, dtype: WDtype) -> wgpu::ComputePipeline {
        let (file, entry) = kernel.entry();
        let &(_, src, preludes) = FILES
            .iter()
            .find(|f| f.0 == file)
            .expect("every kernel's file is listed");
        let packed = preludes.contains(&PACKED);
        let dtype = if packed { dtype } else { WDtype::F32 };
        if let Some(p) = self.pipelines.borrow().get(&(kernel, dtype)) {
            return p.clone();
        }
        let module = self
            .modules
            .borrow_mut()
            .entry(file)
            .or_insert_with(|| {
                let desc = wgpu::ShaderModuleDescriptor {
                    label: Some(file),
                    source: wgpu::ShaderSource::Wgsl(
                        compose(
                            &tuning_source(file).unwrap_or_else(|| src.to_string()),
                            preludes,
                        )
                        .into(),
                    ),
                };
                if unchecked_shaders() {
                    // SAFETY: every kernel guards its own indices against the
                    // sizes in its parameters (the tests run them checked).
                    unsafe {
                        self.gpu.device.create_shader_module_trusted(
                            desc,
                            wgpu::ShaderRuntimeChecks::unchecked(),
                        )
                    }
                } else {
                    self.gpu.device.create_shader_module(desc)
                }
            })
            .clone();
        let constants = [("W_DTYPE", dtype as u32 as f64)];
        let pipeline = self
            .gpu
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: if packed { &constants } else { &[] },
                    // Every kernel writes what it later reads.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        self.pipelines
            .borrow_mut()
            .insert((kernel, dtype), pipeline.clone());
        pipeline
    }
}

/// QKLAB_SHADER_DIR=DIR (native only) takes `DIR/FILE.wgsl` where it
/// exists instead of the compiled-in kernel: kernel variants can be timed
/// on a GPU machine with one binary. Such runs are for tuning only; the
/// tests and the page use the compiled-in sources.
fn tuning_source(file: &str) -> Option<String> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let dir = std::env::var_os("QKLAB_SHADER_DIR")?;
        std::fs::read_to_string(std::path::Path::new(&dir).join(format!("{file}.wgsl"))).ok()
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = file;
        None
    }
}

/// QKLAB_UNCHECKED_SHADERS=1 (native only) compiles kernels without the
/// bounds checks wgpu adds to every array access, to measure what they cost.
fn unchecked_shaders() -> bool {
    #[cfg(not(target_arch = "wasm32"))]
    return std::env::var("QKLAB_UNCHECKED_SHADERS").as_deref() == Ok("1");
    #[cfg(target_arch = "wasm32")]
    false
}
