//! The CPU engine: HypeNet over a batch of sequences at once, fast. The
//! tokens of every sequence in a step are packed into one matrix of rows,
//! so each projection is one matrix product (matrixmultiply's sgemm: AVX2
//! and FMA natively, SIMD128 in wasm); attention and Lightning run per
//! (sequence, head), in blocks that are matrix products too, on every core
//! natively (rayon) and on one in the browser. Lightning prefill uses the
//! chunked form of the recurrence.
//!
//! The plain reference in `cpu.rs` is its oracle: the same numbers up to
//! the order of summation (tests/model_fast.rs holds them within 1e-5).

use std::ops::Range;

use super::cpu::{alibi_slopes, query_scale, Captured};
use super::gpu::Logits;
use crate::checkpoint::Checkpoint;
use crate::config::{Arch, Mixer};
use crate::error::{Error, Result};
use crate::names::{self, LayerNames};
use crate::source::ByteSource;

use super::par::{for_row_blocks, for_row_blocks3, map_tasks, rows_per_task};
use super::simd;

/// Query rows per attention block (each block packs its keys once), and
/// tokens per Lightning chunk.
const QUERY_BLOCK: usize = 256;
const CHUNK: usize = 64;

/// y = x W^T (+ y when `accumulate`) for x `[m, k]` (rows `x_stride` apart),
/// W `[n, k]` (PyTorch layout) and y `[m, n]`, split over rows across
/// threads when large enough to pay for it.
#[allow(clippy::too_many_arguments)]
fn gemm_nt(x: &[f32], x_stride: usize, w: &[f32], m: usize, k: usize, n: usize, y: &mut [f32], accumulate: bool) {
    if m == 0 || n == 0 {
        return;
    }
    let beta = if accumulate { 1.0 } else { 0.0 };
    let rows_per_task = super::par::rows_per_task(m, m * n * k);
    super::par::for_row_blocks(y, n, rows_per_task, |r0, block| {
        let rows = block.len() / n;
        // SAFETY: x holds rows r0..r0 + rows of `x_stride` values (k used),
        // w is [n, k] and block is [rows, n], as the strides below say.
        unsafe {
            matrixmultiply::sgemm(
                rows,
                k,
                n,
                1.0,
                x[r0 * x_stride..].as_ptr(),
                x_stride as isize,
                1,
                w.as_ptr(),
                1,
                k as isize,
                beta,
                block.as_mut_ptr(),
                n as isize,
                1,
            );
        }
    });
}

thread_local! {
    /// Each thread's scratch for attention scores, kept between calls: a
    /// fresh allocation of megabytes per block costs page faults.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `f` on `n` floats of this thread's scratch (contents unspecified).
fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < n {
            s.resize(n, 0.0);
        }
        f(&mut s[..n])
    })
}

/// c `[m, n]` = alpha a `[m, k]` b `[k, n]` (+ beta c) with general strides (row, column).
#[allow(clippy::too_many_arguments)]
fn gemm_strided(m: usize, k: usize, n: usize, alpha: f32, a: &[f32], (rsa, csa): (usize, usize), b: &[f32], (rsb, csb): (usize, usize), c: &mut [f32], beta: f32) {
    if m == 0 || n == 0 {
        return;
    }
    debug_assert!(c.len() >= m * n);
    debug_assert!(k == 0 || a.len() > (m - 1) * rsa + (k - 1) * csa);
    debug_assert!(k == 0 || b.len() > (k - 1) * rsb + (n - 1) * csb);
    // SAFETY: the asserts above bound every index the strides reach.
    unsafe {
        matrixmultiply::sgemm(m, k, n, alpha, a.as_ptr(), rsa as isize, csa as isize, b.as_ptr(), rsb as isize, csb as isize, beta, c.as_mut_ptr(), n as isize, 1);
    }
}

/// RMSNorm of every row of width w.len(), rows split across threads.
fn rmsnorm_into(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let width = w.len();
    let rows = x.len() / width;
    for_row_blocks(out, width, rows_per_task(rows, rows * width * 8), |r0, block| simd::rmsnorm(&x[r0 * width..][..block.len()], w, eps, block));
}

fn rmsnorm_rows(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    rmsnorm_into(x, w, eps, &mut out);
    out
}

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

#[derive(Clone)]
enum SeqLayer {
    Softmax { k: Vec<f32>, v: Vec<f32>, capture: Option<(Vec<f32>, Vec<f32>)> },
    Lightning(Vec<f32>),
}

impl FastSeq {
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Softmax layer `layer`'s capture (queries as they entered the dot
    /// products and log-sum-exps), as the reference's.
    pub fn captured(&self, layer: usize) -> Option<Captured<'_>> {
        let SeqLayer::Softmax { k, v, capture: Some((q, lse)) } = self.layers.get(layer)? else { return None };
        let (heads, kv_heads, head_dim) = self.attn_dims;
        Some(Captured { pos: self.pos, heads, kv_heads, head_dim, q, k, v, lse })
    }

    /// Lightning layer `layer`'s state `[nh, dl, dl]`.
    pub fn lightning_state(&self, layer: usize) -> Option<&[f32]> {
        match self.layers.get(layer)? {
            SeqLayer::Lightning(s) => Some(s),
            SeqLayer::Softmax { .. } => None,
        }
    }
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
            let gate = match mixer {
                Mixer::Softmax if arch.attn_use_output_gate => Some(n.o_gate.clone()),
                Mixer::Lightning if arch.lightning_use_output_gate => Some(n.z_proj.clone()),
                _ => None,
            };
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
                o_norm: if mixer == Mixer::Lightning && arch.lightning_use_output_norm { Some(read(n.o_norm.clone()).await?) } else { None },
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
        let l = &self.arch.lightning;
        let state = (l.heads * l.head_dim * l.head_dim) as usize;
        let layers = self
            .arch
            .mixers
            .iter()
            .map(|m| match m {
                Mixer::Softmax => SeqLayer::Softmax { k: Vec::new(), v: Vec::new(), capture: capture.then(Default::default) },
                Mixer::Lightning => SeqLayer::Lightning(vec![0.0; state]),
            })
            .collect();
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
            self.mixer(l, layer, &h, &positions, &ropes, &spans, seqs, &mut x);
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

    /// x += the layer's mixer over every sequence's rows.
    #[allow(clippy::too_many_arguments)]
    fn mixer(&self, l: usize, layer: &Layer, h: &[f32], positions: &[usize], ropes: &RopeTables, spans: &[Span], seqs: &mut [&mut FastSeq], x: &mut [f32]) {
        let a = &self.arch;
        let d = a.hidden_size as usize;
        let rows = h.len() / d;
        let (qw, kw, gw) = (layer.q_width, layer.kv_width, layer.gate_width);
        let width = qw + 2 * kw + gw;
        let mut proj = vec![0.0; rows * width];
        gemm_nt(h, d, &layer.qkvg, rows, d, width, &mut proj, false);
        let dh = a.heads(layer.mixer).head_dim as usize;
        let eps = a.rms_norm_eps as f32;
        let rope = match layer.mixer {
            Mixer::Softmax if a.attn_use_rope => ropes.get(dh),
            Mixer::Lightning if a.lightning_use_rope => ropes.get(dh),
            _ => None,
        };
        let hype = layer.mixer == Mixer::Softmax;
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
        let mut o = match layer.mixer {
            Mixer::Softmax => self.softmax_attention(l, &q, &k, &v, spans, seqs),
            Mixer::Lightning => self.lightning(l, &q, &k, &v, spans, seqs),
        };
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

    /// Causal softmax attention with GQA of every sequence's new rows over
    /// its cache (which they join first); o `[rows, heads * dh]`.
    fn softmax_attention(&self, l: usize, q: &[f32], k: &[f32], v: &[f32], spans: &[Span], seqs: &mut [&mut FastSeq]) -> Vec<f32> {
        let at = &self.arch.attn;
        let (heads, kv_heads, dh) = (at.heads as usize, at.kv_heads as usize, at.head_dim as usize);
        let (qw, kw) = (heads * dh, kv_heads * dh);
        for (s, span) in seqs.iter_mut().zip(spans) {
            let SeqLayer::Softmax { k: kc, v: vc, .. } = &mut s.layers[l] else { unreachable!("layer {l} is softmax") };
            kc.extend_from_slice(&k[span.row0 * kw..(span.row0 + span.rows) * kw]);
            vc.extend_from_slice(&v[span.row0 * kw..(span.row0 + span.rows) * kw]);
        }
        let caches: Vec<(&[f32], &[f32])> = seqs
            .iter()
            .map(|s| match &s.layers[l] {
                SeqLayer::Softmax { k, v, .. } => (k.as_slice(), v.as_slice()),
                SeqLayer::Lightning(_) => unreachable!("layer {l} is softmax"),
            })
            .collect();
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
        let results = map_tasks(&tasks, |&(si, h, ref block): &(usize, usize, Range<usize>)| {
            let span = spans[si];
            let (kc, vc) = caches[si];
            let g = h / group;
            let nq = block.len();
            let keys = span.pos0 + block.end;
            let q0 = (span.row0 + block.start) * qw + h * dh;
            with_scratch(nq * keys, |p| {
                gemm_strided(nq, dh, keys, scale, &q[q0..], (qw, 1), &kc[g * dh..], (1, kw), p, 0.0);
                let mut lse = Vec::with_capacity(nq);
                let mut inv = Vec::with_capacity(nq);
                for (i, row) in p.chunks_mut(keys).enumerate() {
                    let t = span.pos0 + block.start + i;
                    let (live, masked) = row.split_at_mut(t + 1);
                    let (max, sum) = simd::softmax_in_place(live);
                    lse.push(max + sum.ln());
                    inv.push(1.0 / sum);
                    masked.fill(0.0);
                }
                let mut o = vec![0.0f32; nq * dh];
                gemm_strided(nq, keys, dh, 1.0, p, (keys, 1), &vc[g * dh..], (kw, 1), &mut o, 0.0);
                for (row, f) in o.chunks_mut(dh).zip(inv) {
                    simd::scale(row, f);
                }
                (o, lse)
            })
        });
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
        for (s, span) in seqs.iter_mut().zip(spans) {
            if let SeqLayer::Softmax { capture: Some((cq, cl)), .. } = &mut s.layers[l] {
                cq.extend_from_slice(&q[span.row0 * qw..(span.row0 + span.rows) * qw]);
                cl.extend_from_slice(&lse[span.row0 * heads..(span.row0 + span.rows) * heads]);
            }
        }
        o
    }

    /// Lightning attention of every sequence's new rows, continued from
    /// its state, in chunks: within a chunk of C tokens starting from state
    /// S0, o_a = scale (gamma^(a+1) q_a S0 + sum_{j<=a} gamma^(a-j) (q_a . k_j) v_j)
    /// and the state becomes gamma^C S0 + sum_j gamma^(C-1-j) k_j^T v_j,
    /// which is the recurrence S_t = gamma S_{t-1} + k_t^T v_t, o_t = scale q_t S_t.
    fn lightning(&self, l: usize, q: &[f32], k: &[f32], v: &[f32], spans: &[Span], seqs: &mut [&mut FastSeq]) -> Vec<f32> {
        let a = &self.arch;
        let lt = &a.lightning;
        let (nh, nkv, dl) = (lt.heads as usize, lt.kv_heads as usize, lt.head_dim as usize);
        let (qw, kw) = (nh * dl, nkv * dl);
        let scale = a.lightning_scale.value(lt.head_dim) as f32;
        let group = nh / nkv;
        let tasks: Vec<(usize, usize)> = (0..spans.len()).flat_map(|si| (0..nh).map(move |h| (si, h))).collect();
        let states: Vec<&[f32]> = seqs
            .iter()
            .map(|s| match &s.layers[l] {
                SeqLayer::Lightning(st) => st.as_slice(),
                SeqLayer::Softmax { .. } => unreachable!("layer {l} is Lightning"),
            })
            .collect();
        let results = map_tasks(&tasks, |&(si, h): &(usize, usize)| {
            let span = spans[si];
            let gamma = self.gammas[h];
            // gamma^d for every distance within a chunk, and one past it.
            let mut pow = vec![1.0f32; CHUNK + 1];
            for d in 1..=CHUNK {
                pow[d] = pow[d - 1] * gamma;
            }
            // rev_pow[CHUNK - i + j] = gamma^(i - j): row i's decays, key by key.
            let rev_pow: Vec<f32> = pow.iter().rev().copied().collect();
            let g = h / group;
            let mut st = states[si][h * dl * dl..][..dl * dl].to_vec();
            let mut out = vec![0.0f32; span.rows * dl];
            let mut scores = vec![0.0f32; CHUNK * CHUNK];
            let mut kd = vec![0.0f32; CHUNK * dl];
            let mut qd = vec![0.0f32; CHUNK * dl];
            for c0 in (0..span.rows).step_by(CHUNK) {
                let c = CHUNK.min(span.rows - c0);
                let r0 = span.row0 + c0;
                let (qs, ks, vs) = (&q[r0 * qw + h * dl..], &k[r0 * kw + g * dl..], &v[r0 * kw + g * dl..]);
                // Intra-chunk: (Q K^T masked and decayed) V.
                let sc = &mut scores[..c * c];
                gemm_strided(c, dl, c, 1.0, qs, (qw, 1), ks, (1, kw), sc, 0.0);
                for (i, row) in sc.chunks_mut(c).enumerate() {
                    let (live, masked) = row.split_at_mut(i + 1);
                    simd::mul(live, &rev_pow[CHUNK - i..]);
                    masked.fill(0.0);
                }
                let o = &mut out[c0 * dl..(c0 + c) * dl];
                gemm_strided(c, c, dl, scale, sc, (c, 1), vs, (kw, 1), o, 0.0);
                // Inter-chunk: gamma^(a+1) q_a S0.
                for i in 0..c {
                    let f = pow[i + 1] * scale;
                    simd::scale_into(&mut qd[i * dl..][..dl], &qs[i * qw..][..dl], f);
                }
                gemm_strided(c, dl, dl, 1.0, &qd, (dl, 1), &st, (dl, 1), o, 1.0);
                // State: gamma^C S0 + (gamma^(C-1-j) k_j)^T v_j.
                simd::scale(&mut st, pow[c]);
                for j in 0..c {
                    let f = pow[c - 1 - j];
                    simd::scale_into(&mut kd[j * dl..][..dl], &ks[j * kw..][..dl], f);
                }
                gemm_strided(dl, c, dl, 1.0, &kd, (1, dl), vs, (kw, 1), &mut st, 1.0);
            }
            (out, st)
        });
        let rows: usize = spans.iter().map(|s| s.rows).sum();
        let mut o = vec![0.0f32; rows * qw];
        for (&(si, h), (out, st)) in tasks.iter().zip(results) {
            let span = spans[si];
            for (i, row) in out.chunks(dl).enumerate() {
                o[(span.row0 + i) * qw + h * dl..][..dl].copy_from_slice(row);
            }
            if let SeqLayer::Lightning(s) = &mut seqs[si].layers[l] {
                s[h * dl * dl..][..dl * dl].copy_from_slice(&st);
            }
        }
        o
    }
}

/// cos and sin of every packed row's position for each head width that
/// RoPE uses, computed once a step in f64 as the reference computes them.
struct RopeTables {
    tables: Vec<(usize, Vec<(f32, f32)>)>,
}

impl RopeTables {
    fn new(a: &Arch, positions: &[usize]) -> RopeTables {
        let mut widths = Vec::new();
        if a.attn_use_rope && a.mixers.contains(&Mixer::Softmax) {
            widths.push(a.attn.head_dim as usize);
        }
        if a.lightning_use_rope && a.mixers.contains(&Mixer::Lightning) && !widths.contains(&(a.lightning.head_dim as usize)) {
            widths.push(a.lightning.head_dim as usize);
        }
        let tables = widths
            .into_iter()
            .map(|dh| {
                let inv_freq = a.rope_inv_freq(dh as u64);
                let table = positions
                    .iter()
                    .flat_map(|&t| {
                        inv_freq.iter().map(move |f| {
                            let (sin, cos) = (t as f64 * f).sin_cos();
                            (cos as f32, sin as f32)
                        })
                    })
                    .collect();
                (dh, table)
            })
            .collect();
        RopeTables { tables }
    }

    fn get(&self, dh: usize) -> Option<RopeTable<'_>> {
        self.tables.iter().find(|(w, _)| *w == dh).map(|(_, t)| RopeTable { half: dh / 2, cs: t })
    }
}

#[derive(Clone, Copy)]
struct RopeTable<'a> {
    half: usize,
    cs: &'a [(f32, f32)],
}

impl<'a> RopeTable<'a> {
    fn row(&self, r: usize) -> &'a [(f32, f32)] {
        &self.cs[r * self.half..][..self.half]
    }
}

/// RoPE, rotate-half layout, on every head (width `dh`) of one row.
fn apply_rope(row: &mut [f32], dh: usize, cs: &[(f32, f32)]) {
    let half = dh / 2;
    for head in row.chunks_mut(dh) {
        let (x1s, x2s) = head.split_at_mut(half);
        for ((x1, x2), &(cos, sin)) in x1s.iter_mut().zip(x2s.iter_mut()).zip(cs) {
            let (a, b) = (*x1, *x2);
            *x1 = a * cos - b * sin;
            *x2 = b * cos + a * sin;
        }
    }
}
