//! What the engine reports of a softmax layer's attention for routing
//! diagnostics: per-row reductions over every key (expected distance,
//! needle mass, sums over key blocks), never the T x T matrix itself.

use std::ops::Range;

use serde::Serialize;

/// Per-row reductions of one softmax layer's attention, all heads.
#[derive(Debug, Clone, Serialize)]
pub struct RowStats {
    pub rows: usize,
    pub heads: usize,
    /// Keys per block of the pooled maps, and the number of blocks.
    pub block: usize,
    pub blocks: usize,
    /// `[rows, heads]`: sum_s a(t, s) (t - s).
    pub dist: Vec<f32>,
    /// `[rows, heads]`: attention on the needle's keys.
    pub mass: Vec<f32>,
    /// `[heads, rows, blocks]`: attention summed over each block of keys.
    pub pooled: Vec<f32>,
}

impl RowStats {
    pub fn zeroed(rows: usize, heads: usize, block: usize) -> RowStats {
        let block = block.max(1);
        let blocks = rows.div_ceil(block).max(1);
        RowStats {
            rows,
            heads,
            block,
            blocks,
            dist: vec![0.0; rows * heads],
            mass: vec![0.0; rows * heads],
            pooled: vec![0.0; heads * rows * blocks],
        }
    }

    /// The same reductions computed the plain way, from any attention
    /// probability function `a(head, t, s)` (the CPU reference's capture):
    /// the oracle of the GPU kernel.
    pub fn from_probs(
        rows: usize,
        heads: usize,
        block: usize,
        needle: Range<usize>,
        a: impl Fn(usize, usize, usize) -> f32,
    ) -> RowStats {
        let mut r = RowStats::zeroed(rows, heads, block);
        for h in 0..heads {
            for t in 0..rows {
                for s in 0..=t {
                    let p = a(h, t, s);
                    r.dist[t * heads + h] += p * (t - s) as f32;
                    if needle.contains(&s) {
                        r.mass[t * heads + h] += p;
                    }
                    r.pooled[(h * rows + t) * r.blocks + s / r.block] += p;
                }
            }
        }
        r
    }

    /// Mean attention distance per head (Eq. 17): the mean over queries
    /// of each row's expected distance.
    pub fn mean_distance(&self) -> Vec<f32> {
        (0..self.heads)
            .map(|h| {
                (0..self.rows)
                    .map(|t| self.dist[t * self.heads + h] as f64)
                    .sum::<f64>() as f32
                    / self.rows.max(1) as f32
            })
            .collect()
    }

    /// Needle attention mass per head: the mean over `queries` (e.g. the
    /// question's tokens) of the share landing on the needle.
    pub fn needle_mass(&self, queries: Range<usize>) -> Vec<f32> {
        let n = queries.len().max(1) as f32;
        (0..self.heads)
            .map(|h| {
                queries
                    .clone()
                    .map(|t| self.mass[t * self.heads + h])
                    .sum::<f32>()
                    / n
            })
            .collect()
    }

    /// Head `head`'s attention on each block of keys, averaged over the
    /// rows `queries` (the question's).
    pub fn question_blocks(&self, head: usize, queries: Range<usize>) -> Vec<f32> {
        let n = queries.len().max(1) as f32;
        (0..self.blocks)
            .map(|j| {
                queries
                    .clone()
                    .map(|t| self.pooled[(head * self.rows + t) * self.blocks + j])
                    .sum::<f32>()
                    / n
            })
            .collect()
    }

    /// The block-pooled attention map of `head`, `[blocks, blocks]`: the
    /// mean of a(t, s) over each block's cells (those above the diagonal
    /// count as zeros, as in the full map).
    pub fn pooled_map(&self, head: usize) -> Vec<f32> {
        let (b, nb) = (self.block, self.blocks);
        let mut map = vec![0.0f32; nb * nb];
        for t in 0..self.rows {
            for j in 0..nb {
                map[(t / b) * nb + j] += self.pooled[(head * self.rows + t) * nb + j];
            }
        }
        let span = |i: usize| (self.rows.min((i + 1) * b) - i * b) as f32;
        for i in 0..nb {
            for j in 0..nb {
                map[i * nb + j] /= span(i) * span(j);
            }
        }
        map
    }
}
