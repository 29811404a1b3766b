//! Repair with a dial: the family of merges between sft and QK-Restore
//! (method, QK-Pro's beta, the softmax layers touched), each scored for
//! long-context recall and for what it keeps of the fine-tune, and the
//! Pareto front of the two (`qklab tune`, the page's Tune step).
//!
//! - [`grid`]: the candidates a tune tries.
//! - [`retention`]: the scores of what SFT taught (answers, agreement).
//! - [`front`]: the Pareto front and the recommended point.
//!
//! The run itself (load sft once, swap each candidate's tensors in) is
//! the use case in `crate::app::tune`.

pub mod front;
pub mod grid;
pub mod retention;
