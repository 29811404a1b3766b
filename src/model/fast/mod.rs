//! The CPU engine: HypeNet over a batch of sequences at once, fast. The
//! tokens of every sequence in a step are packed into one matrix of rows,
//! so each projection is one matrix product (matrixmultiply's sgemm: AVX2
//! and FMA natively, SIMD128 in wasm); attention and Lightning run per
//! (sequence, head), in blocks that are matrix products too, on every core
//! natively (rayon) and on one in the browser. Lightning and gated-delta
//! prefill use the chunked forms of their recurrences.
//!
//! The plain reference in `cpu/` is its oracle: the same numbers up to
//! the order of summation (tests/model_fast.rs holds them within 1e-5).

mod blas;
mod mixers;
mod model;
mod pass;
mod rope;
mod seq;
mod step;

pub use model::FastModel;
pub use seq::FastSeq;
