//! HypeNet in plain f32 Rust, written to be read next to SPEC-hypenet.md:
//! one function per formula, shapes in comments, no tricks.
//!
//! Everything runs through [`CpuModel::step`]: new tokens at their absolute
//! positions against a [`CpuState`] that holds what the past contributes (the
//! softmax layers' KV cache, the Lightning layers' states S). Prefill is a
//! step on a fresh state, decoding is a step of one token; both compute the
//! same numbers, so the pieces a sequence is cut into do not change its
//! logits. With `capture`, the state also keeps each softmax layer's queries
//! and log-sum-exps, enough to rebuild every attention probability (the
//! oracle for the GPU attention kernels).

use std::collections::HashMap;

use crate::checkpoint::Checkpoint;
use crate::config::{Arch, LightningScale, LogitsScaling, Mixer};
use crate::error::{Error, Result};
use crate::names::{self, LayerNames};
use crate::source::ByteSource;

/// All weights decoded to f32, by tensor name.
pub struct CpuModel {
    pub arch: Arch,
    w: HashMap<String, Vec<f32>>,
    /// Each layer's tensor names.
    names: Vec<LayerNames>,
}

/// What decoding carries from one [`CpuModel::step`] to the next: the number
/// of tokens already processed and, per layer, everything later tokens read
/// from them. Made by [`CpuModel::new_state`] and only valid for that model.
#[derive(Clone)]
pub struct CpuState {
    pos: usize,
    layers: Vec<LayerState>,
    /// Softmax head layout (heads, kv_heads, head_dim), for [`Captured`].
    attn_dims: (usize, usize, usize),
}

#[derive(Clone)]
enum LayerState {
    Softmax(KvCache),
    /// S_h for every query head, `[nh, dl, dl]`; `S_h[i][j]`: i over the key
    /// dim, j over the value dim. Per query head, not per kv head, because
    /// the decay gamma_h belongs to the query head.
    Lightning(Vec<f32>),
}

/// Keys (after k_norm, and RoPE when on) and values of every processed
/// position, `[pos, kv_heads * dh]` each. HyPE scales only the query, so
/// cached keys stay valid however long the sequence grows.
#[derive(Clone)]
struct KvCache {
    k: Vec<f32>,
    v: Vec<f32>,
    capture: Option<Capture>,
}

/// Per processed position: the query as it entered the dot products
/// (`[pos, heads * dh]`) and each head's log-sum-exp (`[pos, heads]`).
#[derive(Clone, Default)]
struct Capture {
    q: Vec<f32>,
    lse: Vec<f32>,
}

/// One softmax layer's capture, borrowed from a [`CpuState`] made with
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

impl CpuState {
    /// Tokens processed so far; the next token goes to this absolute position.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The capture of softmax layer `layer`; `None` for a Lightning layer or
    /// a state made without capture.
    pub fn captured(&self, layer: usize) -> Option<Captured<'_>> {
        let LayerState::Softmax(cache) = self.layers.get(layer)? else { return None };
        let c = cache.capture.as_ref()?;
        let (heads, kv_heads, head_dim) = self.attn_dims;
        Some(Captured { pos: self.pos, heads, kv_heads, head_dim, q: &c.q, k: &cache.k, v: &cache.v, lse: &c.lse })
    }

    /// Lightning layer `layer`'s state `[nh, dl, dl]` (`S_h[i][j]`, i over
    /// the key dim, j over the value dim); `None` for a softmax layer.
    pub fn lightning_state(&self, layer: usize) -> Option<&[f32]> {
        match self.layers.get(layer)? {
            LayerState::Lightning(s) => Some(s),
            LayerState::Softmax(_) => None,
        }
    }
}

impl CpuModel {
    /// Decodes every tensor the architecture names (BF16/F16/F32).
    pub async fn load<S: ByteSource>(ck: &Checkpoint<S>, arch: Arch) -> Result<CpuModel> {
        let mut w = HashMap::new();
        for (name, _) in arch.expected_tensors() {
            w.insert(name.clone(), ck.read_tensor_f32(&name, "the CPU model").await?);
        }
        let names = (0..arch.num_layers()).map(LayerNames::of).collect();
        Ok(CpuModel { arch, w, names })
    }

    /// Swaps one weight for another of the same size, e.g. to build a merged
    /// model (QK-Restore) from a second checkpoint without writing it out.
    pub fn replace_tensor(&mut self, name: &str, values: Vec<f32>) -> Result<()> {
        let w = self.w.get_mut(name).ok_or_else(|| Error::NoSuchTensor { tensor: name.into() })?;
        if w.len() != values.len() {
            return Err(Error::Usage(format!(
                "tensor {name:?} holds {} values, the replacement {}",
                w.len(),
                values.len()
            )));
        }
        *w = values;
        Ok(())
    }

    fn t(&self, name: &str) -> &[f32] {
        &self.w[name]
    }

    fn opt(&self, name: &str) -> Option<&[f32]> {
        self.w.get(name).map(Vec::as_slice)
    }

    /// An empty state (position 0). `capture` keeps the softmax layers'
    /// queries and log-sum-exps for [`CpuState::captured`]; it costs
    /// `(heads * head_dim + heads)` floats per position and softmax layer.
    pub fn new_state(&self, capture: bool) -> CpuState {
        let a = &self.arch;
        let (nh, dl) = (a.lightning.heads as usize, a.lightning.head_dim as usize);
        let layers = a
            .mixers
            .iter()
            .map(|m| match m {
                Mixer::Softmax => LayerState::Softmax(KvCache {
                    k: Vec::new(),
                    v: Vec::new(),
                    capture: capture.then(Capture::default),
                }),
                Mixer::Lightning => LayerState::Lightning(vec![0.0; nh * dl * dl]),
            })
            .collect();
        let attn_dims = (a.attn.heads as usize, a.attn.kv_heads as usize, a.attn.head_dim as usize);
        CpuState { pos: 0, layers, attn_dims }
    }

    /// Logits `[T, V]` (row-major) for `ids` at positions 0..T.
    pub fn forward(&self, ids: &[u32]) -> Result<Vec<f32>> {
        self.step(&mut self.new_state(false), ids)
    }

    /// Runs `ids` at absolute positions `pos .. pos + n` of `state`, each
    /// token attending to everything before it (cache and new tokens), and
    /// returns their logits `[n, V]` (row-major). On error the state is left
    /// as it was.
    pub fn step(&self, state: &mut CpuState, ids: &[u32]) -> Result<Vec<f32>> {
        let a = &self.arch;
        let (d, v) = (a.hidden_size as usize, a.vocab_size as usize);
        // Every check comes before the first layer writes to the state, so a
        // failed step never leaves it half-advanced.
        self.check_state(state)?;
        let mut x = self.embed(ids)?; // (n, D)
        let pos0 = state.pos;
        for (l, layer) in state.layers.iter_mut().enumerate() {
            let n = &self.names[l];
            // x = x + mixer(rmsnorm(x, input_layernorm))
            let h = rmsnorm_rows(&x, self.t(&n.input_norm), a.rms_norm_eps);
            let y = match layer {
                LayerState::Softmax(cache) => self.softmax_attention(l, &h, pos0, cache),
                LayerState::Lightning(s) => self.lightning_attention(l, &h, pos0, s),
            };
            add(&mut x, &y);
            // x = x + mlp(rmsnorm(x, post_attention_layernorm))
            let h = rmsnorm_rows(&x, self.t(&n.post_norm), a.rms_norm_eps);
            add(&mut x, &self.mlp(l, &h));
        }
        state.pos += ids.len();
        let h = rmsnorm_rows(&x, self.t(names::FINAL_NORM), a.rms_norm_eps);
        let head = self.t(if a.tie_word_embeddings { names::EMBED } else { names::LM_HEAD });
        Ok(linear(&h, head, d, v))
    }

    /// Greedy decoding as `generate` in reference/hypenet.py: step the
    /// prompt, then feed back the argmax of the last row until `n` tokens
    /// or a token in `stop` (returned, last). Like upstream, the last token
    /// returned is not run through the model (its logits would go unused):
    /// afterwards `state.pos()` has grown by `prompt.len() + out.len() - 1`
    /// (by `prompt.len()` when `n == 0`), so continue by passing that last
    /// token as the next prompt.
    pub fn generate_greedy(&self, state: &mut CpuState, prompt: &[u32], n: usize, stop: &[u32]) -> Result<Vec<u32>> {
        if prompt.is_empty() {
            return Err(Error::Usage("greedy generation needs at least one prompt token".into()));
        }
        let v = self.arch.vocab_size as usize;
        let mut logits = self.step(state, prompt)?;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let tok = argmax(&logits[logits.len() - v..]);
            out.push(tok);
            if stop.contains(&tok) || out.len() == n {
                break;
            }
            logits = self.step(state, &[tok])?;
        }
        Ok(out)
    }

    /// A state from another model (other layer kinds or sizes) would index
    /// out of bounds or, worse, silently mix models.
    fn check_state(&self, state: &CpuState) -> Result<()> {
        let a = &self.arch;
        let (nh, dl) = (a.lightning.heads as usize, a.lightning.head_dim as usize);
        let kv_width = (a.attn.kv_heads * a.attn.head_dim) as usize;
        let fits = state.layers.len() == a.mixers.len()
            && state.layers.iter().zip(&a.mixers).all(|(layer, mixer)| match (layer, mixer) {
                (LayerState::Softmax(c), Mixer::Softmax) => c.k.len() == state.pos * kv_width,
                (LayerState::Lightning(s), Mixer::Lightning) => s.len() == nh * dl * dl,
                _ => false,
            });
        if fits {
            Ok(())
        } else {
            Err(Error::Usage("this decoding state was made for a different model".into()))
        }
    }

    /// x = embed[ids]                                   (n, D)
    fn embed(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let (d, v) = (self.arch.hidden_size as usize, self.arch.vocab_size as usize);
        let embed = self.t(names::EMBED);
        let mut x = Vec::with_capacity(ids.len() * d);
        for &id in ids {
            let id = id as usize;
            if id >= v {
                return Err(Error::Usage(format!("token id {id} is outside the vocabulary ({v})")));
            }
            x.extend_from_slice(&embed[id * d..(id + 1) * d]);
        }
        Ok(x)
    }

    /// down_proj(silu(gate_proj(x)) * up_proj(x))
    fn mlp(&self, l: usize, h: &[f32]) -> Vec<f32> {
        let (d, i) = (self.arch.hidden_size as usize, self.arch.intermediate_size as usize);
        let n = &self.names[l];
        let gate = linear(h, self.t(&n.mlp_gate), d, i);
        let up = linear(h, self.t(&n.mlp_up), d, i);
        let act: Vec<f32> = gate.iter().zip(&up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
        linear(&act, self.t(&n.mlp_down), i, d)
    }

    /// q, k, v projections (+ biases), split later into heads.
    fn qkv(&self, l: usize, h: &[f32], q_width: usize, kv_width: usize) -> [Vec<f32>; 3] {
        let d = self.arch.hidden_size as usize;
        let proj = |p: &crate::names::Linear, width: usize| {
            let mut y = linear(h, self.t(&p.weight), d, width);
            if let Some(b) = self.opt(&p.bias) {
                y.chunks_mut(width).for_each(|row| add(row, b));
            }
            y
        };
        let n = &self.names[l];
        [proj(&n.q, q_width), proj(&n.k, kv_width), proj(&n.v, kv_width)]
    }

    /// o_proj(o), with its bias when the model has one.
    fn out_proj(&self, l: usize, o: &[f32], width: usize) -> Vec<f32> {
        let d = self.arch.hidden_size as usize;
        let p = &self.names[l].o;
        let mut y = linear(o, self.t(&p.weight), width, d);
        if let Some(b) = self.opt(&p.bias) {
            y.chunks_mut(d).for_each(|row| add(row, b));
        }
        y
    }

    /// o *= sigmoid(gate(h)) for the named gate projection.
    fn gate(&self, o: &mut [f32], h: &[f32], name: &str, width: usize) {
        let g = linear(h, self.t(name), self.arch.hidden_size as usize, width);
        o.iter_mut().zip(&g).for_each(|(o, g)| *o /= 1.0 + (-g).exp());
    }

    /// Causal softmax attention with GQA, per-head q/k RMSNorm, optional
    /// RoPE, HyPE on the query, and the sigmoid output gate. The new rows
    /// `h` sit at positions `pos0..`; their keys and values join the cache
    /// before attending, since a token attends to itself.
    fn softmax_attention(&self, l: usize, h: &[f32], pos0: usize, cache: &mut KvCache) -> Vec<f32> {
        let a = &self.arch;
        let (heads, kv_heads, dh) = (a.attn.heads as usize, a.attn.kv_heads as usize, a.attn.head_dim as usize);
        let [mut q, mut k, v] = self.qkv(l, h, heads * dh, kv_heads * dh);
        let n = &self.names[l];
        if a.attn_use_qk_norm {
            norm_heads(&mut q, self.t(&n.q_norm), dh, a.rms_norm_eps);
            norm_heads(&mut k, self.t(&n.k_norm), dh, a.rms_norm_eps);
        }
        if a.attn_use_rope {
            let inv_freq = a.rope_inv_freq(dh as u64);
            rope(&mut q, heads * dh, &inv_freq, pos0);
            rope(&mut k, kv_heads * dh, &inv_freq, pos0);
        }
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

    /// Lightning attention as the literal recurrence, continued from the
    /// state `s` (`[nh, dl, dl]`) that the earlier positions left behind:
    /// S_h(t) = gamma_h S_h(t-1) + k_h(t)^T v_h(t),  o_h(t) = scale q_h(t) S_h(t).
    fn lightning_attention(&self, l: usize, h: &[f32], pos0: usize, s: &mut [f32]) -> Vec<f32> {
        let a = &self.arch;
        let (nh, nkv, dl) = (a.lightning.heads as usize, a.lightning.kv_heads as usize, a.lightning.head_dim as usize);
        let n = h.len() / a.hidden_size as usize;
        let [mut q, mut k, v] = self.qkv(l, h, nh * dl, nkv * dl);
        let names = &self.names[l];
        if a.lightning_use_qk_norm {
            norm_heads(&mut q, self.t(&names.q_norm), dl, a.rms_norm_eps);
            norm_heads(&mut k, self.t(&names.k_norm), dl, a.rms_norm_eps);
        }
        if a.lightning_use_rope {
            let inv_freq = a.rope_inv_freq(dl as u64);
            rope(&mut q, nh * dl, &inv_freq, pos0);
            rope(&mut k, nkv * dl, &inv_freq, pos0);
        }
        let scale = match a.lightning_scale {
            LightningScale::InvSqrtD => inv_sqrt(dl),
            LightningScale::InvD => 1.0 / dl as f32,
            LightningScale::One => 1.0,
        };
        let group = nh / nkv;
        let mut o = vec![0.0f32; n * nh * dl];
        for (hd, slope) in alibi_slopes(nh).into_iter().enumerate() {
            let gamma = (-slope).exp() as f32;
            let g = hd / group;
            let s_h = &mut s[hd * dl * dl..][..dl * dl];
            for i in 0..n {
                decay_and_add(s_h, gamma, &k[(i * nkv + g) * dl..][..dl], &v[(i * nkv + g) * dl..][..dl]);
                read_state(s_h, &q[(i * nh + hd) * dl..][..dl], scale, &mut o[(i * nh + hd) * dl..][..dl]);
            }
        }
        if a.lightning_use_output_norm {
            // rmsnorm over the full width nh * dl
            o = rmsnorm_rows(&o, self.t(&names.o_norm), a.rms_norm_eps);
        }
        if a.lightning_use_output_gate {
            self.gate(&mut o, h, &names.z_proj, nh * dl);
        }
        self.out_proj(l, &o, nh * dl)
    }
}

/// Index of the first maximum of `row` under f32's total order: ties go to
/// the lowest index, as torch.argmax does, and a NaN cannot make the answer
/// depend on where it sits. `row` must not be empty.
pub fn argmax(row: &[f32]) -> u32 {
    assert!(!row.is_empty(), "argmax of an empty row");
    let mut best = 0;
    for (i, x) in row.iter().enumerate().skip(1) {
        if x.total_cmp(&row[best]).is_gt() {
            best = i;
        }
    }
    best as u32
}

/// ALiBi slopes: 2^(-8(h+1)/n) for n a power of two; otherwise those of the
/// largest power of two m below n, then every other slope of 2m.
pub fn alibi_slopes(n: usize) -> Vec<f64> {
    let pow2 = |n: usize| (0..n).map(|h| 2f64.powf(-8.0 * (h + 1) as f64 / n as f64)).collect::<Vec<_>>();
    if n.is_power_of_two() {
        return pow2(n);
    }
    let m = 1usize << (usize::BITS - 1 - n.leading_zeros());
    let mut s = pow2(m);
    s.extend(pow2(2 * m).into_iter().step_by(2).take(n - m));
    s
}

/// The query factor at absolute position t. HyPE (`"hype A"`): ln(t + A) /
/// ln(A), growing with t so that late queries stay sharp over long
/// contexts; it touches only the query, never the cached keys. A float s
/// scales every position alike.
pub(crate) fn query_scale(scaling: LogitsScaling, t: usize) -> f32 {
    match scaling {
        LogitsScaling::None => 1.0,
        LogitsScaling::Constant(s) => s as f32,
        LogitsScaling::Hype(big_a) => ((t as f64 + big_a).ln() / big_a.ln()) as f32,
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

/// S = gamma S + k^T v for one head, S `[dk, dv]` row-major.
fn decay_and_add(s: &mut [f32], gamma: f32, k: &[f32], v: &[f32]) {
    for (row, ki) in s.chunks_mut(v.len()).zip(k) {
        row.iter_mut().zip(v).for_each(|(s, v)| *s = gamma * *s + ki * v);
    }
}

/// out += scale q S for one head, S `[dk, dv]` row-major.
fn read_state(s: &[f32], q: &[f32], scale: f32, out: &mut [f32]) {
    for (row, qi) in s.chunks(out.len()).zip(q) {
        let qi = qi * scale;
        out.iter_mut().zip(row).for_each(|(o, s)| *o += qi * s);
    }
}

fn inv_sqrt(d: usize) -> f32 {
    1.0 / (d as f32).sqrt()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// y = x W^T for x `[T, n_in]` and W `[n_out, n_in]` (PyTorch layout).
fn linear(x: &[f32], w: &[f32], n_in: usize, n_out: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(x.len() / n_in * n_out);
    for row in x.chunks(n_in) {
        y.extend((0..n_out).map(|o| dot(row, &w[o * n_in..(o + 1) * n_in])));
    }
    y
}

/// w * x / sqrt(mean(x^2) + eps) over each row of width w.len().
fn rmsnorm_rows(x: &[f32], w: &[f32], eps: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(w.len()) {
        let ms = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
        let inv = 1.0 / (ms + eps as f32).sqrt();
        out.extend(row.iter().zip(w).map(|(v, w)| w * (v * inv)));
    }
    out
}

/// RMSNorm of every head (width `dh`) of every row, in place.
fn norm_heads(x: &mut [f32], w: &[f32], dh: usize, eps: f64) {
    debug_assert_eq!(w.len(), dh);
    let normed = rmsnorm_rows(x, w, eps);
    x.copy_from_slice(&normed);
}

/// RoPE, rotate-half layout, on every head (width 2 x `inv_freq`, from
/// [`crate::config::Arch::rope_inv_freq`]) of each row of `row_width`
/// values. Row i is at absolute position pos0 + i: during decoding the
/// angle must come from the token's place in the whole sequence, not in
/// this step.
fn rope(x: &mut [f32], row_width: usize, inv_freq: &[f64], pos0: usize) {
    let half = inv_freq.len();
    let dh = 2 * half;
    for (i, row) in x.chunks_mut(row_width).enumerate() {
        let t = (pos0 + i) as f64;
        for head in row.chunks_mut(dh) {
            for j in 0..half {
                let (sin, cos) = (t * inv_freq[j]).sin_cos();
                let (sin, cos) = (sin as f32, cos as f32);
                let (x1, x2) = (head[j], head[j + half]);
                head[j] = x1 * cos - x2 * sin;
                head[j + half] = x2 * cos + x1 * sin;
            }
        }
    }
}
