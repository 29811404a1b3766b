//! Routing diagnostics (SPEC-methods, "Routing diagnostics"): where a
//! softmax layer's heads look. Both backends reduce every attention row
//! to a few numbers (expected distance, needle mass, sums over key blocks)
//! without ever holding the T x T matrix; the pictures and rankings are
//! made from those rows here.

use std::ops::Range;

use crate::error::Result;
use crate::niah::NiahPrompt;
use crate::tokenizer::Tokenizer;

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
    pub fn from_probs(rows: usize, heads: usize, block: usize, needle: Range<usize>, a: impl Fn(usize, usize, usize) -> f32) -> RowStats {
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
            .map(|h| (0..self.rows).map(|t| self.dist[t * self.heads + h] as f64).sum::<f64>() as f32 / self.rows.max(1) as f32)
            .collect()
    }

    /// Needle attention mass per head: the mean over `queries` (e.g. the
    /// question's tokens) of the share landing on the needle.
    pub fn needle_mass(&self, queries: Range<usize>) -> Vec<f32> {
        let n = queries.len().max(1) as f32;
        (0..self.heads).map(|h| queries.clone().map(|t| self.mass[t * self.heads + h]).sum::<f32>() / n).collect()
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

/// ln(a / b) cell by cell, with both floored at `floor` so empty cells
/// (above the diagonal) give 0 rather than NaN.
pub fn log_ratio(a: &[f32], b: &[f32], floor: f32) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| (x.max(floor) / y.max(floor)).ln()).collect()
}

/// Softmax layers ranked by how many heads attend closer after SFT
/// (`after[l][h] < before[l][h]`), most affected first: (layer, heads that
/// shrank, heads), ties broken by the larger total shrinkage.
pub fn most_affected(before: &[(usize, Vec<f32>)], after: &[(usize, Vec<f32>)]) -> Vec<(usize, usize, usize)> {
    let mut ranked: Vec<(usize, usize, usize, f32)> = before
        .iter()
        .zip(after)
        .map(|((l, b), (_, a))| {
            let shrank = b.iter().zip(a).filter(|(b, a)| a < b).count();
            let total: f32 = b.iter().zip(a).map(|(b, a)| (b - a).max(0.0)).sum();
            (*l, shrank, b.len(), total)
        })
        .collect();
    ranked.sort_by(|x, y| y.1.cmp(&x.1).then(y.3.total_cmp(&x.3)));
    ranked.into_iter().map(|(l, s, n, _)| (l, s, n)).collect()
}

/// Where a NIAH prompt's parts fall in its tokens: the prompt's ids, the
/// needle's token range, and the question's (the tail after the haystack,
/// whose queries the needle mass averages over). Positions are counted by
/// tokenizing the text before each part.
pub struct PromptPositions {
    pub ids: Vec<u32>,
    pub needle: Range<u32>,
    pub queries: Range<usize>,
}

/// The prompt one routing picture is drawn on, with its answer.
pub struct RoutingPrompt {
    pub positions: PromptPositions,
    pub key: String,
    pub value: String,
}

impl RoutingPrompt {
    /// A prompt of `task` (a text task, fitted to the tokenizer's tokens, or
    /// the token-id task) as `maker`'s checkpoint sees it.
    pub fn new(maker: &crate::sweep::PromptMaker, task: &str, length: u32, depth: f64, seed: u64) -> Result<RoutingPrompt> {
        use crate::niah::{id_prompt, ids_text, Task, ID_TASK};
        if task == ID_TASK {
            let p = id_prompt(maker.vocab, &maker.special, length, depth, seed)?;
            return Ok(RoutingPrompt { positions: PromptPositions::of_ids(&p), key: ids_text(&p.key), value: ids_text(&p.value) });
        }
        let tok = maker.tokenizer.ok_or_else(|| {
            crate::Error::Usage(format!("no {}: text prompts cannot be tokenized; use the token-id task ({ID_TASK})", crate::tokenizer::TOKENIZER_FILE))
        })?;
        let (p, ids) = crate::sweep::fitted_prompt(Task::parse(task)?, length, depth, seed, None, tok)?;
        Ok(RoutingPrompt { positions: PromptPositions::of(tok, &p, ids)?, key: p.key, value: p.value })
    }
}

impl PromptPositions {
    /// A token-id prompt's positions: the question is the key at its end.
    pub fn of_ids(p: &crate::niah::IdPrompt) -> PromptPositions {
        let needle = p.needle.start as u32..p.needle.end as u32;
        PromptPositions { ids: p.ids.clone(), needle, queries: p.ids.len() - p.key.len()..p.ids.len() }
    }

    /// A text prompt's positions, given its ids under `tok`.
    pub fn of(tok: &Tokenizer, p: &NiahPrompt, ids: Vec<u32>) -> Result<PromptPositions> {
        let tokens_before = |byte: usize| -> Result<u32> { Ok(tok.encode(&p.prompt[..byte])?.len() as u32) };
        let needle = tokens_before(p.needle_span.0)?..tokens_before(p.needle_span.1)?;
        let tail = p.prompt.rfind('\n').unwrap_or(0);
        let queries = tokens_before(tail)? as usize..ids.len();
        Ok(PromptPositions { ids, needle, queries })
    }
}
