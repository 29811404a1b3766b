//! Per pass, the position of each row, its segment and where its key and
//! value go in the caches, written into the batch's layout buffers.

use super::batch::GpuBatch;
use super::buffers::buffer;
use super::model::GpuModel;
use super::pass::{Layout, LayoutBuffers, Piece};
use crate::gpu::params::Seg;

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
        let to_cache: Vec<[u32; 2]> = segs
            .iter()
            .flat_map(|s| (0..s.rows).map(move |i| [s.row0 + i, s.slot * ctx + s.pos0 + i]))
            .collect();
        gpu.queue
            .write_buffer(&bufs.positions, 0, bytemuck::cast_slice(&positions));
        gpu.queue
            .write_buffer(&bufs.segs, 0, bytemuck::cast_slice(segs));
        gpu.queue
            .write_buffer(&bufs.to_cache, 0, bytemuck::cast_slice(&to_cache));
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
                let seg = Seg {
                    row0,
                    rows: p.ids.len() as u32,
                    slot: p.seq as u32,
                    pos0: pos[p.seq],
                };
                row0 += seg.rows;
                pos[p.seq] += seg.rows;
                seg
            })
            .collect()
    }
}
