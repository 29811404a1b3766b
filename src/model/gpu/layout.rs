//! How a pass's rows are laid out on the GPU: every sequence's new tokens
//! cut into passes of at most a chunk of rows, and per pass the position
//! of each row, its segment and where its key and value go in the caches.

use super::{buffer, GpuBatch, GpuModel};
use crate::gpu::ops::Segments;
use crate::gpu::params::Seg;

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
        Segments { segs: &self.segs, count: self.count, max_rows: self.max_rows, max_end: self.max_end }
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
            passes.last_mut().expect("a pass was opened").push(Piece { seq, ids: &t[at..at + n], last: at + n == t.len() });
            at += n;
            room -= n;
        }
    }
    passes
}

impl GpuModel {
    /// Writes where the rows of a pass go (`segs`, packed in order) into
    /// the batch's layout buffers number `index`.
    pub(super) fn layout(&self, b: &GpuBatch, index: usize, segs: &[Seg]) -> Layout {
        let gpu = self.gpu();
        let ctx = self.opts.max_context;
        let mut pool = b.layouts.borrow_mut();
        while pool.len() <= index {
            let rows = self.footprint.chunk as u64;
            pool.push(LayoutBuffers {
                positions: buffer(gpu, "positions", rows * 4),
                segs: buffer(gpu, "segments", rows * std::mem::size_of::<Seg>() as u64),
                to_cache: buffer(gpu, "to cache", rows * 8),
                head_rows: buffer(gpu, "head rows", rows * 8),
            });
        }
        let bufs = pool[index].clone();
        let rows: u32 = segs.iter().map(|s| s.rows).sum();
        debug_assert!(rows <= self.footprint.chunk && segs.len() as u32 <= self.footprint.chunk);
        let positions: Vec<u32> = segs.iter().flat_map(|s| s.pos0..s.pos0 + s.rows).collect();
        let to_cache: Vec<[u32; 2]> = segs.iter().flat_map(|s| (0..s.rows).map(move |i| [s.row0 + i, s.slot * ctx + s.pos0 + i])).collect();
        gpu.queue.write_buffer(&bufs.positions, 0, bytemuck::cast_slice(&positions));
        gpu.queue.write_buffer(&bufs.segs, 0, bytemuck::cast_slice(segs));
        gpu.queue.write_buffer(&bufs.to_cache, 0, bytemuck::cast_slice(&to_cache));
        Layout {
            rows,
            head_rows: bufs.head_rows,
            positions: bufs.positions,
            segs: bufs.segs,
            count: segs.len() as u32,
            max_rows: segs.iter().map(|s| s.rows).max().unwrap_or(0),
            max_end: segs.iter().map(|s| s.pos0 + s.rows).max().unwrap_or(0),
            to_cache: bufs.to_cache,
        }
    }

    /// The segments of a pass of `pieces`, packed in order.
    pub(super) fn segments_of(b: &GpuBatch, pieces: &[Piece]) -> Vec<Seg> {
        let mut row0 = 0;
        let mut pos: Vec<u32> = b.pos.clone();
        pieces
            .iter()
            .map(|p| {
                let seg = Seg { row0, rows: p.ids.len() as u32, slot: p.seq as u32, pos0: pos[p.seq] };
                row0 += seg.rows;
                pos[p.seq] += seg.rows;
                seg
            })
            .collect()
    }
}
