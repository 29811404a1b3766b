//! The HypeNet model (`../shared/SPEC-hypenet.md`). `cpu` is the plain f32
//! reference: the oracle for the GPU kernels and the fallback without WebGPU.

pub mod cpu;
pub mod engine;
pub mod fast;
pub mod fit;
pub mod gpu;
mod par;
pub mod rowstats;
mod simd;

use crate::config::{Arch, Mixer};

/// Whether a `mixer` layer rotates its queries and keys (RoPE): each
/// mixer has its own switch in the config.
pub(crate) fn rope_on(arch: &Arch, mixer: Mixer) -> bool {
    match mixer {
        Mixer::Softmax => arch.attn_use_rope,
        Mixer::Lightning => arch.lightning_use_rope,
    }
}

/// Whether a `mixer` layer's queries take the logits scaling (HyPE or a
/// constant): softmax attention's do, a linear mixer's state does not.
pub(crate) fn scales_queries(mixer: Mixer) -> bool {
    mixer == Mixer::Softmax
}
