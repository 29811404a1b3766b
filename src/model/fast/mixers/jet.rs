//! Jet-Nemotron's JetBlock in the CPU engine (SPEC-gdn, "JetBlock" and
//! "Dynamic short convolution"): one fused product for q, k, v, g, b, a
//! and the kernel generator's first layer, then its front end (SiLU q and
//! k; v through a causal convolution whose taps each token generates, as
//! `w2 silu(w1 x) + b2`, continued from each sequence's last inputs), then
//! the gated delta rule as every gated-delta layer runs it
//! (`gated_delta.rs`).

use super::gated_delta::{
    conv_row, finish_row, keep_history, project, sigmoid, ConvInputs, Dims, GdnState,
};
use crate::config::Mixer;
use crate::model::fast::blas::gemm_nt;
use crate::model::fast::model::{Conv, FastModel, GdnWeights, Layer};
use crate::model::fast::pass::Span;
use crate::model::par::{for_row_blocks, rows_per_task};

/// Rows whose generated taps are held at once (`[rows, K C]` floats).
const KERNEL_ROWS: usize = 256;

impl FastModel {
    /// x += a JetBlock over every sequence's rows (normed in `h`),
    /// continuing each sequence's state.
    pub(super) fn jet_block(
        &self,
        layer: &Layer,
        h: &[f32],
        spans: &[Span],
        states: &mut [&mut GdnState],
        x: &mut [f32],
    ) {
        let w = layer.gdn.as_ref().expect("a JetBlock loads its weights");
        let dims = Dims::of(&self.arch, Mixer::Jet);
        let proj = project(self, layer, h, dims);
        let generator = Generator {
            hidden: self.arch.gdn.generator as usize,
            weights: w,
        };
        let prepared = prepare(&proj, &generator, dims, spans, states);
        self.delta_rule_out(layer, &proj, &prepared, dims, spans, states, x);
    }
}

/// A JetBlock's weights beside its fused projection, and the width of its
/// kernel generator's hidden layer (the projection's last columns).
struct Generator<'a> {
    hidden: usize,
    weights: &'a GdnWeights,
}

/// Every row's q, k (SiLU of their projections) and v (the dynamic
/// convolution of v_proj's rows, continued from each sequence's last
/// inputs, which it then advances, and SiLU), then what [`finish_row`]
/// adds: `[rows, C + 2 nv]`.
fn prepare(
    proj: &[f32],
    gen: &Generator,
    dims: Dims,
    spans: &[Span],
    states: &mut [&mut GdnState],
) -> Vec<f32> {
    let Conv::Dynamic { w2, b2 } = &gen.weights.conv else {
        unreachable!("a JetBlock's convolution is generated per token")
    };
    let Dims {
        c, k, conv0, pw, ..
    } = dims;
    let (rw, vw, hidden) = (dims.row(), c - conv0, gen.hidden);
    let g0 = pw - hidden;
    let rows: usize = spans.iter().map(|s| s.rows).sum();
    let mut out = vec![0.0f32; rows * rw];
    let mut act = Vec::with_capacity(KERNEL_ROWS * hidden);
    let mut taps = vec![0.0f32; KERNEL_ROWS * k * vw];
    for (span, state) in spans.iter().zip(states.iter_mut()) {
        let input = ConvInputs::new(proj, dims, *span, state);
        for b0 in (0..span.rows).step_by(KERNEL_ROWS) {
            let n = KERNEL_ROWS.min(span.rows - b0);
            // These rows' taps, tap-major: w2 silu(w1 x) + b2.
            act.clear();
            for r in span.row0 + b0..span.row0 + b0 + n {
                act.extend(
                    proj[r * pw + g0..][..hidden]
                        .iter()
                        .map(|x| x * sigmoid(*x)),
                );
            }
            let taps = &mut taps[..n * k * vw];
            gemm_nt(&act, hidden, w2, n, hidden, k * vw, taps, false);
            for row in taps.chunks_mut(k * vw) {
                row.iter_mut().zip(b2).for_each(|(t, b)| *t += b);
            }
            let taps = &*taps;
            let block = &mut out[(span.row0 + b0) * rw..(span.row0 + b0 + n) * rw];
            for_row_blocks(
                block,
                rw,
                rows_per_task(n, n * (c + k * vw) * 4),
                |t0, block| {
                    for (i, row) in block.chunks_mut(rw).enumerate() {
                        let t = b0 + t0 + i;
                        let p = &proj[(span.row0 + t) * pw..][..pw];
                        for (y, x) in row[..conv0].iter_mut().zip(&p[..conv0]) {
                            *y = x * sigmoid(*x);
                        }
                        let tt = &taps[(t0 + i) * k * vw..][..k * vw];
                        conv_row(
                            &mut row[conv0..c],
                            k,
                            |tap| &tt[tap * vw..][..vw],
                            |tap| input.at(t + tap),
                        );
                        finish_row(row, p, gen.weights, dims);
                    }
                },
            );
        }
        keep_history(proj, dims, *span, state);
    }
    out
}
