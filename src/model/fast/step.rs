//! The CPU engine's forward: a step of every sequence's new tokens through
//! every layer, packed into one matrix of rows, and the frame that mixers
//! of the attention kind share.

use super::blas::{gemm_nt, rmsnorm_into, rmsnorm_rows};
use super::mixers::SeqLayer;
use super::model::{FastModel, Layer};
use super::pass::{Pass, Span};
use super::rope::{apply_rope, RopeTables};
use super::seq::FastSeq;
use crate::error::{Error, Result};
use crate::model::calls::Logits;
use crate::model::cpu::query_scale;
use crate::model::mixer::check_finite;
use crate::model::mixer::{rope_on, scales_queries};
use crate::model::par::{for_row_blocks, for_row_blocks3, rows_per_task};
use crate::model::simd;

impl FastModel {
    /// A fresh sequence (position 0). `capture` keeps the softmax layers'
    /// queries and log-sum-exps for the routing diagnostics.
    pub fn new_seq(&self, capture: bool) -> FastSeq {
        let layers = (0..self.arch.num_layers())
            .map(|l| SeqLayer::new(&self.arch, l, capture))
            .collect();
        let a = &self.arch.attn;
        FastSeq {
            pos: 0,
            layers,
            attn_dims: (a.heads as usize, a.kv_heads as usize, a.head_dim as usize),
        }
    }

    /// Runs `ids[i]` at the next positions of `seqs[i]`, all sequences in
    /// one packed pass, and returns the logits asked for: `Last`, one row
    /// per sequence `[B, V]`; `All`, every row in order `[sum n_i, V]`.
    /// On error no state has moved, but for `Error::BrokeNumerically`, after which
    /// the sequences are of no use.
    pub fn step(
        &self,
        seqs: &mut [&mut FastSeq],
        ids: &[&[u32]],
        logits: Logits,
    ) -> Result<Vec<f32>> {
        let a = &self.arch;
        let (d, v) = (a.hidden_size as usize, a.vocab_size as usize);
        if seqs.len() != ids.len() {
            return Err(Error::Usage(format!(
                "{} sequences, {} token lists",
                seqs.len(),
                ids.len()
            )));
        }
        let mut spans = Vec::with_capacity(ids.len());
        let mut rows = 0;
        for (s, t) in seqs.iter().zip(ids) {
            if let Some(&id) = t.iter().find(|&&id| id as usize >= v) {
                return Err(Error::Usage(format!(
                    "token id {id} is outside the vocabulary ({v})"
                )));
            }
            spans.push(Span {
                row0: rows,
                rows: t.len(),
                pos0: s.pos,
            });
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
            let mut states: Vec<&mut SeqLayer> =
                seqs.iter_mut().map(|s| &mut s.layers[l]).collect();
            self.mix(
                layer,
                &h,
                &Pass {
                    positions: &positions,
                    ropes: &ropes,
                    spans: &spans,
                },
                &mut states,
                &mut x,
            );
            rmsnorm_into(&x, &layer.post_norm, eps, &mut h);
            self.mlp(layer, &h, rows, &mut x);
            check_finite(a, Some(l), &x)?;
        }
        for (s, span) in seqs.iter_mut().zip(&spans) {
            s.pos += span.rows;
        }
        let picked: Vec<usize> = match logits {
            Logits::None => return Ok(Vec::new()),
            Logits::All => (0..rows).collect(),
            Logits::Last => spans
                .iter()
                .filter(|s| s.rows > 0)
                .map(|s| s.row0 + s.rows - 1)
                .collect(),
        };
        let mut last = Vec::with_capacity(picked.len() * d);
        for r in &picked {
            last.extend_from_slice(&x[r * d..][..d]);
        }
        let normed = rmsnorm_rows(&last, &self.final_norm, eps);
        let head = self.lm_head.as_deref().unwrap_or(&self.embed);
        let mut out = vec![0.0; picked.len() * v];
        gemm_nt(&normed, d, head, picked.len(), d, v, &mut out, false);
        check_finite(a, None, &out)?;
        Ok(out)
    }

    /// x += down(silu(gate(h)) * up(h)) over all rows.
    fn mlp(&self, layer: &Layer, h: &[f32], rows: usize, x: &mut [f32]) {
        let (d, i) = (
            self.arch.hidden_size as usize,
            self.arch.intermediate_size as usize,
        );
        let mut gu = vec![0.0; rows * 2 * i];
        gemm_nt(h, d, &layer.mlp_in, rows, d, 2 * i, &mut gu, false);
        let mut act = vec![0.0; rows * i];
        for_row_blocks(
            &mut act,
            i,
            rows_per_task(rows, rows * i * 32),
            |r0, block| {
                for (a, row) in block.chunks_mut(i).zip(gu[r0 * 2 * i..].chunks(2 * i)) {
                    let (g, u) = row.split_at(i);
                    a.copy_from_slice(g);
                    simd::silu_mul(a, u);
                }
            },
        );
        gemm_nt(&act, i, &layer.mlp_down, rows, i, d, x, true);
    }

    /// x += a mixer of the attention kind over every sequence's rows: one
    /// fused q/k/v(/gate) product, the heads prepared (bias, q/k norm, RoPE,
    /// query scaling) as the mixer's settings say, its core (`attend`),
    /// then its output norm and gate and o_proj.
    pub(super) fn qkv_mixer(
        &self,
        layer: &Layer,
        h: &[f32],
        pass: &Pass,
        states: &mut [&mut SeqLayer],
        x: &mut [f32],
    ) {
        let Pass {
            positions,
            ropes,
            spans,
        } = *pass;
        let a = &self.arch;
        let d = a.hidden_size as usize;
        let rows = h.len() / d;
        let (qw, kw, gw) = (layer.q_width, layer.kv_width, layer.gate_width);
        let width = qw + 2 * kw + gw;
        let mut proj = vec![0.0; rows * width];
        gemm_nt(h, d, &layer.qkvg, rows, d, width, &mut proj, false);
        let dh = a.heads(layer.mixer).head_dim as usize;
        let eps = a.rms_norm_eps as f32;
        let rope = if rope_on(a, layer.mixer) {
            ropes.get(dh)
        } else {
            None
        };
        let hype = scales_queries(layer.mixer);
        // Row by row: split, bias, per-head norm, RoPE, the query's scale.
        let (mut q, mut k, mut v) = (
            vec![0.0; rows * qw],
            vec![0.0; rows * kw],
            vec![0.0; rows * kw],
        );
        for_row_blocks3(
            [(&mut q, qw), (&mut k, kw), (&mut v, kw)],
            rows_per_task(rows, rows * width * 16),
            |r0, [q, k, v]| {
                let n = q.len() / qw;
                for (i, row) in proj[r0 * width..(r0 + n) * width].chunks(width).enumerate() {
                    q[i * qw..][..qw].copy_from_slice(&row[..qw]);
                    k[i * kw..][..kw].copy_from_slice(&row[qw..qw + kw]);
                    v[i * kw..][..kw].copy_from_slice(&row[qw + kw..qw + 2 * kw]);
                }
                if let Some(b) = &layer.qkv_bias {
                    let (bq, rest) = b.split_at(qw);
                    let (bk, bv) = rest.split_at(kw);
                    q.chunks_mut(qw)
                        .for_each(|x| x.iter_mut().zip(bq).for_each(|(x, b)| *x += b));
                    k.chunks_mut(kw)
                        .for_each(|x| x.iter_mut().zip(bk).for_each(|(x, b)| *x += b));
                    v.chunks_mut(kw)
                        .for_each(|x| x.iter_mut().zip(bv).for_each(|(x, b)| *x += b));
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
            },
        );
        let mut o = self.attend(layer.mixer, [&q, &k, &v], spans, states);
        if let Some(w) = &layer.o_norm {
            let raw = o.clone();
            rmsnorm_into(&raw, w, eps, &mut o);
        }
        if gw > 0 {
            for_row_blocks(
                &mut o,
                qw,
                rows_per_task(rows, rows * qw * 16),
                |r0, block| {
                    for (orow, prow) in block.chunks_mut(qw).zip(proj[r0 * width..].chunks(width)) {
                        simd::sigmoid_gate(orow, &prow[qw + 2 * kw..]);
                    }
                },
            );
        }
        gemm_nt(&o, qw, &layer.o, rows, qw, d, x, true);
        if let Some(b) = &layer.o_bias {
            for row in x.chunks_mut(d) {
                row.iter_mut().zip(b).for_each(|(x, b)| *x += b);
            }
        }
    }
}
