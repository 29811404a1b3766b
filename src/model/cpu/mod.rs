//! HypeNet in plain f32 Rust, written to be read next to SPEC-hypenet.md:
//! one function per formula, shapes in comments, no tricks.
//!
//! Everything runs through [`CpuModel::step`]: new tokens at their absolute
//! positions against a [`CpuState`] that holds what the past contributes (the
//! softmax layers' KV cache, the Lightning layers' states S). Prefill is a
//! step on a fresh state, decoding is a step of one token; both compute the
//! same numbers, so the pieces a sequence is cut into do not change its
//! logits. With `capture`, the state also keeps each softmax layer's queries
//! and log-sum-exps, enough to rebuild every attention probability (the
//! oracle for the GPU attention kernels).

mod math;
mod mixers;
mod model;
mod sequence;
mod state;
mod step;

pub(crate) use math::query_scale;
pub use math::{alibi_slopes, argmax};
pub use mixers::softmax::Captured;
pub use model::CpuModel;
pub use sequence::{LayerKeeps, Sequence};
pub use state::CpuState;
