//! The CPU engine: HypeNet over a batch of sequences at once, fast. The
//! tokens of every sequence in a step are packed into one matrix of rows,
//! so each projection is one matrix product (matrixmultiply's sgemm: AVX2
//! and FMA natively, SIMD128 in wasm); attention and Lightning run per
//! (sequence, head), in blocks that are matrix products too, on every core
//! natively (rayon) and on one in the browser. Lightning prefill uses the
//! chunked form of the recurrence.
//!
//! The plain reference in `cpu/` is its oracle: the same numbers up to
//! the order of summation (tests/model_fast.rs holds them within 1e-5).

mod blas;
mod mixers;
mod rope;

use super::cpu::{alibi_slopes, query_scale};
use super::engine::Logits;
use super::par::{for_row_blocks, for_row_blocks3, rows_per_task};
use super::{rope_on, scales_queries, simd};
use crate::checkpoint::Checkpoint;
use crate::config::{Arch, Mixer};
use crate::error::{Error, Result};
use crate::names::{self, LayerNames};
use crate::source::ByteSource;
use blas::{gemm_nt, rmsnorm_into, rmsnorm_rows};
use mixers::SeqLayer;
use rope::{apply_rope, RopeTables};

/// One layer's weights, f32, projections fused so that one product serves all.
struct Layer {
    input_norm: Vec<f32>,
    post_norm: Vec<f32>,
    /// q, k, v and the output gate (o_gate or z_proj) rows, `[q + 2 kv + gate, D]`.
    qkvg: Vec<f32>,
    /// Biases of q, k, v (`[q + 2 kv]`), where the model has them.
    qkv_bias: Option<Vec<f32>>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    /// Lightning's output norm.
    o_norm: Option<Vec<f32>>,
    o: Vec<f32>,
    o_bias: Option<Vec<f32>>,
    /// gate_proj then up_proj rows, `[2 I, D]`.
    mlp_in: Vec<f32>,
    mlp_down: Vec<f32>,
    mixer: Mixer,
    /// Widths of q, of k (= v) and of the gate (0 without one).
    q_width: usize,
    kv_width: usize,
    gate_width: usize,
}

/// All weights of a model in f32, laid out for the batched products.
pub struct FastModel {
    pub arch: Arch,
    embed: Vec<f32>,
    final_norm: Vec<f32>,
    /// The untied LM head; None when it is the embedding.
    lm_head: Option<Vec<f32>>,
    layers: Vec<Layer>,
    /// Lightning's per-head decay gamma_h = exp(-slope_h).
    gammas: Vec<f32>,
}

/// One sequence's state: its position and, per layer, what later tokens
/// read (the softmax layers' K and V, the Lightning layers' S).
#[derive(Clone)]
pub struct FastSeq {
    pos: usize,
    layers: Vec<SeqLayer>,
    attn_dims: (usize, usize, usize),
}

impl FastSeq {
    pub fn pos(&self) -> usize {
        self.pos
    }

}

/// What a step's mixers read of its rows: each packed row's position,
/// their RoPE tables, and where each sequence's rows sit.
#[derive(Clone, Copy)]
struct Pass<'a> {
    positions: &'a [usize],
    ropes: &'a RopeTables,
    spans: &'a [Span],
}

/// Where a sequence's rows sit in a packed step.
#[derive(Clone, Copy)]
struct Span {
    row0: usize,
    rows: usize,
    pos0: usize,
}

impl FastModel {
    pub async fn load<S: ByteSource>(ck: &Checkpoint<S>, arch: Arch) -> Result<FastModel> {
        let read = |name: String| async move { ck.read_tensor_f32(&name, "the CPU engine").await };
        let embed = read(names::EMBED.into()).await?;
        let final_norm = read(names::FINAL_NORM.into()).await?;
        let lm_head = if arch.tie_word_embeddings { None } else { Some(read(names::LM_HEAD.into()).await?) };
        let mut layers = Vec::with_capacity(arch.num_layers());
        for (l, &mixer) in arch.mixers.iter().enumerate() {
            let n = LayerNames::of(l);
            let h = arch.heads(mixer);
            let (q_width, kv_width) = ((h.heads * h.head_dim) as usize, (h.kv_heads * h.head_dim) as usize);
            let gate = mixers::output_gate(&arch, mixer, &n);
            let mut qkvg = read(n.q.weight.clone()).await?;
            qkvg.extend(read(n.k.weight.clone()).await?);
            qkvg.extend(read(n.v.weight.clone()).await?);
            if let Some(g) = &gate {
                qkvg.extend(read(g.clone()).await?);
            }
            let qkv_bias = if arch.attention_bias {
                let mut b = read(n.q.bias.clone()).await?;
                b.extend(read(n.k.bias.clone()).await?);
                b.extend(read(n.v.bias.clone()).await?);
                Some(b)
            } else {
                None
            };
            let qk_norm = arch.qk_norm(mixer);
            let mut mlp_in = read(n.mlp_gate.clone()).await?;
            mlp_in.extend(read(n.mlp_up.clone()).await?);
            layers.push(Layer {
                input_norm: read(n.input_norm.clone()).await?,
                post_norm: read(n.post_norm.clone()).await?,
                qkvg,
                qkv_bias,
                q_norm: if qk_norm { Some(read(n.q_norm.clone()).await?) } else { None },
                k_norm: if qk_norm { Some(read(n.k_norm.clone()).await?) } else { None },
                o_norm: match mixers::output_norm(&arch, mixer, &n) {
                    Some(name) => Some(read(name).await?),
                    None => None,
                },
                o: read(n.o.weight.clone()).await?,
                o_bias: if arch.o_bias { Some(read(n.o.bias.clone()).await?) } else { None },
                mlp_in,
                mlp_down: read(n.mlp_down.clone()).await?,
                mixer,
                q_width,
                kv_width,
                gate_width: if gate.is_some() { q_width } else { 0 },
            });
        }
        let gammas = alibi_slopes(arch.lightning.heads as usize).into_iter().map(|s| (-s).exp() as f32).collect();
        Ok(FastModel { arch, embed, final_norm, lm_head, layers, gammas })
    }

    /// Puts `values` in place of tensor `name` (an attention projection's
    /// weight or bias, or a q/k norm: what a merge replaces), exactly as
    /// loading a checkpoint holding them would.
    pub fn set_tensor(&mut self, name: &str, values: &[f32]) -> Result<()> {
        use names::{Proj, Role};
        let d = self.arch.hidden_size as usize;
        let unknown = || Error::Usage(format!("the CPU engine cannot swap {name:?}: only attention projections and q/k norms"));
        let (l, role) = names::role_of(name).filter(|(l, _)| *l < self.layers.len()).ok_or_else(unknown)?;
        let layer = &mut self.layers[l];
        let (q, kv) = (layer.q_width, layer.kv_width);
        // Where each projection's rows sit in the fused qkvg (and its bias).
        let rows = |p: Proj| match p {
            Proj::Q => Some(0..q),
            Proj::K => Some(q..q + kv),
            Proj::V => Some(q + kv..q + 2 * kv),
            Proj::O => None,
        };
        let slot: &mut [f32] = match role {
            Role::ProjWeight(Proj::O) => &mut layer.o,
            Role::ProjBias(Proj::O) => layer.o_bias.as_deref_mut().ok_or_else(unknown)?,
            Role::ProjWeight(p) => {
                let r = rows(p).ok_or_else(unknown)?;
                &mut layer.qkvg[r.start * d..r.end * d]
            }
            Role::ProjBias(p) => &mut layer.qkv_bias.as_mut().ok_or_else(unknown)?[rows(p).ok_or_else(unknown)?],
            Role::QNorm => layer.q_norm.as_deref_mut().ok_or_else(unknown)?,
            Role::KNorm => layer.k_norm.as_deref_mut().ok_or_else(unknown)?,
            _ => return Err(unknown()),
        };
        if slot.len() != values.len() {
            return Err(Error::Usage(format!("{name}: the engine holds {} values, the replacement {}", slot.len(), values.len())));
        }
        slot.copy_from_slice(values);
        Ok(())
    }

    /// A fresh sequence (position 0). `capture` keeps the softmax layers'
    /// queries and log-sum-exps for the routing diagnostics.
    pub fn new_seq(&self, capture: bool) -> FastSeq {
        let layers = self.arch.mixers.iter().map(|&m| SeqLayer::new(&self.arch, m, capture)).collect();
        let a = &self.arch.attn;
        FastSeq { pos: 0, layers, attn_dims: (a.heads as usize, a.kv_heads as usize, a.head_dim as usize) }
    }

    /// Runs `ids[i]` at the next positions of `seqs[i]`, all sequences in
    /// one packed pass, and returns the logits asked for: `Last`, one row
    /// per sequence `[B, V]`; `All`, every row in order `[sum n_i, V]`.
    /// On error no state has moved.
    pub fn step(&self, seqs: &mut [&mut FastSeq], ids: &[&[u32]], logits: Logits) -> Result<Vec<f32>> {
        let a = &self.arch;
        let (d, v) = (a.hidden_size as usize, a.vocab_size as usize);
        if seqs.len() != ids.len() {
            return Err(Error::Usage(format!("{} sequences, {} token lists", seqs.len(), ids.len())));
        }
        let mut spans = Vec::with_capacity(ids.len());
        let mut rows = 0;
        for (s, t) in seqs.iter().zip(ids) {
            if let Some(&id) = t.iter().find(|&&id| id as usize >= v) {
                return Err(Error::Usage(format!("token id {id} is outside the vocabulary ({v})")));
            }
            spans.push(Span { row0: rows, rows: t.len(), pos0: s.pos });
            rows += t.len();
        }
        let mut x = Vec::with_capacity(rows * d);
        for &id in ids.iter().flat_map(|t| t.iter()) {
            x.extend_from_slice(&self.embed[id as usize * d..][..d]);
        }
        let positions: Vec<usize> = spans.iter().flat_map(|s| s.pos0..s.pos0 + s.rows).collect();
        let ropes = RopeTables::new(a, &positions);
        let eps = a.rms_norm_eps as f32;
        let mut h = vec![0.0; rows * d];
        for (l, layer) in self.layers.iter().enumerate() {
            rmsnorm_into(&x, &layer.input_norm, eps, &mut h);
            self.mix(l, layer, &h, &Pass { positions: &positions, ropes: &ropes, spans: &spans }, seqs, &mut x);
            rmsnorm_into(&x, &layer.post_norm, eps, &mut h);
            self.mlp(layer, &h, rows, &mut x);
        }
        for (s, span) in seqs.iter_mut().zip(&spans) {
            s.pos += span.rows;
        }
        let picked: Vec<usize> = match logits {
            Logits::None => return Ok(Vec::new()),
            Logits::All => (0..rows).collect(),
            Logits::Last => spans.iter().filter(|s| s.rows > 0).map(|s| s.row0 + s.rows - 1).collect(),
        };
        let mut last = Vec::with_capacity(picked.len() * d);
        for r in &picked {
            last.extend_from_slice(&x[r * d..][..d]);
        }
        let normed = rmsnorm_rows(&last, &self.final_norm, eps);
        let head = self.lm_head.as_deref().unwrap_or(&self.embed);
        let mut out = vec![0.0; picked.len() * v];
        gemm_nt(&normed, d, head, picked.len(), d, v, &mut out, false);
        Ok(out)
    }

    /// x += down(silu(gate(h)) * up(h)) over all rows.
    fn mlp(&self, layer: &Layer, h: &[f32], rows: usize, x: &mut [f32]) {
        let (d, i) = (self.arch.hidden_size as usize, self.arch.intermediate_size as usize);
        let mut gu = vec![0.0; rows * 2 * i];
        gemm_nt(h, d, &layer.mlp_in, rows, d, 2 * i, &mut gu, false);
        let mut act = vec![0.0; rows * i];
        for_row_blocks(&mut act, i, rows_per_task(rows, rows * i * 32), |r0, block| {
            for (a, row) in block.chunks_mut(i).zip(gu[r0 * 2 * i..].chunks(2 * i)) {
                let (g, u) = row.split_at(i);
                a.copy_from_slice(g);
                simd::silu_mul(a, u);
            }
        });
        gemm_nt(&act, i, &layer.mlp_down, rows, i, d, x, true);
    }

    /// x += a mixer of the attention kind over every sequence's rows: one
    /// fused q/k/v(/gate) product, the heads prepared (bias, q/k norm, RoPE,
    /// query scaling) as the mixer's settings say, its core (`attend`),
    /// then its output norm and gate and o_proj.
    fn qkv_mixer(&self, l: usize, layer: &Layer, h: &[f32], pass: &Pass, seqs: &mut [&mut FastSeq], x: &mut [f32]) {
        let Pass { positions, ropes, spans } = *pass;
        let a = &self.arch;
        let d = a.hidden_size as usize;
        let rows = h.len() / d;
        let (qw, kw, gw) = (layer.q_width, layer.kv_width, layer.gate_width);
        let width = qw + 2 * kw + gw;
        let mut proj = vec![0.0; rows * width];
        gemm_nt(h, d, &layer.qkvg, rows, d, width, &mut proj, false);
        let dh = a.heads(layer.mixer).head_dim as usize;
        let eps = a.rms_norm_eps as f32;
        let rope = if rope_on(a, layer.mixer) { ropes.get(dh) } else { None };
        let hype = scales_queries(layer.mixer);
        // Row by row: split, bias, per-head norm, RoPE, the query's scale.
        let (mut q, mut k, mut v) = (vec![0.0; rows * qw], vec![0.0; rows * kw], vec![0.0; rows * kw]);
        for_row_blocks3([(&mut q, qw), (&mut k, kw), (&mut v, kw)], rows_per_task(rows, rows * width * 16), |r0, [q, k, v]| {
            let n = q.len() / qw;
            for (i, row) in proj[r0 * width..(r0 + n) * width].chunks(width).enumerate() {
                q[i * qw..][..qw].copy_from_slice(&row[..qw]);
                k[i * kw..][..kw].copy_from_slice(&row[qw..qw + kw]);
                v[i * kw..][..kw].copy_from_slice(&row[qw + kw..qw + 2 * kw]);
            }
            if let Some(b) = &layer.qkv_bias {
                let (bq, rest) = b.split_at(qw);
                let (bk, bv) = rest.split_at(kw);
                q.chunks_mut(qw).for_each(|x| x.iter_mut().zip(bq).for_each(|(x, b)| *x += b));
                k.chunks_mut(kw).for_each(|x| x.iter_mut().zip(bk).for_each(|(x, b)| *x += b));
                v.chunks_mut(kw).for_each(|x| x.iter_mut().zip(bv).for_each(|(x, b)| *x += b));
            }
            if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                simd::rmsnorm_in_place(q, qn, eps);
                simd::rmsnorm_in_place(k, kn, eps);
            }
            if let Some(t) = rope {
                for (i, (qr, kr)) in q.chunks_mut(qw).zip(k.chunks_mut(kw)).enumerate() {
                    let cs = t.row(r0 + i);
                    apply_rope(qr, dh, cs);
                    apply_rope(kr, dh, cs);
                }
            }
            if hype {
                for (i, row) in q.chunks_mut(qw).enumerate() {
                    simd::scale(row, query_scale(a.logits_scaling, positions[r0 + i]));
                }
            }
        });
        let mut o = self.attend(l, layer.mixer, [&q, &k, &v], spans, seqs);
        if let Some(w) = &layer.o_norm {
            let raw = o.clone();
            rmsnorm_into(&raw, w, eps, &mut o);
        }
        if gw > 0 {
            for_row_blocks(&mut o, qw, rows_per_task(rows, rows * qw * 16), |r0, block| {
                for (orow, prow) in block.chunks_mut(qw).zip(proj[r0 * width..].chunks(width)) {
                    simd::sigmoid_gate(orow, &prow[qw + 2 * kw..]);
                }
            });
        }
        gemm_nt(&o, qw, &layer.o, rows, qw, d, x, true);
        if let Some(b) = &layer.o_bias {
            for row in x.chunks_mut(d) {
                row.iter_mut().zip(b).for_each(|(x, b)| *x += b);
            }
        }
    }

}

