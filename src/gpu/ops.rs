//! One typed function per kernel: the shapes and parameter layout each
//! shader's `Params` struct expects, in one place. Activations are f32
//! buffers of rows; `row0` arguments select where a kernel starts.

use super::kernels::{Kernel, WDtype};
use super::params::*;
use super::recorder::Recorder;
use super::weights::GpuWeight;

/// An f32 activation buffer viewed as rows of `stride` values from `row0`.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub row0: u32,
    pub stride: u32,
}

impl<'a> Rows<'a> {
    pub fn new(buffer: &'a wgpu::Buffer, stride: u32) -> Self {
        Rows { buffer, row0: 0, stride }
    }

    pub fn at(self, row0: u32) -> Self {
        Rows { row0, ..self }
    }
}

/// y[m, :] (+)= x[m, :] W^T for m < rows; W may be chunked.
pub fn matmul(rec: &mut Recorder, x: Rows, rows: u32, w: &GpuWeight, y: Rows, accumulate: bool) {
    for c in &w.chunks {
        let params = MatmulParams {
            m: rows,
            n: c.rows,
            k: w.cols,
            x_row0: x.row0,
            x_stride: x.stride,
            y_row0: y.row0,
            y_stride: y.stride,
            y_col0: c.row0,
            accumulate: accumulate as u32,
        };
        let buffers = [x.buffer, &c.buffer, y.buffer];
        if rows <= MATVEC_ROWS {
            let (gx, gy) = rec.gpu().dispatch_size(c.rows, 8);
            rec.dispatch(Kernel::Matvec, w.dtype, &params, &buffers, [gx, gy, 1]);
        } else {
            rec.dispatch(Kernel::Matmul, w.dtype, &params, &buffers, [c.rows.div_ceil(128), rows.div_ceil(128), 1]);
        }
    }
}

/// y[r] = rmsnorm(x[x.row0 + r]) * w for r < rows; y starts at row 0.
pub fn rmsnorm(rec: &mut Recorder, x: Rows, rows: u32, w: &GpuWeight, eps: f32, y: &wgpu::Buffer) {
    let (gx, gy) = rec.gpu().dispatch_size(rows, 1);
    let params = NormParams { rows, width: x.stride, x_row0: x.row0, eps };
    rec.dispatch(Kernel::RmsNorm, w.dtype, &params, &[x.buffer, w.single(), y], [gx, gy, 1]);
}

/// The heads of a row and what `heads` does to each, in order.
pub struct HeadPrep<'a> {
    pub heads: u32,
    pub dh: u32,
    pub norm: Option<&'a GpuWeight>,
    pub rope: Option<&'a wgpu::Buffer>,
    pub hype_a: Option<f32>,
    /// A constant factor (`attn_logits_scaling` as a number; 1 otherwise).
    pub scale: f32,
    pub eps: f32,
}

/// Per-head norm / RoPE / HyPE of `rows` rows of `heads * dh` values, in
/// place; row r is at absolute position `positions[r]`. `dummy` fills the
/// bindings of steps that are off.
pub fn heads(rec: &mut Recorder, x: Rows, rows: u32, positions: &wgpu::Buffer, prep: &HeadPrep, dummy: &wgpu::Buffer) {
    let (heads, dh) = (prep.heads, prep.dh);
    let flag = |on: bool, bit: u32| if on { bit } else { 0 };
    let flags = flag(prep.norm.is_some(), HEADS_NORM) | flag(prep.rope.is_some(), HEADS_ROPE) | flag(prep.hype_a.is_some(), HEADS_HYPE);
    let params = HeadsParams {
        rows,
        heads,
        dh,
        x_row0: x.row0,
        flags,
        eps: prep.eps,
        hype_a: prep.hype_a.unwrap_or(2.0),
        scale: prep.scale,
    };
    let (w, dtype) = prep.norm.map_or((dummy, WDtype::F32), |w| (w.single(), w.dtype));
    let (gx, gy) = rec.gpu().dispatch_size(rows * heads, 1);
    rec.dispatch(Kernel::Heads, dtype, &params, &[w, prep.rope.unwrap_or(dummy), x.buffer, positions], [gx, gy, 1]);
}

/// y[r, :] += b for rows starting at y.row0.
pub fn bias(rec: &mut Recorder, b: &GpuWeight, y: Rows, rows: u32) {
    let params = BiasParams { n: rows * y.stride, width: y.stride, y_row0: y.row0 };
    rec.dispatch_1d(Kernel::Bias, b.dtype, &params, &[b.single(), y.buffer], rows * y.stride, 256);
}

/// x[t] = E[ids[t]] for `tokens` ids.
pub fn embed(rec: &mut Recorder, ids: &wgpu::Buffer, tokens: u32, e: &GpuWeight, x: &wgpu::Buffer) {
    for c in &e.chunks {
        let params = EmbedParams { tokens, width: e.cols, row0: c.row0, rows: c.rows };
        rec.dispatch_1d(Kernel::Embed, e.dtype, &params, &[ids, &c.buffer, x], tokens * e.cols, 256);
    }
}

/// a = silu(a) * b over the first n values.
pub fn swiglu(rec: &mut Recorder, a: &wgpu::Buffer, b: &wgpu::Buffer, n: u32) {
    rec.dispatch_1d(Kernel::Swiglu, WDtype::F32, &ElementwiseParams { n, width: 0 }, &[b, a], n, 256);
}

/// a = a * sigmoid(b) over the first n values.
pub fn gate(rec: &mut Recorder, a: &wgpu::Buffer, b: &wgpu::Buffer, n: u32) {
    rec.dispatch_1d(Kernel::Gate, WDtype::F32, &ElementwiseParams { n, width: 0 }, &[b, a], n, 256);
}

/// out[slot + i] = argmax of row `row + i` of `logits` (rows of width n)
/// for i < count.
pub fn argmax(rec: &mut Recorder, logits: &wgpu::Buffer, row: u32, n: u32, out: &wgpu::Buffer, slot: u32, count: u32) {
    rec.dispatch(Kernel::Argmax, WDtype::F32, &ArgmaxParams { n, row, slot }, &[logits, out], [count, 1, 1]);
}

/// dst row `map[i].1` = src row `map[i].0` for i < count, rows of `width`.
pub fn copy_rows(rec: &mut Recorder, map: &wgpu::Buffer, count: u32, width: u32, src: &wgpu::Buffer, dst: &wgpu::Buffer) {
    rec.dispatch_1d(Kernel::CopyRows, WDtype::F32, &RowsParams { width, count }, &[map, src, dst], count * width, 256);
}

/// A pass's packed rows as the batched kernels read them: `segments`
/// segments (`segs`, [`Seg`]s on the GPU), the longest `max_rows` rows.
#[derive(Clone, Copy)]
pub struct Segments<'a> {
    pub segs: &'a wgpu::Buffer,
    pub count: u32,
    pub max_rows: u32,
}

/// Shapes of a softmax attention call over caches of `ctx` rows a sequence.
pub struct AttnShape {
    pub heads: u32,
    pub kv_heads: u32,
    pub dh: u32,
    pub ctx: u32,
}

/// Flash-style causal attention of every segment's queries over its
/// sequence's cache; writes o and the log-sum-exp per (cache row, head).
pub fn attend(rec: &mut Recorder, s: &AttnShape, segs: Segments, [q, k, v]: [&wgpu::Buffer; 3], o: &wgpu::Buffer, lse: &wgpu::Buffer) {
    let params = AttendParams { heads: s.heads, kv_heads: s.kv_heads, dh: s.dh, ctx: s.ctx, scale: 1.0 / (s.dh as f32).sqrt() };
    rec.dispatch(Kernel::Attend, WDtype::F32, &params, &[q, k, v, o, lse, segs.segs], [segs.max_rows.div_ceil(8), s.heads, segs.count]);
}

/// Shapes of a Lightning attention call.
pub struct LightningShape {
    pub heads: u32,
    pub kv_heads: u32,
    pub dk: u32,
    pub scale: f32,
}

/// Lightning attention of every segment's tokens, continuing from its
/// sequence's state: the recurrent step when every segment is one token,
/// the chunked form otherwise.
pub fn lightning(rec: &mut Recorder, s: &LightningShape, segs: Segments, qkv: [&wgpu::Buffer; 3], slopes: &wgpu::Buffer, state: &wgpu::Buffer, o: &wgpu::Buffer) {
    let params = LightningParams { heads: s.heads, kv_heads: s.kv_heads, dk: s.dk, scale: s.scale };
    let buffers = [qkv[0], qkv[1], qkv[2], slopes, state, o, segs.segs];
    if segs.max_rows == 1 {
        rec.dispatch(Kernel::LightningStep, WDtype::F32, &params, &buffers, [(s.heads * s.dk).div_ceil(64), segs.count, 1]);
    } else {
        rec.dispatch(Kernel::LightningChunk, WDtype::F32, &params, &buffers, [s.dk.div_ceil(16), s.heads, segs.count]);
    }
}

/// Shapes of the routing reductions: one sequence of `rows` tokens.
pub struct RowStatsShape {
    pub rows: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub dh: u32,
}

/// Per-row routing reductions of one softmax layer (routing.wgsl); the
/// three outputs must start zeroed (`pooled` accumulates).
pub fn row_stats(
    rec: &mut Recorder,
    s: &RowStatsShape,
    block: u32,
    needle: std::ops::Range<u32>,
    [q, k, lse]: [&wgpu::Buffer; 3],
    [dist, mass, pooled]: [&wgpu::Buffer; 3],
) {
    let blocks = s.rows.div_ceil(block.max(1)).max(1);
    let params = RowStatsParams {
        rows: s.rows,
        heads: s.heads,
        kv_heads: s.kv_heads,
        dh: s.dh,
        block: block.max(1),
        blocks,
        needle_start: needle.start,
        needle_end: needle.end,
        scale: 1.0 / (s.dh as f32).sqrt(),
    };
    let (gx, gy) = rec.gpu().dispatch_size(s.rows * s.heads, 1);
    rec.dispatch(Kernel::RowStats, WDtype::F32, &params, &[q, k, lse, dist, mass, pooled], [gx, gy, 1]);
}
