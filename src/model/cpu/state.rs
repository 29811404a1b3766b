//! What a sequence carries from one step of the reference to the next.

use super::mixers::softmax::Captured;
use super::mixers::LayerState;

/// What decoding carries from one [`CpuModel::step`] to the next: the number
/// of tokens already processed and, per layer, everything later tokens read
/// from them. Made by [`CpuModel::new_state`] and only valid for that model.
#[derive(Clone)]
pub struct CpuState {
    pub(super) pos: usize,
    pub(super) layers: Vec<LayerState>,
    /// Softmax head layout (heads, kv_heads, head_dim), for [`Captured`].
    pub(super) attn_dims: (usize, usize, usize),
}

impl CpuState {
    /// Tokens processed so far; the next token goes to this absolute position.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The capture of softmax layer `layer`; `None` for another mixer or
    /// a state made without capture.
    pub fn captured(&self, layer: usize) -> Option<Captured<'_>> {
        self.layers.get(layer)?.captured(self.pos, self.attn_dims)
    }

    /// Lightning layer `layer`'s state `[nh, dl, dl]` (`S_h[i][j]`, i over
    /// the key dim, j over the value dim); `None` for another mixer.
    pub fn lightning_state(&self, layer: usize) -> Option<&[f32]> {
        self.layers.get(layer)?.lightning_state()
    }
}
