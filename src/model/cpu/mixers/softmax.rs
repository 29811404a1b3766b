//! Softmax attention in the reference (SPEC-hypenet.md, "Softmax
//! attention"): the KV cache a sequence keeps, what a capture keeps for
//! the routing diagnostics, and the layer's forward.

use crate::config::Mixer;
use crate::model::cpu::math::{dot, inv_sqrt, query_scale};
use crate::model::cpu::model::CpuModel;

/// Keys (after k_norm, and RoPE when on) and values of the processed
/// positions later queries can still see, `[pos - start, kv_heads * dh]`
/// each: every position, but in a sliding-window layer without capture,
/// where only the last `window - 1` stay between steps. HyPE scales only
/// the query, so cached keys stay valid however long the sequence grows.
#[derive(Clone)]
pub struct KvCache {
    pub(crate) k: Vec<f32>,
    pub(crate) v: Vec<f32>,
    /// The absolute position of the first cached row.
    pub(crate) start: usize,
    /// The layer's sliding window: a query at t sees keys in (t - w, t].
    pub(crate) window: Option<usize>,
    pub(crate) capture: Option<Capture>,
}

/// Per processed position: the query as it entered the dot products
/// (`[pos, heads * dh]`) and each head's log-sum-exp (`[pos, heads]`).
#[derive(Clone, Default)]
pub struct Capture {
    pub(crate) q: Vec<f32>,
    pub(crate) lse: Vec<f32>,
}

/// One softmax layer's capture, borrowed from a `CpuState` made with
/// `capture = true`. Row-major, row t is absolute position t, `0 <= t < pos`:
///
/// | field | shape | what |
/// |---|---|---|
/// | `q` | `[pos, heads * head_dim]` | query after q_norm, RoPE (when on) and the HyPE / constant scaling |
/// | `k` | `[pos, kv_heads * head_dim]` | key after k_norm and RoPE (when on): the KV cache itself |
/// | `v` | `[pos, kv_heads * head_dim]` | value: the KV cache itself |
/// | `lse` | `[pos, heads]` | `ln sum_{s<=t} exp(logit(t, s))`, as max + ln(sum exp(logit - max)) |
///
/// with `logit(t, s) = q_h(t) . k_g(s) / sqrt(head_dim)`, query head h
/// reading kv head `g = h / (heads / kv_heads)`, so the attention
/// probability is `p(t, s) = exp(logit(t, s) - lse[t, h])` for `s <= t`
/// (and, in a sliding-window layer, `t - window < s`: the log-sum-exp
/// runs over the window only).
#[derive(Clone, Copy)]
pub struct Captured<'a> {
    pub pos: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// The layer's sliding window, if it has one.
    pub window: Option<usize>,
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub lse: &'a [f32],
}

impl<'a> Captured<'a> {
    // Accessors take the head first, then position(s), like `p_h(t, s)`.

    /// Query of head `h` at position `t` (`head_dim` values).
    pub fn q_at(&self, h: usize, t: usize) -> &'a [f32] {
        &self.q[(t * self.heads + h) * self.head_dim..][..self.head_dim]
    }

    /// The key that query head `h` reads at position `s` (`head_dim` values).
    pub fn k_at(&self, h: usize, s: usize) -> &'a [f32] {
        let g = h / (self.heads / self.kv_heads);
        &self.k[(s * self.kv_heads + g) * self.head_dim..][..self.head_dim]
    }

    /// Log-sum-exp of head `h`'s logits at query position `t`.
    pub fn lse_at(&self, h: usize, t: usize) -> f32 {
        self.lse[t * self.heads + h]
    }

    /// `q_h(t) . k(s) / sqrt(head_dim)`, computed as the model computes it.
    pub fn logit(&self, h: usize, t: usize, s: usize) -> f32 {
        dot(self.q_at(h, t), self.k_at(h, s)) * inv_sqrt(self.head_dim)
    }

    /// Whether the query at `t` attends to the key at `s`: causal, and
    /// within the window when the layer has one.
    pub fn sees(&self, t: usize, s: usize) -> bool {
        s <= t && self.window.is_none_or(|w| t < s + w)
    }

    /// Attention probability `p(t, s)` of head `h`; 0 above the diagonal
    /// and outside the window.
    pub fn prob(&self, h: usize, t: usize, s: usize) -> f32 {
        if !self.sees(t, s) {
            return 0.0;
        }
        (self.logit(h, t, s) - self.lse_at(h, t)).exp()
    }
}

impl KvCache {
    /// An empty cache of a layer with sliding window `window` (if any),
    /// keeping the capture when asked.
    pub(crate) fn new(window: Option<u64>, capture: bool) -> KvCache {
        KvCache {
            k: Vec::new(),
            v: Vec::new(),
            start: 0,
            window: window.map(|w| w as usize),
            capture: capture.then(Capture::default),
        }
    }

    /// Whether this cache belongs to a layer of `kv_width` keys a row
    /// after `pos` tokens.
    pub(crate) fn fits(&self, kv_width: usize, pos: usize) -> bool {
        self.start <= pos && self.k.len() == (pos - self.start) * kv_width
    }

    /// Once a step is done: a sliding-window layer without capture drops
    /// the rows no later query sees (all but the last `window - 1`).
    pub(crate) fn trim(&mut self, kv_width: usize) {
        let (Some(w), None) = (self.window, &self.capture) else {
            return;
        };
        let rows = self.k.len() / kv_width;
        let drop = rows.saturating_sub(w - 1);
        self.k.drain(..drop * kv_width);
        self.v.drain(..drop * kv_width);
        self.start += drop;
    }

    /// The positions whose rows (`kv_width` keys each) the cache holds.
    pub(crate) fn cached(&self, kv_width: usize) -> std::ops::Range<usize> {
        self.start..self.start + self.k.len() / kv_width
    }

    /// The capture, if this cache keeps one, after `pos` tokens of heads
    /// laid out as `(heads, kv_heads, head_dim)`. A cache that captures
    /// keeps every row.
    pub(crate) fn captured(
        &self,
        pos: usize,
        (heads, kv_heads, head_dim): (usize, usize, usize),
    ) -> Option<Captured<'_>> {
        let c = self.capture.as_ref()?;
        debug_assert_eq!(self.start, 0, "a capturing cache keeps every row");
        Some(Captured {
            pos,
            heads,
            kv_heads,
            head_dim,
            window: self.window,
            q: &c.q,
            k: &self.k,
            v: &self.v,
            lse: &c.lse,
        })
    }
}

impl CpuModel {
    /// Causal softmax attention with GQA, HyPE on the query, and the
    /// sigmoid output gate, over heads prepared by `heads_qkv`; in a
    /// sliding-window layer over the keys in the window only. The new rows
    /// `h` sit at positions `pos0..`; their keys and values join the cache
    /// before attending, since a token attends to itself.
    pub(super) fn softmax_attention(
        &self,
        l: usize,
        h: &[f32],
        pos0: usize,
        cache: &mut KvCache,
    ) -> Vec<f32> {
        let a = &self.arch;
        let (heads, kv_heads, dh) = (
            a.attn.heads as usize,
            a.attn.kv_heads as usize,
            a.attn.head_dim as usize,
        );
        let [mut q, k, v] = self.heads_qkv(l, h, pos0, Mixer::Softmax);
        let n = &self.names[l];
        for (i, row) in q.chunks_mut(heads * dh).enumerate() {
            let s = query_scale(a.logits_scaling, pos0 + i);
            row.iter_mut().for_each(|x| *x *= s);
        }
        cache.k.extend_from_slice(&k);
        cache.v.extend_from_slice(&v);
        let (mut o, lse) = causal_softmax(
            &q,
            [&cache.k, &cache.v],
            pos0,
            (cache.start, cache.window),
            heads,
            kv_heads,
            dh,
        );
        if let Some(c) = &mut cache.capture {
            c.q.extend_from_slice(&q);
            c.lse.extend_from_slice(&lse);
        }
        cache.trim(kv_heads * dh);
        if a.attn_use_output_gate {
            self.gate(&mut o, h, &n.o_gate, heads * dh);
        }
        self.out_proj(l, &o, heads * dh)
    }
}

/// o_h(t) = sum_s p(t, s) v_g(s), p = softmax_s(q_h(t) . k_g(s) / sqrt(dh))
/// over the keys t sees (s <= t, and t - w < s with a window w), in f32,
/// for the `n` rows of `q` (`[n, heads * dh]`, positions pos0..) over `k`,
/// `v` (`[pos0 + n - start, kv_heads * dh]`, row 0 at position `start`),
/// kv head g = h / (heads / kv_heads). Returns o `[n, heads * dh]` and
/// each row's log-sum-exp `[n, heads]`.
fn causal_softmax(
    q: &[f32],
    [k, v]: [&[f32]; 2],
    pos0: usize,
    (start, window): (usize, Option<usize>),
    heads: usize,
    kv_heads: usize,
    dh: usize,
) -> (Vec<f32>, Vec<f32>) {
    let n = q.len() / (heads * dh);
    let group = heads / kv_heads;
    let scale = inv_sqrt(dh);
    let mut o = vec![0.0f32; n * heads * dh];
    let mut lse = vec![0.0f32; n * heads];
    let mut p_row = vec![0.0f32; pos0 + n];
    for i in 0..n {
        let t = pos0 + i;
        let first = window.map_or(0, |w| (t + 1).saturating_sub(w));
        debug_assert!(first >= start, "the cache dropped a key the window sees");
        let seen = first..=t;
        let row = |s: usize| (s - start) * kv_heads;
        for hd in 0..heads {
            let g = hd / group;
            let qv = &q[(i * heads + hd) * dh..][..dh];
            // Subtracting the row max keeps exp() in range; it cancels in p.
            let mut max = f32::NEG_INFINITY;
            for s in seen.clone() {
                p_row[s] = dot(qv, &k[(row(s) + g) * dh..][..dh]) * scale;
                max = max.max(p_row[s]);
            }
            let mut sum = 0.0;
            for p in &mut p_row[seen.clone()] {
                *p = (*p - max).exp();
                sum += *p;
            }
            lse[i * heads + hd] = max + sum.ln();
            let out = &mut o[(i * heads + hd) * dh..][..dh];
            for s in seen.clone() {
                let w = p_row[s] / sum;
                let vv = &v[(row(s) + g) * dh..][..dh];
                out.iter_mut().zip(vv).for_each(|(o, v)| *o += w * v);
            }
        }
    }
    (o, lse)
}
