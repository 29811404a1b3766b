//! What a sequence carries from one step of the reference to the next.

use super::mixers::LayerState;
use super::sequence::Sequence;

/// What decoding carries from one `CpuModel::step` to the next.
pub type CpuState = Sequence<LayerState>;
