//! What one sequence carries from one step of the CPU engine to the next:
//! the reference's [`Sequence`] over the CPU engine's own layer states.

use super::mixers::SeqLayer;
use crate::model::cpu::Sequence;

/// One sequence's state in the CPU engine.
pub type FastSeq = Sequence<SeqLayer>;
