//! HypeNet in plain f32 Rust, written to be read next to SPEC-hypenet.md:
//! one function per formula, shapes in comments, no tricks. Prefill of a
//! whole sequence from position 0 (decode comes with the engine issue).

use std::collections::HashMap;

use crate::checkpoint::Checkpoint;
use crate::config::{Arch, LightningScale, LogitsScaling, Mixer};
use crate::error::{Error, Result};
use crate::source::ByteSource;

/// All weights decoded to f32, by tensor name.
pub struct CpuModel {
    pub arch: Arch,
    w: HashMap<String, Vec<f32>>,
}

impl CpuModel {
    /// Decodes every tensor the architecture names (BF16/F16/F32).
    pub async fn load<S: ByteSource>(ck: &Checkpoint<S>, arch: Arch) -> Result<CpuModel> {
        let mut w = HashMap::new();
        for (name, _) in arch.expected_tensors() {
            w.insert(name.clone(), ck.read_tensor_f32(&name, "the CPU model").await?);
        }
        Ok(CpuModel { arch, w })
    }

    fn t(&self, name: &str) -> &[f32] {
        &self.w[name]
    }

    fn opt(&self, name: &str) -> Option<&[f32]> {
        self.w.get(name).map(Vec::as_slice)
    }

    /// Logits `[T, V]` (row-major) for `ids` at positions 0..T.
    pub fn forward(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let a = &self.arch;
        let (d, v) = (a.hidden_size as usize, a.vocab_size as usize);
        let embed = self.t("model.embed_tokens.weight");
        // x = embed[ids]                                   (T, D)
        let mut x = Vec::with_capacity(ids.len() * d);
        for &id in ids {
            let id = id as usize;
            if id >= v {
                return Err(Error::Usage(format!("token id {id} is outside the vocabulary ({v})")));
            }
            x.extend_from_slice(&embed[id * d..(id + 1) * d]);
        }
        for (l, mixer) in a.mixers.iter().enumerate() {
            let p = |s: &str| format!("model.layers.{l}.{s}");
            // x = x + mixer(rmsnorm(x, input_layernorm))
            let h = rmsnorm_rows(&x, self.t(&p("input_layernorm.weight")), a.rms_norm_eps);
            let y = match mixer {
                Mixer::Softmax => self.softmax_attention(l, &h),
                Mixer::Lightning => self.lightning_attention(l, &h),
            };
            add(&mut x, &y);
            // x = x + mlp(rmsnorm(x, post_attention_layernorm))
            let h = rmsnorm_rows(&x, self.t(&p("post_attention_layernorm.weight")), a.rms_norm_eps);
            add(&mut x, &self.mlp(l, &h));
        }
        let h = rmsnorm_rows(&x, self.t("model.norm.weight"), a.rms_norm_eps);
        let head = if a.tie_word_embeddings { embed } else { self.t("lm_head.weight") };
        Ok(linear(&h, head, d, v))
    }

    /// down_proj(silu(gate_proj(x)) * up_proj(x))
    fn mlp(&self, l: usize, h: &[f32]) -> Vec<f32> {
        let (d, i) = (self.arch.hidden_size as usize, self.arch.intermediate_size as usize);
        let p = |s: &str| format!("model.layers.{l}.mlp.{s}.weight");
        let gate = linear(h, self.t(&p("gate_proj")), d, i);
        let up = linear(h, self.t(&p("up_proj")), d, i);
        let act: Vec<f32> = gate.iter().zip(&up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
        linear(&act, self.t(&p("down_proj")), i, d)
    }

    /// q, k, v projections (+ biases), split later into heads.
    fn qkv(&self, l: usize, h: &[f32], q_width: usize, kv_width: usize) -> [Vec<f32>; 3] {
        let d = self.arch.hidden_size as usize;
        let proj = |name: &str, width: usize| {
            let p = format!("model.layers.{l}.self_attn.{name}_proj");
            let mut y = linear(h, self.t(&format!("{p}.weight")), d, width);
            if let Some(b) = self.opt(&format!("{p}.bias")) {
                y.chunks_mut(width).for_each(|row| add(row, b));
            }
            y
        };
        [proj("q", q_width), proj("k", kv_width), proj("v", kv_width)]
    }

    /// o_proj(o), with its bias when the model has one.
    fn out_proj(&self, l: usize, o: &[f32], width: usize) -> Vec<f32> {
        let d = self.arch.hidden_size as usize;
        let p = format!("model.layers.{l}.self_attn.o_proj");
        let mut y = linear(o, self.t(&format!("{p}.weight")), width, d);
        if let Some(b) = self.opt(&format!("{p}.bias")) {
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
    /// RoPE, HyPE on the query, and the sigmoid output gate.
    fn softmax_attention(&self, l: usize, h: &[f32]) -> Vec<f32> {
        let a = &self.arch;
        let (heads, kv_heads, dh) = (a.attn.heads as usize, a.attn.kv_heads as usize, a.attn.head_dim as usize);
        let t_len = h.len() / a.hidden_size as usize;
        let [mut q, mut k, v] = self.qkv(l, h, heads * dh, kv_heads * dh);
        let p = |s: &str| format!("model.layers.{l}.self_attn.{s}");
        norm_heads(&mut q, self.t(&p("q_norm.weight")), dh, a.rms_norm_eps);
        norm_heads(&mut k, self.t(&p("k_norm.weight")), dh, a.rms_norm_eps);
        if a.attn_use_rope {
            rope(&mut q, heads * dh, dh, a.rope_theta);
            rope(&mut k, kv_heads * dh, dh, a.rope_theta);
        }
        // HyPE scales only the query: q_h *= ln(t + A) / ln(A); a float s scales by s.
        for (t, row) in q.chunks_mut(heads * dh).enumerate() {
            let s = match a.logits_scaling {
                LogitsScaling::None => 1.0,
                LogitsScaling::Constant(s) => s as f32,
                LogitsScaling::Hype(big_a) => ((t as f64 + big_a).ln() / big_a.ln()) as f32,
            };
            row.iter_mut().for_each(|x| *x *= s);
        }
        let group = heads / kv_heads;
        let scale = 1.0 / (dh as f32).sqrt();
        let mut o = vec![0.0f32; t_len * heads * dh];
        let mut p_row = vec![0.0f32; t_len];
        for hd in 0..heads {
            let g = hd / group;
            for t in 0..t_len {
                let qv = &q[t * heads * dh + hd * dh..][..dh];
                // logit(t, s) = q . k / sqrt(dh) for s <= t, softmax in f32
                let mut max = f32::NEG_INFINITY;
                for s in 0..=t {
                    let kv = &k[s * kv_heads * dh + g * dh..][..dh];
                    p_row[s] = dot(qv, kv) * scale;
                    max = max.max(p_row[s]);
                }
                let mut sum = 0.0;
                for p in &mut p_row[..=t] {
                    *p = (*p - max).exp();
                    sum += *p;
                }
                let out = &mut o[t * heads * dh + hd * dh..][..dh];
                for s in 0..=t {
                    let w = p_row[s] / sum;
                    let vv = &v[s * kv_heads * dh + g * dh..][..dh];
                    out.iter_mut().zip(vv).for_each(|(o, v)| *o += w * v);
                }
            }
        }
        if a.attn_use_output_gate {
            self.gate(&mut o, h, &p("o_gate.weight"), heads * dh);
        }
        self.out_proj(l, &o, heads * dh)
    }

    /// Lightning attention as the literal recurrence:
    /// S_h(t) = gamma_h S_h(t-1) + k_h(t)^T v_h(t),  o_h(t) = scale q_h(t) S_h(t).
    fn lightning_attention(&self, l: usize, h: &[f32]) -> Vec<f32> {
        let a = &self.arch;
        let (nh, nkv, dl) = (a.lightning.heads as usize, a.lightning.kv_heads as usize, a.lightning.head_dim as usize);
        let t_len = h.len() / a.hidden_size as usize;
        let [mut q, mut k, v] = self.qkv(l, h, nh * dl, nkv * dl);
        let p = |s: &str| format!("model.layers.{l}.self_attn.{s}");
        if a.lightning_use_qk_norm {
            norm_heads(&mut q, self.t(&p("q_norm.weight")), dl, a.rms_norm_eps);
            norm_heads(&mut k, self.t(&p("k_norm.weight")), dl, a.rms_norm_eps);
        }
        if a.lightning_use_rope {
            rope(&mut q, nh * dl, dl, a.rope_theta);
            rope(&mut k, nkv * dl, dl, a.rope_theta);
        }
        let scale = match a.lightning_scale {
            LightningScale::InvSqrtD => 1.0 / (dl as f32).sqrt(),
            LightningScale::InvD => 1.0 / dl as f32,
            LightningScale::One => 1.0,
        };
        let group = nh / nkv;
        let mut o = vec![0.0f32; t_len * nh * dl];
        for (hd, slope) in alibi_slopes(nh).into_iter().enumerate() {
            let gamma = (-slope).exp() as f32;
            let g = hd / group;
            let mut state = vec![0.0f32; dl * dl]; // S[i][j]: i over k, j over v
            for t in 0..t_len {
                let kt = &k[t * nkv * dl + g * dl..][..dl];
                let vt = &v[t * nkv * dl + g * dl..][..dl];
                for i in 0..dl {
                    let row = &mut state[i * dl..(i + 1) * dl];
                    row.iter_mut().zip(vt).for_each(|(s, v)| *s = gamma * *s + kt[i] * v);
                }
                let qt = &q[t * nh * dl + hd * dl..][..dl];
                let out = &mut o[t * nh * dl + hd * dl..][..dl];
                for i in 0..dl {
                    let qi = qt[i] * scale;
                    out.iter_mut().zip(&state[i * dl..(i + 1) * dl]).for_each(|(o, s)| *o += qi * s);
                }
            }
        }
        if a.lightning_use_output_norm {
            // rmsnorm over the full width nh * dl
            o = rmsnorm_rows(&o, self.t(&p("o_norm.weight")), a.rms_norm_eps);
        }
        if a.lightning_use_output_gate {
            self.gate(&mut o, h, &p("z_proj.weight"), nh * dl);
        }
        self.out_proj(l, &o, nh * dl)
    }
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

/// RoPE, rotate-half layout, on every head (width `dh`) of each row of
/// `row_width` values; row t is at position t.
fn rope(x: &mut [f32], row_width: usize, dh: usize, theta: f64) {
    let half = dh / 2;
    let inv_freq: Vec<f64> = (0..half).map(|j| theta.powf(-2.0 * j as f64 / dh as f64)).collect();
    for (t, row) in x.chunks_mut(row_width).enumerate() {
        for head in row.chunks_mut(dh) {
            for j in 0..half {
                let (sin, cos) = (t as f64 * inv_freq[j]).sin_cos();
                let (sin, cos) = (sin as f32, cos as f32);
                let (x1, x2) = (head[j], head[j + half]);
                head[j] = x1 * cos - x2 * sin;
                head[j + half] = x2 * cos + x1 * sin;
            }
        }
    }
}
