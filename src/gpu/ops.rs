//! One typed function per kernel: the shapes and parameter layout each
//! shader's `Params` struct expects, in one place. Activations are f32
//! buffers of rows; `row0` arguments select where a kernel starts.

use super::kernels::{Kernel, WDtype};
use super::recorder::{bits, Recorder};
use super::weights::GpuWeight;

/// Rows of x at or below this use the bandwidth-bound matvec kernel
/// (`MV_ROWS` in matmul.wgsl).
pub const MATVEC_ROWS: u32 = 4;

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
        let params =
            [rows, c.rows, w.cols, x.row0, x.stride, y.row0, y.stride, c.row0, accumulate as u32];
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
    rec.dispatch(Kernel::RmsNorm, w.dtype, &[rows, x.stride, x.row0, bits(eps)], &[x.buffer, w.single(), y], [gx, gy, 1]);
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
/// place; row r is at absolute position `pos0 + r`. `dummy` fills the
/// bindings of steps that are off.
pub fn heads(rec: &mut Recorder, x: Rows, rows: u32, pos0: u32, prep: &HeadPrep, dummy: &wgpu::Buffer) {
    let (heads, dh) = (prep.heads, prep.dh);
    let flags = prep.norm.is_some() as u32 | (prep.rope.is_some() as u32) << 1 | (prep.hype_a.is_some() as u32) << 2;
    let params = [rows, heads, dh, x.row0, pos0, flags, bits(prep.eps), bits(prep.hype_a.unwrap_or(2.0)), bits(prep.scale)];
    let (w, dtype) = prep.norm.map_or((dummy, WDtype::F32), |w| (w.single(), w.dtype));
    let (gx, gy) = rec.gpu().dispatch_size(rows * heads, 1);
    rec.dispatch(Kernel::Heads, dtype, &params, &[w, prep.rope.unwrap_or(dummy), x.buffer], [gx, gy, 1]);
}

/// y[r, :] += b for rows starting at y.row0.
pub fn bias(rec: &mut Recorder, b: &GpuWeight, y: Rows, rows: u32) {
    rec.dispatch_1d(Kernel::Bias, b.dtype, &[rows * y.stride, y.stride, y.row0], &[b.single(), y.buffer], rows * y.stride, 256);
}

/// x[t] = E[ids[t]] for `tokens` ids.
pub fn embed(rec: &mut Recorder, ids: &wgpu::Buffer, tokens: u32, e: &GpuWeight, x: &wgpu::Buffer) {
    for c in &e.chunks {
        let params = [tokens, e.cols, c.row0, c.rows];
        rec.dispatch_1d(Kernel::Embed, e.dtype, &params, &[ids, &c.buffer, x], tokens * e.cols, 256);
    }
}

/// a = silu(a) * b over the first n values.
pub fn swiglu(rec: &mut Recorder, a: &wgpu::Buffer, b: &wgpu::Buffer, n: u32) {
    rec.dispatch_1d(Kernel::Swiglu, WDtype::F32, &[n, 0], &[b, a], n, 256);
}

/// a = a * sigmoid(b) over the first n values.
pub fn gate(rec: &mut Recorder, a: &wgpu::Buffer, b: &wgpu::Buffer, n: u32) {
    rec.dispatch_1d(Kernel::Gate, WDtype::F32, &[n, 0], &[b, a], n, 256);
}

/// out[slot] = argmax of row `row` of `logits` (rows of width n).
pub fn argmax(rec: &mut Recorder, logits: &wgpu::Buffer, row: u32, n: u32, out: &wgpu::Buffer, slot: u32) {
    rec.dispatch(Kernel::Argmax, WDtype::F32, &[n, row, slot], &[logits, out], [1, 1, 1]);
}

/// Shapes of a softmax attention call.
pub struct AttnShape {
    pub rows: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub dh: u32,
    pub pos0: u32,
}

/// Flash-style causal attention of `rows` queries (at pos0..) over the
/// cache; writes o and the log-sum-exp per (position, head).
pub fn attend(
    rec: &mut Recorder,
    s: &AttnShape,
    q: &wgpu::Buffer,
    k: &wgpu::Buffer,
    v: &wgpu::Buffer,
    o: &wgpu::Buffer,
    lse: &wgpu::Buffer,
) {
    let params = [s.rows, s.heads, s.kv_heads, s.dh, s.pos0, bits(1.0 / (s.dh as f32).sqrt())];
    rec.dispatch(Kernel::Attend, WDtype::F32, &params, &[q, k, v, o, lse], [s.rows.div_ceil(8), s.heads, 1]);
}

/// Shapes of a Lightning attention call.
pub struct LightningShape {
    pub rows: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub dk: u32,
    pub scale: f32,
}

/// Lightning attention of `rows` tokens continuing from `state`: the
/// recurrent step for one token, the chunked form otherwise.
pub fn lightning(rec: &mut Recorder, s: &LightningShape, qkv: [&wgpu::Buffer; 3], slopes: &wgpu::Buffer, state: &wgpu::Buffer, o: &wgpu::Buffer) {
    let params = [s.rows, s.heads, s.kv_heads, s.dk, bits(s.scale)];
    let buffers = [qkv[0], qkv[1], qkv[2], slopes, state, o];
    if s.rows == 1 {
        rec.dispatch_1d(Kernel::LightningStep, WDtype::F32, &params, &buffers, s.heads * s.dk, 64);
    } else {
        rec.dispatch(Kernel::LightningChunk, WDtype::F32, &params, &buffers, [s.dk.div_ceil(16), s.heads, 1]);
    }
}

/// Per-row routing reductions of one softmax layer (routing.wgsl); the
/// three outputs must start zeroed (`pooled` accumulates).
pub fn row_stats(
    rec: &mut Recorder,
    s: &AttnShape,
    block: u32,
    needle: std::ops::Range<u32>,
    [q, k, lse]: [&wgpu::Buffer; 3],
    [dist, mass, pooled]: [&wgpu::Buffer; 3],
) {
    let blocks = s.rows.div_ceil(block.max(1)).max(1);
    let params = [s.rows, s.heads, s.kv_heads, s.dh, block.max(1), blocks, needle.start, needle.end, bits(1.0 / (s.dh as f32).sqrt())];
    let (gx, gy) = rec.gpu().dispatch_size(s.rows * s.heads, 1);
    rec.dispatch(Kernel::RowStats, WDtype::F32, &params, &[q, k, lse, dist, mass, pooled], [gx, gy, 1]);
}
