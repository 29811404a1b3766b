//! A pass: every sequence's new tokens cut into passes of at most a chunk
//! of rows, and the buffers that say where each row of a pass sits.

use crate::gpu::ops::Segments;

/// One sequence's tokens in a pass.
pub(super) struct Piece<'a> {
    pub(super) seq: usize,
    pub(super) ids: &'a [u32],
    /// Whether the sequence's input ends with this piece.
    pub(super) last: bool,
}

/// The buffers of one layout, sized for a pass of `chunk` rows.
#[derive(Clone)]
pub(super) struct LayoutBuffers {
    pub(super) positions: wgpu::Buffer,
    pub(super) segs: wgpu::Buffer,
    pub(super) to_cache: wgpu::Buffer,
    pub(super) head_rows: wgpu::Buffer,
}

/// A pass's packed rows on the GPU: positions per row, segments, and
/// where each row's key and value go in the caches.
pub(super) struct Layout {
    pub(super) rows: u32,
    /// Rows whose logits the head computes, by (packed row, logits row).
    pub(super) head_rows: wgpu::Buffer,
    pub(super) positions: wgpu::Buffer,
    pub(super) segs: wgpu::Buffer,
    pub(super) count: u32,
    pub(super) max_rows: u32,
    pub(super) max_end: u32,
    /// (packed row, cache row) for every row.
    pub(super) to_cache: wgpu::Buffer,
}

impl Layout {
    pub(super) fn segments(&self) -> Segments<'_> {
        Segments {
            segs: &self.segs,
            count: self.count,
            max_rows: self.max_rows,
            max_end: self.max_end,
        }
    }
}

/// Cuts every sequence's tokens into passes of at most `chunk` rows,
/// filling each pass with as many sequences as fit.
pub(super) fn plan_passes<'a>(ids: &[&'a [u32]], chunk: usize) -> Vec<Vec<Piece<'a>>> {
    let mut passes: Vec<Vec<Piece>> = Vec::new();
    let mut room = 0;
    for (seq, t) in ids.iter().enumerate() {
        let mut at = 0;
        while at < t.len() {
            if room == 0 {
                passes.push(Vec::new());
                room = chunk;
            }
            let n = room.min(t.len() - at);
            passes.last_mut().expect("a pass was opened").push(Piece {
                seq,
                ids: &t[at..at + n],
                last: at + n == t.len(),
            });
            at += n;
            room -= n;
        }
    }
    passes
}
