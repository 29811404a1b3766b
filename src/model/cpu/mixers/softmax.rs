//! Softmax attention in the reference (SPEC-hypenet.md, "Softmax
//! attention"): the KV cache a sequence keeps, what a capture keeps for
//! the routing diagnostics, and the layer's forward.

use crate::config::Mixer;
use crate::model::cpu::math::{dot, inv_sqrt, query_scale};
use crate::model::cpu::model::CpuModel;

/// Keys (after k_norm, and RoPE when on) and values of every processed
/// position, `[pos, kv_heads * dh]` each. HyPE scales only the query, so
/// cached keys stay valid however long the sequence grows.
#[derive(Clone)]
pub struct KvCache {
    pub(crate) k: Vec<f32>,
    pub(crate) v: Vec<f32>,
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
/// probability is `p(t, s) = exp(logit(t, s) - lse[t, h])` for `s <= t`.
#[derive(Clone, Copy)]
pub struct Captured<'a> {
    pub pos: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
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

    /// Attention probability `p(t, s)` of head `h`; 0 above the diagonal.
    pub fn prob(&self, h: usize, t: usize, s: usize) -> f32 {
        if s > t {
            return 0.0;
        }
        (self.logit(h, t, s) - self.lse_at(h, t)).exp()
    }
}

impl KvCache {
    /// The capture, if this cache keeps one, after `pos` tokens of heads
    /// laid out as `(heads, kv_heads, head_dim)`.
    pub(crate) fn captured(
        &self,
        pos: usize,
        (heads, kv_heads, head_dim): (usize, usize, usize),
    ) -> Option<Captured<'_>> {
        let c = self.capture.as_ref()?;
        Some(Captured {
            pos,
            heads,
            kv_heads,
            head_dim,
            q: &c.q,
            k: &self.k,
            v: &self.v,
            lse: &c.lse,
        })
    }
}

impl CpuModel {
    /// Causal softmax attention with GQA, HyPE on the query, and the
    /// sigmoid output gate, over heads prepared by `heads_qkv`. The new rows
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
        let (mut o, lse) = causal_softmax(&q, &cache.k, &cache.v, pos0, heads, kv_heads, dh);
        if let Some(c) = &mut cache.capture {
            c.q.extend_from_slice(&q);
            c.lse.extend_from_slice(&lse);
        }
        if a.attn_use_output_gate {
            self.gate(&mut o, h, &n.o_gate, heads * dh);
        }
        self.out_proj(l, &o, heads * dh)
    }
}

/// o_h(t) = sum_{s<=t} p(t, s) v_g(s), p = softmax_s(q_h(t) . k_g(s) / sqrt(dh)),
/// in f32, for the `n` rows of `q` (`[n, heads * dh]`, positions pos0..)
/// over `k`, `v` (`[pos0 + n, kv_heads * dh]`), kv head g = h / (heads / kv_heads).
/// Returns o `[n, heads * dh]` and each row's log-sum-exp `[n, heads]`.
fn causal_softmax(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    pos0: usize,
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
        for hd in 0..heads {
            let g = hd / group;
            let qv = &q[(i * heads + hd) * dh..][..dh];
            // Subtracting the row max keeps exp() in range; it cancels in p.
            let mut max = f32::NEG_INFINITY;
            for s in 0..=t {
                p_row[s] = dot(qv, &k[(s * kv_heads + g) * dh..][..dh]) * scale;
                max = max.max(p_row[s]);
            }
            let mut sum = 0.0;
            for p in &mut p_row[..=t] {
                *p = (*p - max).exp();
                sum += *p;
            }
            lse[i * heads + hd] = max + sum.ln();
            let out = &mut o[(i * heads + hd) * dh..][..dh];
            for s in 0..=t {
                let w = p_row[s] / sum;
                let vv = &v[(s * kv_heads + g) * dh..][..dh];
                out.iter_mut().zip(vv).for_each(|(o, v)| *o += w * v);
            }
        }
    }
    (o, lse)
}
