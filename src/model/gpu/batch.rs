//! A batch of sequences on the GPU and what each keeps between calls.

use super::mixers::LayerState;
use super::pass::LayoutBuffers;
use crate::gpu::recorder::BindCache;

/// A batch of sequences on the GPU: each has a slot in every layer's
/// caches (`max_context` rows) and Lightning states, and its position.
pub struct GpuBatch {
    pub(super) pos: Vec<u32>,
    pub(super) layers: Vec<LayerState>,
    /// The session's parameter buffer and bind groups, reused by every
    /// pass and step that records the same dispatches again.
    pub(super) binds: BindCache,
    /// Where the layouts of passes go: entry i serves the i-th layout of
    /// one submission (decode records several steps in one), so that the
    /// same buffers, and bind groups, serve every call.
    pub(super) layouts: std::cell::RefCell<Vec<LayoutBuffers>>,
}

impl GpuBatch {
    pub fn len(&self) -> usize {
        self.pos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pos.is_empty()
    }

    /// Tokens sequence `i` has processed.
    pub fn pos(&self, i: usize) -> u32 {
        self.pos[i]
    }
}
