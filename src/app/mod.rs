//! The use cases, written once for both faces: the CLI (`src/cli/`) and
//! the page (`src/web/`) open their inputs, report progress and render,
//! and everything in between is here.
//!
//! - [`model`]: open a checkpoint with its tokenizer, and load it into an
//!   engine on the backend asked for.
//! - [`sweep`]: a NIAH sweep over several models (prompts, HyPE per
//!   length, resume, cancel, progress).
//! - [`routing`]: where the softmax heads look on one prompt, for several
//!   models, and how they compare.
//! - [`merge`]: merge a pair, in steps a progress bar can show.
//! - [`tune`]: the recall and retention front of a pair's merges.
//! - [`layers`]: which softmax layers carry retrieval, by leave-one-out ablation.
//! - [`answers`]: a model's exact match on prompts with answers, by greedy decoding.
//! - [`demo`]: the results recorded with the demo pair.

pub mod answers;
pub mod demo;
pub mod layers;
pub mod merge;
pub mod model;
pub mod routing;
pub mod sweep;
pub mod tune;
