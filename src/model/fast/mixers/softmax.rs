//! Softmax attention in the CPU engine: each sequence's new rows join its
//! KV cache, then attend per (sequence, head, block of query rows), the
//! scores and the weighted sum being matrix products.

use std::ops::Range;

use crate::model::cpu::Captured;
use crate::model::fast::blas::{gemm_strided, with_scratch};
use crate::model::fast::model::FastModel;
use crate::model::fast::pass::Span;
use crate::model::par::map_tasks;
use crate::model::simd;

/// Query rows per attention block (each block packs its keys once).
const QUERY_BLOCK: usize = 256;

/// One sequence's keys and values `[pos - start, kv_heads * dh]` in one
/// softmax layer (a sliding-window layer without capture keeps only the
/// last `window - 1` between steps), and with capture its queries (as they
/// entered the dot products) and log-sum-exps.
#[derive(Clone)]
pub struct KvCache {
    pub(crate) k: Vec<f32>,
    pub(crate) v: Vec<f32>,
    /// The absolute position of the first cached row.
    pub(crate) start: usize,
    /// The layer's sliding window: a query at t sees keys in (t - w, t].
    pub(crate) window: Option<usize>,
    pub(crate) capture: Option<(Vec<f32>, Vec<f32>)>,
}

impl KvCache {
    /// An empty cache of a layer with sliding window `window` (if any).
    pub(crate) fn new(window: Option<u64>, capture: bool) -> KvCache {
        KvCache {
            k: Vec::new(),
            v: Vec::new(),
            start: 0,
            window: window.map(|w| w as usize),
            capture: capture.then(Default::default),
        }
    }

    /// Once a step is done: a sliding-window layer without capture drops
    /// the rows no later query sees (all but the last `window - 1`).
    fn trim(&mut self, kv_width: usize) {
        let (Some(w), None) = (self.window, &self.capture) else {
            return;
        };
        let rows = self.k.len() / kv_width;
        let drop = rows.saturating_sub(w - 1);
        self.k.drain(..drop * kv_width);
        self.v.drain(..drop * kv_width);
        self.start += drop;
    }

    /// The first position the query at `t` sees.
    fn first_seen(&self, t: usize) -> usize {
        self.window.map_or(0, |w| (t + 1).saturating_sub(w))
    }

    /// The positions whose rows (`kv_width` keys each) the cache holds.
    pub(crate) fn cached(&self, kv_width: usize) -> std::ops::Range<usize> {
        self.start..self.start + self.k.len() / kv_width
    }

    /// The capture after `pos` tokens, as the reference's. A cache that
    /// captures keeps every row.
    pub(crate) fn captured(
        &self,
        pos: usize,
        (heads, kv_heads, head_dim): (usize, usize, usize),
    ) -> Option<Captured<'_>> {
        let (q, lse) = self.capture.as_ref()?;
        debug_assert_eq!(self.start, 0, "a capturing cache keeps every row");
        Some(Captured {
            pos,
            heads,
            kv_heads,
            head_dim,
            window: self.window,
            q,
            k: &self.k,
            v: &self.v,
            lse,
        })
    }
}

impl FastModel {
    /// Causal softmax attention with GQA of every sequence's new rows over
    /// its cache (which they join first), within the window in a
    /// sliding-window layer; o `[rows, heads * dh]`.
    pub(super) fn softmax_attention(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        spans: &[Span],
        caches: &mut [&mut KvCache],
    ) -> Vec<f32> {
        let at = &self.arch.attn;
        let (heads, kv_heads, dh) = (
            at.heads as usize,
            at.kv_heads as usize,
            at.head_dim as usize,
        );
        let (qw, kw) = (heads * dh, kv_heads * dh);
        for (c, span) in caches.iter_mut().zip(spans) {
            c.k.extend_from_slice(&k[span.row0 * kw..(span.row0 + span.rows) * kw]);
            c.v.extend_from_slice(&v[span.row0 * kw..(span.row0 + span.rows) * kw]);
        }
        let kv: Vec<&KvCache> = caches.iter().map(|c| &**c).collect();
        // One task per (sequence, head, block of query rows).
        let mut tasks = Vec::new();
        for (si, span) in spans.iter().enumerate() {
            for h in 0..heads {
                for b0 in (0..span.rows).step_by(QUERY_BLOCK) {
                    tasks.push((si, h, b0..(b0 + QUERY_BLOCK).min(span.rows)));
                }
            }
        }
        let group = heads / kv_heads;
        let scale = 1.0 / (dh as f32).sqrt();
        let results = map_tasks(
            &tasks,
            |&(si, h, ref block): &(usize, usize, Range<usize>)| {
                let span = spans[si];
                let cache = kv[si];
                let g = h / group;
                let nq = block.len();
                // The keys the block's queries see: positions first..end,
                // rows first - start.. of the cache.
                let first = cache.first_seen(span.pos0 + block.start);
                debug_assert!(
                    first >= cache.start,
                    "the cache dropped a key the window sees"
                );
                let keys = span.pos0 + block.end - first;
                let k0 = (first - cache.start) * kw + g * dh;
                let q0 = (span.row0 + block.start) * qw + h * dh;
                with_scratch(nq * keys, |p| {
                    gemm_strided(
                        nq,
                        dh,
                        keys,
                        scale,
                        &q[q0..],
                        (qw, 1),
                        &cache.k[k0..],
                        (1, kw),
                        p,
                        0.0,
                    );
                    let mut lse = Vec::with_capacity(nq);
                    let mut inv = Vec::with_capacity(nq);
                    for (i, row) in p.chunks_mut(keys).enumerate() {
                        let t = span.pos0 + block.start + i;
                        let (seen, masked) = row.split_at_mut(t + 1 - first);
                        let (early, live) = seen.split_at_mut(cache.first_seen(t) - first);
                        let (max, sum) = simd::softmax_in_place(live);
                        lse.push(max + sum.ln());
                        inv.push(1.0 / sum);
                        early.fill(0.0);
                        masked.fill(0.0);
                    }
                    let mut o = vec![0.0f32; nq * dh];
                    gemm_strided(
                        nq,
                        keys,
                        dh,
                        1.0,
                        p,
                        (keys, 1),
                        &cache.v[k0..],
                        (kw, 1),
                        &mut o,
                        0.0,
                    );
                    for (row, f) in o.chunks_mut(dh).zip(inv) {
                        simd::scale(row, f);
                    }
                    (o, lse)
                })
            },
        );
        let rows: usize = spans.iter().map(|s| s.rows).sum();
        let mut o = vec![0.0f32; rows * qw];
        let mut lse = vec![0.0f32; rows * heads];
        for (&(si, h, ref block), (ob, lb)) in tasks.iter().zip(results) {
            let span = spans[si];
            for (i, (orow, l)) in ob.chunks(dh).zip(lb).enumerate() {
                let r = span.row0 + block.start + i;
                o[r * qw + h * dh..][..dh].copy_from_slice(orow);
                lse[r * heads + h] = l;
            }
        }
        for (c, span) in caches.iter_mut().zip(spans) {
            if let Some((cq, cl)) = &mut c.capture {
                cq.extend_from_slice(&q[span.row0 * qw..(span.row0 + span.rows) * qw]);
                cl.extend_from_slice(&lse[span.row0 * heads..(span.row0 + span.rows) * heads]);
            }
            c.trim(kw);
        }
        o
    }
}
