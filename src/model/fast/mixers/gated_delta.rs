//! The gated delta rule in the CPU engine (SPEC-gdn): one fused product for
//! q, k, v, z, b and a, Qwen3.5's front end (the depthwise causal
//! convolution continued from each sequence's last inputs), then what every
//! gated-delta layer shares (a JetBlock's front end is `jet.rs`): per
//! (sequence, value head) the chunked (WY) form of the recurrence as matrix
//! products, the recurrence itself for a single token, the gated RMSNorm
//! and the output projection.
//!
//! Within a chunk of c tokens from state S, with G_i the cumulative log
//! decay to token i (inclusive), the recurrence S_i = e^{g_i} S_{i-1} +
//! k_i u_i^T, u_i = beta_i (v_i - e^{g_i} S_{i-1}^T k_i) unrolls to
//! u = T (beta v) - T (beta e^G k) S with T = (I + L)^-1,
//! L_ij = beta_i (k_i . k_j) e^{G_i - G_j} for j < i; then
//! o_i = e^{G_i} q_i S + sum_{j <= i} (q_i . k_j) e^{G_i - G_j} u_j and
//! S' = e^{G_c} S + sum_j e^{G_c - G_j} k_j u_j^T.

use crate::config::{Arch, Mixer};
use crate::model::fast::blas::{gemm_nt, gemm_strided};
use crate::model::fast::model::{Conv, FastModel, GdnWeights, Layer};
use crate::model::fast::pass::Span;
use crate::model::mixer::conv_channels;
use crate::model::par::{for_row_blocks, map_tasks, rows_per_task};
use crate::model::simd;

/// Tokens per chunk of the WY form, as transformers and fla chunk.
const CHUNK: usize = 64;

/// What a gated-delta layer (Qwen3.5's or a JetBlock) of one sequence
/// carries between steps.
#[derive(Clone)]
pub struct GdnState {
    /// S of every value head, `[nv, dk, dv]`.
    s: Vec<f32>,
    /// The convolution's last K-1 inputs (q, k and v in Qwen3.5, v in a
    /// JetBlock), oldest first, `[K-1, C]`; zeros before the first token.
    conv: Vec<f32>,
}

impl GdnState {
    pub(super) fn new(arch: &Arch, mixer: Mixer) -> GdnState {
        let g = &arch.gdn;
        GdnState {
            s: vec![0.0; (g.value_heads * g.key_dim * g.value_dim) as usize],
            conv: vec![0.0; ((g.conv_kernel - 1) * conv_channels(arch, mixer)) as usize],
        }
    }
}

/// The layer's sizes, read once per call.
#[derive(Clone, Copy)]
pub(super) struct Dims {
    pub(super) nk: usize,
    pub(super) nv: usize,
    pub(super) dk: usize,
    pub(super) dv: usize,
    /// Width of q, k and v side by side, and the convolution's taps.
    pub(super) c: usize,
    pub(super) k: usize,
    /// The first column of q, k, v that the convolution runs over: 0 in
    /// Qwen3.5 (all of them), v's first in a JetBlock.
    pub(super) conv0: usize,
    /// Width of a row of the fused projection: q, k, v, z, b, a (and a
    /// JetBlock's kernel generator's hidden units).
    pub(super) pw: usize,
}

impl Dims {
    pub(super) fn of(arch: &Arch, mixer: Mixer) -> Dims {
        let g = &arch.gdn;
        let (c, vw, nv) = (
            g.conv_channels() as usize,
            g.value_width() as usize,
            g.value_heads as usize,
        );
        Dims {
            nk: g.key_heads as usize,
            nv,
            dk: g.key_dim as usize,
            dv: g.value_dim as usize,
            c,
            k: g.conv_kernel as usize,
            conv0: c - conv_channels(arch, mixer) as usize,
            pw: c
                + vw
                + 2 * nv
                + if mixer == Mixer::Jet {
                    g.generator as usize
                } else {
                    0
                },
        }
    }

    /// Width of a prepared row: q, k, v, then beta and g per value head.
    pub(super) fn row(&self) -> usize {
        self.c + 2 * self.nv
    }

    /// Where z starts in a row of the fused projection (after q, k, v).
    fn z0(&self) -> usize {
        self.c
    }

    /// Where b starts in it (after z); a follows.
    fn b0(&self) -> usize {
        self.c + self.nv * self.dv
    }
}

pub(super) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// log(1 + e^x), as torch's softplus (linear above 20).
fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

impl FastModel {
    /// x += a gated-delta layer (Qwen3.5) over every sequence's rows
    /// (normed in `h`), continuing each sequence's state.
    pub(super) fn gated_delta(
        &self,
        layer: &Layer,
        h: &[f32],
        spans: &[Span],
        states: &mut [&mut GdnState],
        x: &mut [f32],
    ) {
        let (w, dims) = gdn_weights(self, layer);
        let proj = project(self, layer, h, dims);
        let Conv::Static(taps) = &w.conv else {
            unreachable!("a Qwen3.5 gated-delta layer convolves with fixed taps")
        };
        let prepared = prepare(&proj, taps, w, dims, spans, states);
        self.delta_rule_out(layer, &proj, &prepared, dims, spans, states, x);
    }

    /// What every gated-delta layer does once its front end has prepared
    /// its rows (`prepare`'s layout): x += o_proj(gated RMSNorm(the delta
    /// rule's o) with z from the fused projection `proj`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn delta_rule_out(
        &self,
        layer: &Layer,
        proj: &[f32],
        prepared: &[f32],
        dims: Dims,
        spans: &[Span],
        states: &mut [&mut GdnState],
        x: &mut [f32],
    ) {
        let (w, _) = gdn_weights(self, layer);
        let a = &self.arch;
        let (d, vw, pw) = (a.hidden_size as usize, dims.nv * dims.dv, dims.pw);
        let rows = proj.len() / pw;
        let mut o = self.delta_rule(prepared, dims, spans, states);
        let eps = a.gdn_norm_eps as f32;
        for_row_blocks(
            &mut o,
            vw,
            rows_per_task(rows, rows * vw * 16),
            |r0, block| {
                for (orow, prow) in block.chunks_mut(vw).zip(proj[r0 * pw..].chunks(pw)) {
                    let z = &prow[dims.z0()..][..vw];
                    simd::rmsnorm_in_place(orow, &w.norm, eps);
                    simd::silu_mul_into(orow, z);
                }
            },
        );
        gemm_nt(&o, vw, &layer.o, rows, vw, d, x, true);
    }

    /// The delta rule over the prepared rows of every sequence, per
    /// (sequence, value head), advancing each S; o `[rows, nv dv]`.
    fn delta_rule(
        &self,
        prepared: &[f32],
        dims: Dims,
        spans: &[Span],
        states: &mut [&mut GdnState],
    ) -> Vec<f32> {
        let Dims { nv, dk, dv, .. } = dims;
        let tasks: Vec<(usize, usize)> = (0..spans.len())
            .filter(|&si| spans[si].rows > 0)
            .flat_map(|si| (0..nv).map(move |j| (si, j)))
            .collect();
        let before: Vec<&[f32]> = states.iter().map(|s| s.s.as_slice()).collect();
        let results = map_tasks(&tasks, |&(si, j): &(usize, usize)| {
            let mut st = before[si][j * dk * dv..][..dk * dv].to_vec();
            let span = spans[si];
            let out = if span.rows == 1 {
                recurrent_step(prepared, dims, span.row0, j, &mut st)
            } else {
                chunked(prepared, dims, span, j, &mut st)
            };
            (out, st)
        });
        let rows: usize = spans.iter().map(|s| s.rows).sum();
        let vw = nv * dv;
        let mut o = vec![0.0f32; rows * vw];
        for (&(si, j), (out, st)) in tasks.iter().zip(results) {
            let span = spans[si];
            for (i, row) in out.chunks(dv).enumerate() {
                o[(span.row0 + i) * vw + j * dv..][..dv].copy_from_slice(row);
            }
            states[si].s[j * dk * dv..][..dk * dv].copy_from_slice(&st);
        }
        o
    }
}

/// The layer's own weights and its sizes.
fn gdn_weights<'a>(m: &FastModel, layer: &'a Layer) -> (&'a GdnWeights, Dims) {
    let w = layer
        .gdn
        .as_ref()
        .expect("a gated-delta layer loads its weights");
    (w, Dims::of(&m.arch, layer.mixer))
}

/// The fused projection of every row: `[rows, pw]`.
pub(super) fn project(m: &FastModel, layer: &Layer, h: &[f32], dims: Dims) -> Vec<f32> {
    let d = m.arch.hidden_size as usize;
    let rows = h.len() / d;
    let mut proj = vec![0.0; rows * dims.pw];
    gemm_nt(h, d, &layer.qkvg, rows, d, dims.pw, &mut proj, false);
    proj
}

/// Qwen3.5's front end: every row's q, k, v after the causal convolution
/// with fixed `taps` (`[K, C]`, tap-major; continued from each sequence's
/// last inputs, which it then advances) and SiLU, then what
/// [`finish_row`] adds: `[rows, C + 2 nv]`.
fn prepare(
    proj: &[f32],
    taps: &[f32],
    w: &GdnWeights,
    dims: Dims,
    spans: &[Span],
    states: &mut [&mut GdnState],
) -> Vec<f32> {
    let Dims { c, k, pw, .. } = dims;
    let rw = dims.row();
    let rows: usize = spans.iter().map(|s| s.rows).sum();
    let mut out = vec![0.0f32; rows * rw];
    for (span, state) in spans.iter().zip(states.iter_mut()) {
        if span.rows == 0 {
            continue;
        }
        let input = ConvInputs::new(proj, dims, *span, state);
        let block = &mut out[span.row0 * rw..(span.row0 + span.rows) * rw];
        for_row_blocks(
            block,
            rw,
            rows_per_task(span.rows, span.rows * c * k * 4),
            |t0, block| {
                for (i, row) in block.chunks_mut(rw).enumerate() {
                    let t = t0 + i;
                    conv_row(
                        &mut row[..c],
                        k,
                        |tap| &taps[tap * c..][..c],
                        |tap| input.at(t + tap),
                    );
                    finish_row(row, &proj[(span.row0 + t) * pw..][..pw], w, dims);
                }
            },
        );
        keep_history(proj, dims, *span, state);
    }
    out
}

/// A span's convolution inputs (the convolved columns of the fused
/// projection), preceded by its sequence's last K-1.
#[derive(Clone, Copy)]
pub(super) struct ConvInputs<'a> {
    proj: &'a [f32],
    history: &'a [f32],
    dims: Dims,
    span: Span,
}

impl<'a> ConvInputs<'a> {
    pub(super) fn new(proj: &'a [f32], dims: Dims, span: Span, state: &'a GdnState) -> Self {
        ConvInputs {
            proj,
            history: &state.conv,
            dims,
            span,
        }
    }

    /// Input row `t`, t counted from K-1 rows before the span's first row
    /// (those come from the history).
    pub(super) fn at(&self, t: usize) -> &'a [f32] {
        let Dims {
            c, k, conv0, pw, ..
        } = self.dims;
        let cc = c - conv0;
        if t < k - 1 {
            &self.history[t * cc..][..cc]
        } else {
            &self.proj[(self.span.row0 + t - (k - 1)) * pw + conv0..][..cc]
        }
    }
}

/// A sequence's history once its span is done: the last K-1 inputs, of
/// the history, then of the span's rows.
pub(super) fn keep_history(proj: &[f32], dims: Dims, span: Span, state: &mut GdnState) {
    let Dims {
        c, k, conv0, pw, ..
    } = dims;
    let cc = c - conv0;
    let mut all = std::mem::take(&mut state.conv);
    for t in 0..span.rows {
        all.extend_from_slice(&proj[(span.row0 + t) * pw + conv0..][..cc]);
    }
    state.conv = all.split_off(all.len() - (k - 1) * cc);
}

/// y = silu(sum_tap taps(tap) * input(tap)), elementwise over channels:
/// one row of a causal convolution of `k` taps, inputs oldest first.
pub(super) fn conv_row<'a>(
    y: &mut [f32],
    k: usize,
    taps: impl Fn(usize) -> &'a [f32],
    input: impl Fn(usize) -> &'a [f32],
) {
    y.fill(0.0);
    for tap in 0..k {
        y.iter_mut()
            .zip(taps(tap).iter().zip(input(tap)))
            .for_each(|(y, (w, x))| *y += w * x);
    }
    y.iter_mut().for_each(|y| *y *= sigmoid(*y));
}

/// What every gated-delta layer does to a prepared row once its front end
/// has written q, k and v (`row[..C]`): q and k L2-normed per key head, q
/// scaled by dk^-1/2, then beta and g per value head from the row's fused
/// projection `p`.
pub(super) fn finish_row(row: &mut [f32], p: &[f32], w: &GdnWeights, dims: Dims) {
    let Dims { nk, nv, dk, c, .. } = dims;
    let (qk, scale) = (nk * dk, 1.0 / (dk as f32).sqrt());
    let (qkv, bg) = row.split_at_mut(c);
    for piece in qkv[..2 * qk].chunks_mut(dk) {
        let ss: f32 = piece.iter().map(|v| v * v).sum();
        simd::scale(piece, 1.0 / (ss + 1e-6).sqrt());
    }
    simd::scale(&mut qkv[..qk], scale);
    let (b, alpha) = p[dims.b0()..][..2 * nv].split_at(nv);
    for j in 0..nv {
        bg[j] = sigmoid(b[j]);
        bg[nv + j] = w.rate[j] * softplus(alpha[j] + w.dt_bias[j]);
    }
}

/// Where value head `j` reads its key head, its value and its beta and g
/// in a prepared row.
struct Head {
    q: usize,
    k: usize,
    v: usize,
    beta: usize,
    g: usize,
}

fn head(dims: Dims, j: usize) -> Head {
    let kh = j / (dims.nv / dims.nk);
    let qk = dims.nk * dims.dk;
    Head {
        q: kh * dims.dk,
        k: qk + kh * dims.dk,
        v: 2 * qk + j * dims.dv,
        beta: dims.c + j,
        g: dims.c + dims.nv + j,
    }
}

/// One token of value head `j` (prepared row `r`) by the recurrence:
/// S = e^g S; u = beta (v - S^T k); S += k u^T; o = S^T q.
fn recurrent_step(prepared: &[f32], dims: Dims, r: usize, j: usize, st: &mut [f32]) -> Vec<f32> {
    let (dk, dv) = (dims.dk, dims.dv);
    let hd = head(dims, j);
    let row = &prepared[r * dims.row()..][..dims.row()];
    let (q, k, v) = (&row[hd.q..][..dk], &row[hd.k..][..dk], &row[hd.v..][..dv]);
    simd::scale(st, row[hd.g].exp());
    let mut u = v.to_vec();
    for (srow, &ki) in st.chunks(dv).zip(k) {
        u.iter_mut().zip(srow).for_each(|(u, s)| *u -= ki * s);
    }
    simd::scale(&mut u, row[hd.beta]);
    let mut o = vec![0.0f32; dv];
    for ((srow, &ki), &qi) in st.chunks_mut(dv).zip(k).zip(q) {
        srow.iter_mut().zip(&u).for_each(|(s, u)| *s += ki * u);
        o.iter_mut()
            .zip(srow.iter())
            .for_each(|(o, s)| *o += qi * s);
    }
    o
}

/// Value head `j` over a span's rows in chunks (the module's formulas),
/// continuing S; o `[rows, dv]`.
fn chunked(prepared: &[f32], dims: Dims, span: Span, j: usize, st: &mut [f32]) -> Vec<f32> {
    let (dk, dv, rw) = (dims.dk, dims.dv, dims.row());
    let hd = head(dims, j);
    let mut out = vec![0.0f32; span.rows * dv];
    let mut kk = vec![0.0f32; CHUNK * CHUNK];
    let mut qk = vec![0.0f32; CHUNK * CHUNK];
    let mut u = vec![0.0f32; CHUNK * dv];
    let mut wk = vec![0.0f32; CHUNK * dk];
    let mut scaled = vec![0.0f32; CHUNK * dk];
    let mut cum = [0.0f32; CHUNK];
    let mut beta = [0.0f32; CHUNK];
    for c0 in (0..span.rows).step_by(CHUNK) {
        let c = CHUNK.min(span.rows - c0);
        let base = (span.row0 + c0) * rw;
        let (qs, ks) = (&prepared[base + hd.q..], &prepared[base + hd.k..]);
        let mut acc = 0.0f32;
        for i in 0..c {
            let row = &prepared[base + i * rw..];
            acc += row[hd.g];
            cum[i] = acc;
            beta[i] = row[hd.beta];
        }
        let (kk, qk) = (&mut kk[..c * c], &mut qk[..c * c]);
        gemm_strided(c, dk, c, 1.0, ks, (rw, 1), ks, (1, rw), kk, 0.0);
        gemm_strided(c, dk, c, 1.0, qs, (rw, 1), ks, (1, rw), qk, 0.0);
        // L (strictly lower) in kk and the decayed causal q k^T in qk.
        for i in 0..c {
            for jj in 0..=i {
                let decay = (cum[i] - cum[jj]).exp();
                kk[i * c + jj] *= beta[i] * decay;
                qk[i * c + jj] *= decay;
            }
            qk[i * c + i + 1..(i + 1) * c].fill(0.0);
        }
        // [u | w] = (I + L)^-1 [beta v | beta e^G k] by forward substitution.
        let (u, wk) = (&mut u[..c * dv], &mut wk[..c * dk]);
        for i in 0..c {
            let row = &prepared[base + i * rw..];
            simd::scale_into(&mut u[i * dv..][..dv], &row[hd.v..][..dv], beta[i]);
            simd::scale_into(
                &mut wk[i * dk..][..dk],
                &row[hd.k..][..dk],
                beta[i] * cum[i].exp(),
            );
            let (done_u, rest_u) = u.split_at_mut(i * dv);
            let (done_w, rest_w) = wk.split_at_mut(i * dk);
            let (ui, wi) = (&mut rest_u[..dv], &mut rest_w[..dk]);
            for jj in 0..i {
                let l = kk[i * c + jj];
                ui.iter_mut()
                    .zip(&done_u[jj * dv..][..dv])
                    .for_each(|(x, y)| *x -= l * y);
                wi.iter_mut()
                    .zip(&done_w[jj * dk..][..dk])
                    .for_each(|(x, y)| *x -= l * y);
            }
        }
        // The new values: u - w S.
        gemm_strided(c, dk, dv, -1.0, wk, (dk, 1), st, (dv, 1), u, 1.0);
        // o = (e^G q) S + (decayed causal q k^T) u.
        let scaled = &mut scaled[..c * dk];
        for i in 0..c {
            simd::scale_into(
                &mut scaled[i * dk..][..dk],
                &qs[i * rw..][..dk],
                cum[i].exp(),
            );
        }
        let o = &mut out[c0 * dv..(c0 + c) * dv];
        gemm_strided(c, dk, dv, 1.0, scaled, (dk, 1), st, (dv, 1), o, 0.0);
        gemm_strided(c, c, dv, 1.0, qk, (c, 1), u, (dv, 1), o, 1.0);
        // S = e^{G_c} S + (e^{G_c - G} k)^T u.
        let last = cum[c - 1];
        simd::scale(st, last.exp());
        for i in 0..c {
            simd::scale_into(
                &mut scaled[i * dk..][..dk],
                &ks[i * rw..][..dk],
                (last - cum[i]).exp(),
            );
        }
        gemm_strided(dk, c, dv, 1.0, scaled, (1, dk), u, (dv, 1), st, 1.0);
    }
    out
}
