//! What a sequence carries from one step of a CPU engine to the next: the
//! tokens it has processed and, per layer, what later tokens read of them.
//! The reference and the CPU engine keep different things per layer (their
//! `mixers/` say what) behind the same accessors.

use std::ops::Range;

use super::mixers::softmax::Captured;

/// What the accessors of a [`Sequence`] read of one of its layers.
pub trait LayerKeeps {
    /// A softmax layer's capture after `pos` tokens of heads laid out as
    /// `(heads, kv_heads, head_dim)`; `None` for another mixer or no capture.
    fn captured(&self, pos: usize, dims: (usize, usize, usize)) -> Option<Captured<'_>>;
    /// A Lightning layer's state `[nh, dl, dl]`; `None` for another mixer.
    fn lightning_state(&self) -> Option<&[f32]>;
    /// The positions a softmax layer's KV cache holds, its heads laid out
    /// as `(heads, kv_heads, head_dim)`; `None` for another mixer.
    fn cached(&self, dims: (usize, usize, usize)) -> Option<Range<usize>>;
}

/// One sequence's position and, per layer, what later tokens read (the
/// softmax layers' K and V, the Lightning layers' S). Made by its model's
/// `new_state` / `new_seq` and only valid for that model.
#[derive(Clone)]
pub struct Sequence<L> {
    pub(crate) pos: usize,
    pub(crate) layers: Vec<L>,
    /// Softmax head layout (heads, kv_heads, head_dim), for [`Captured`].
    pub(crate) attn_dims: (usize, usize, usize),
}

impl<L: LayerKeeps> Sequence<L> {
    /// Tokens processed so far; the next token goes to this absolute position.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The capture of softmax layer `layer` (queries as they entered the
    /// dot products, log-sum-exps); `None` for another mixer or a state
    /// made without capture.
    pub fn captured(&self, layer: usize) -> Option<Captured<'_>> {
        self.layers.get(layer)?.captured(self.pos, self.attn_dims)
    }

    /// Lightning layer `layer`'s state `[nh, dl, dl]` (`S_h[i][j]`, i over
    /// the key dim, j over the value dim); `None` for another mixer.
    pub fn lightning_state(&self, layer: usize) -> Option<&[f32]> {
        self.layers.get(layer)?.lightning_state()
    }

    /// The positions whose keys and values softmax layer `layer` keeps:
    /// all so far, but in a sliding-window layer of a sequence without
    /// capture, which keeps the last `window - 1`, all the next token sees.
    /// `None` for another mixer.
    pub fn cached(&self, layer: usize) -> Option<Range<usize>> {
        self.layers.get(layer)?.cached(self.attn_dims)
    }
}
