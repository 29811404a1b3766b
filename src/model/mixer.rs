//! What every engine needs to know of each mixer, apart from how it
//! computes: which head settings it takes, and what a sequence keeps for
//! one of its layers (for sizing buffers and checking that a model fits).
//! With `config::Mixer` and each engine's `mixers/` folder, this is where
//! a new mixer is described.

use crate::config::{Arch, Mixer};
use crate::names::LayerNames;

/// The mixer's name in messages.
pub fn label(mixer: Mixer) -> &'static str {
    match mixer {
        Mixer::Softmax => "softmax",
        Mixer::Lightning => "Lightning",
        Mixer::GatedDelta => "gated delta",
        Mixer::Jet => "JetBlock",
    }
}

/// `Ok` when every value is finite; else the error that says where they
/// broke: layer `l`'s output (`Some(l)`) or the logits (`None`). A NaN or
/// an infinity never leaves the residual stream again, so the first layer
/// that shows one is where it began.
pub fn check_finite(arch: &Arch, layer: Option<usize>, values: &[f32]) -> crate::error::Result<()> {
    if values.iter().all(|v| v.is_finite()) {
        return Ok(());
    }
    let at = match layer {
        Some(l) => format!(
            "at layer {l} ({})",
            arch.mixers.get(l).map_or("?", |&m| label(m))
        ),
        None => "in the logits (the LM head)".into(),
    };
    Err(crate::error::Error::BrokeNumerically { at })
}

/// Refuses a model with a mixer that `engine` (its name in messages) does
/// not run yet, before it loads anything.
pub fn runs_all(arch: &Arch, engine: &str, runs: &[Mixer]) -> crate::error::Result<()> {
    match arch.mixers.iter().position(|m| !runs.contains(m)) {
        None => Ok(()),
        Some(l) => Err(crate::error::Error::Usage(format!(
            "{engine} does not run {} layers (layer {l}) yet: use --backend reference",
            label(arch.mixers[l])
        ))),
    }
}

/// The head sizes whose queries and keys some layer rotates, each once in
/// order of first use: the RoPE tables an engine makes.
pub fn rope_head_dims(arch: &Arch) -> Vec<u64> {
    let mut dims = Vec::new();
    for &m in &arch.mixers {
        let dh = arch.heads(m).head_dim;
        if rope_on(arch, m) && !dims.contains(&dh) {
            dims.push(dh);
        }
    }
    dims
}

/// Whether a `mixer` layer rotates its queries and keys (RoPE): each
/// mixer has its own switch in the config.
pub(crate) fn rope_on(arch: &Arch, mixer: Mixer) -> bool {
    match mixer {
        Mixer::Softmax => arch.attn_use_rope,
        Mixer::Lightning => arch.lightning_use_rope,
        Mixer::GatedDelta | Mixer::Jet => false,
    }
}

/// Whether a `mixer` layer's queries take the logits scaling (HyPE or a
/// constant): softmax attention's do, a linear mixer's state does not.
pub(crate) fn scales_queries(mixer: Mixer) -> bool {
    mixer == Mixer::Softmax
}

/// The projection whose sigmoid gates the mixer's output, when on (the
/// gated delta rule's z gates through its own norm, with SiLU: not here).
/// In Qwen3.5 the softmax layer's gate is the gate rows of `q_proj`, which
/// the engines read as `o_gate` ([`super::weights`]).
pub fn output_gate(arch: &Arch, mixer: Mixer, n: &LayerNames) -> Option<String> {
    match mixer {
        Mixer::Softmax if arch.attn_use_output_gate => Some(n.o_gate.clone()),
        Mixer::Lightning if arch.lightning_use_output_gate => Some(n.z_proj.clone()),
        _ => None,
    }
}

/// The RMSNorm over the mixer's whole output width, when on.
pub fn output_norm(arch: &Arch, mixer: Mixer, n: &LayerNames) -> Option<String> {
    (mixer == Mixer::Lightning && arch.lightning_use_output_norm).then(|| n.o_norm.clone())
}

/// The largest head size a mixer's GPU kernel holds in workgroup memory
/// (`MAX_DH` in attention.wgsl, `MAX_DK` in lightning.wgsl and in
/// the gated-delta kernels).
pub fn max_gpu_head_dim(mixer: Mixer) -> u64 {
    match mixer {
        Mixer::Softmax => 256,
        Mixer::Lightning | Mixer::GatedDelta | Mixer::Jet => 128,
    }
}

/// What one sequence keeps for one `mixer` layer on the GPU, in bytes:
/// buffers that grow with the context (`ctx` rows, each named for the
/// message when one outgrows a binding) and those of a fixed size.
pub struct GpuState {
    pub per_token: Vec<(&'static str, u64)>,
    pub fixed: u64,
}

pub fn gpu_state(arch: &Arch, mixer: Mixer, capture: bool) -> GpuState {
    match mixer {
        Mixer::Softmax => {
            let a = &arch.attn;
            let mut per_token = vec![
                (
                    "the KV cache of a softmax layer",
                    a.kv_heads * a.head_dim * 4,
                ),
                (
                    "the KV cache of a softmax layer",
                    a.kv_heads * a.head_dim * 4,
                ),
                ("the log-sum-exps of a softmax layer", a.heads * 4),
            ];
            if capture {
                per_token.push((
                    "the captured queries of a softmax layer",
                    a.heads * a.head_dim * 4,
                ));
            }
            GpuState {
                per_token,
                fixed: 0,
            }
        }
        Mixer::Lightning => {
            let l = &arch.lightning;
            GpuState {
                per_token: Vec::new(),
                fixed: l.heads * l.head_dim * l.head_dim * 4,
            }
        }
        Mixer::GatedDelta | Mixer::Jet => GpuState {
            per_token: Vec::new(),
            fixed: gdn_state_floats(arch, mixer) * 4,
        },
    }
}

/// Floats the CPU engines keep between steps for one sequence of `tokens`
/// in layer `l`: a softmax layer's KV cache (a sliding window's last
/// rows only, unless `capture` keeps them all) and the capture, or a
/// linear mixer's state. (Within a step, a window's cache also holds the
/// step's rows, as the pass's activations do.)
pub fn cpu_state_floats(arch: &Arch, l: usize, tokens: u64, capture: bool) -> u64 {
    let mixer = arch.mixers[l];
    match mixer {
        Mixer::Softmax => {
            let a = &arch.attn;
            let rows = match arch.window(l) {
                Some(w) if !capture => tokens.min(w),
                _ => tokens,
            };
            let captured = if capture {
                tokens * a.heads * (a.head_dim + 1)
            } else {
                0
            };
            rows * 2 * a.kv_heads * a.head_dim + captured
        }
        Mixer::Lightning => {
            let l = &arch.lightning;
            l.heads * l.head_dim * l.head_dim
        }
        Mixer::GatedDelta | Mixer::Jet => gdn_state_floats(arch, mixer),
    }
}

/// A gated-delta layer's state: S `[nv, dk, dv]` and the convolution's
/// last K-1 inputs `[K-1, C]` (q, k and v in Qwen3.5; v in a JetBlock).
fn gdn_state_floats(arch: &Arch, mixer: Mixer) -> u64 {
    let g = &arch.gdn;
    g.value_heads * g.key_dim * g.value_dim + (g.conv_kernel - 1) * conv_channels(arch, mixer)
}

/// The channels a gated-delta layer's convolution runs over: q, k and v
/// in Qwen3.5, v alone in a JetBlock.
pub fn conv_channels(arch: &Arch, mixer: Mixer) -> u64 {
    match mixer {
        Mixer::Jet => arch.gdn.value_width(),
        _ => arch.gdn.conv_channels(),
    }
}

/// FLOPs (2 per multiply-add) one token spends in a `mixer` layer beyond
/// its projections, at a context of `tokens`: softmax attention reads
/// half the context on average; a linear mixer's state costs no more than
/// a projection and is left out.
pub fn mixing_flops(arch: &Arch, mixer: Mixer, tokens: u32) -> f64 {
    match mixer {
        Mixer::Softmax => {
            2.0 * 2.0 * (arch.attn.heads * arch.attn.head_dim) as f64 * tokens as f64 / 2.0
        }
        Mixer::Lightning | Mixer::GatedDelta | Mixer::Jet => 0.0,
    }
}
