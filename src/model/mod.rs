//! The HypeNet model (`../shared/SPEC-hypenet.md`). `cpu` is the plain f32
//! reference: the oracle for the GPU kernels and the fallback without WebGPU.

pub mod calls;
pub mod cpu;
pub mod engine;
pub mod fast;
pub mod fit;
pub mod gpu;
pub mod mixer;
mod par;
pub mod rowstats;
mod simd;
pub mod weights;
