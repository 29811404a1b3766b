//! What one sequence carries from one step of the CPU engine to the next.

use super::mixers::SeqLayer;
use crate::model::cpu::Captured;

/// One sequence's state: its position and, per layer, what later tokens
/// read (the softmax layers' K and V, the Lightning layers' S).
#[derive(Clone)]
pub struct FastSeq {
    pub(super) pos: usize,
    pub(super) layers: Vec<SeqLayer>,
    pub(super) attn_dims: (usize, usize, usize),
}

impl FastSeq {
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Softmax layer `layer`'s capture (queries as they entered the dot
    /// products and log-sum-exps), as the reference's.
    pub fn captured(&self, layer: usize) -> Option<Captured<'_>> {
        self.layers.get(layer)?.captured(self.pos, self.attn_dims)
    }

    /// Lightning layer `layer`'s state `[nh, dl, dl]`.
    pub fn lightning_state(&self, layer: usize) -> Option<&[f32]> {
        self.layers.get(layer)?.lightning_state()
    }
}
