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

mod math;
mod mixers;

use std::collections::HashMap;

use math::{add, linear, norm_heads, rmsnorm_rows, rope};
use mixers::LayerState;
pub use mixers::softmax::Captured;

use crate::checkpoint::Checkpoint;
use crate::config::{Arch, LogitsScaling, Mixer};
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

impl CpuState {
    /// Tokens processed so far; the next token goes to this absolute position.
    pub fn pos(&self) -> usize {
        self.pos
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
        let layers = a.mixers.iter().map(|&m| LayerState::new(a, m, capture)).collect();
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
            let y = self.mix(l, &h, pos0, layer);
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
        let fits = state.layers.len() == a.mixers.len()
            && state.layers.iter().zip(&a.mixers).all(|(layer, &mixer)| layer.fits(a, mixer, state.pos));
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

    /// Layer `l`'s q, k, v (+ biases) for a `mixer` layer, with the
    /// per-head q/k RMSNorm and RoPE its settings turn on: every mixer
    /// prepares its heads this one way. Rows of `h` sit at `pos0..`.
    fn heads_qkv(&self, l: usize, h: &[f32], pos0: usize, mixer: Mixer) -> [Vec<f32>; 3] {
        let a = &self.arch;
        let (d, heads) = (a.hidden_size as usize, a.heads(mixer));
        let (nq, nkv, dh) = (heads.heads as usize, heads.kv_heads as usize, heads.head_dim as usize);
        let proj = |p: &crate::names::Linear, width: usize| {
            let mut y = linear(h, self.t(&p.weight), d, width);
            if let Some(b) = self.opt(&p.bias) {
                y.chunks_mut(width).for_each(|row| add(row, b));
            }
            y
        };
        let n = &self.names[l];
        let (mut q, mut k, v) = (proj(&n.q, nq * dh), proj(&n.k, nkv * dh), proj(&n.v, nkv * dh));
        if a.qk_norm(mixer) {
            norm_heads(&mut q, self.t(&n.q_norm), dh, a.rms_norm_eps);
            norm_heads(&mut k, self.t(&n.k_norm), dh, a.rms_norm_eps);
        }
        if super::rope_on(a, mixer) {
            let inv_freq = a.rope_inv_freq(dh as u64);
            rope(&mut q, nq * dh, &inv_freq, pos0);
            rope(&mut k, nkv * dh, &inv_freq, pos0);
        }
        [q, k, v]
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

