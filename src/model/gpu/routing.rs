//! What routing reads back of a softmax layer: its captured queries, keys
//! and log-sum-exps, or their reductions computed on the GPU.

use super::batch::GpuBatch;
use super::buffers::buffer;
use super::mixers::LayerState;
use super::model::GpuModel;
use crate::error::{Error, Result};
use crate::gpu::ops::{self, RowStatsShape};
use crate::gpu::read_buffer;
use crate::gpu::recorder::Recorder;
use crate::model::rowstats::RowStats;

/// What a softmax layer kept of sequence 0, read back: queries (after
/// norm, RoPE and HyPE) and keys `[pos, heads * dh]` / `[pos, kv_heads * dh]`,
/// and the log-sum-exp of the scaled logits `[pos, heads]`.
pub struct Captured {
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub lse: Vec<f32>,
}

impl GpuModel {
    /// Reads back what softmax layer `layer` kept of sequence 0 (needs `capture`).
    pub async fn captured(&self, s: &GpuBatch, layer: usize) -> Result<Captured> {
        let Some(LayerState::Softmax {
            k, lse, q: Some(q), ..
        }) = s.layers.get(layer)
        else {
            return Err(Error::Usage(format!(
                "layer {layer} is not a softmax layer of a session with capture on"
            )));
        };
        let a = &self.arch.attn;
        let pos = s.pos[0] as u64;
        let read = |b, width: u64| read_buffer(self.gpu(), b, (pos * width * 4).max(4));
        let floats =
            |v: Vec<u8>, n: u64| bytemuck::cast_slice::<u8, f32>(&v)[..n as usize].to_vec();
        Ok(Captured {
            q: floats(
                read(q, a.heads * a.head_dim).await?,
                pos * a.heads * a.head_dim,
            ),
            k: floats(
                read(k, a.kv_heads * a.head_dim).await?,
                pos * a.kv_heads * a.head_dim,
            ),
            lse: floats(read(lse, a.heads).await?, pos * a.heads),
        })
    }

    /// Routing reductions of softmax layer `layer` over everything sequence
    /// 0 has seen (needs `capture`), computed on the GPU.
    pub async fn routing_stats(
        &self,
        s: &GpuBatch,
        layer: usize,
        block: u32,
        needle: std::ops::Range<u32>,
    ) -> Result<RowStats> {
        let Some(LayerState::Softmax {
            k, lse, q: Some(q), ..
        }) = s.layers.get(layer)
        else {
            return Err(Error::Usage(format!(
                "layer {layer} is not a softmax layer of a session with capture on"
            )));
        };
        let a = &self.arch.attn;
        let (rows, heads) = (s.pos[0], a.heads as u32);
        let mut stats = RowStats::zeroed(rows as usize, heads as usize, block as usize);
        let gpu = self.gpu();
        let dist = buffer(gpu, "dist", stats.dist.len() as u64 * 4);
        let mass = buffer(gpu, "mass", stats.mass.len() as u64 * 4);
        let pooled = buffer(gpu, "pooled", stats.pooled.len() as u64 * 4);
        let shape = RowStatsShape {
            rows,
            heads,
            kv_heads: a.kv_heads as u32,
            dh: a.head_dim as u32,
            window: self.arch.window(layer).map_or(0, |w| w as u32),
        };
        let mut rec = Recorder::new(&self.kernels);
        ops::row_stats(
            &mut rec,
            &shape,
            block,
            needle,
            [q, k, lse],
            [&dist, &mass, &pooled],
        );
        rec.submit();
        for (buf, out) in [
            (&dist, &mut stats.dist),
            (&mass, &mut stats.mass),
            (&pooled, &mut stats.pooled),
        ] {
            let n = out.len();
            let bytes = read_buffer(gpu, buf, (n as u64 * 4).max(4)).await?;
            out.copy_from_slice(&bytemuck::cast_slice::<u8, f32>(&bytes)[..n]);
        }
        Ok(stats)
    }
}
