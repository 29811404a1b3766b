//! One typed function per kernel: the shapes and parameter layout each
//! shader's `Params` struct expects, and which buffer goes to which of its
//! named bindings, in one place. Activations are f32 buffers of rows;
//! `row0` arguments select where a kernel starts.

use super::bindings::{
    ARGMAX, ATTENTION, BIAS, DYNAMIC_CONV, ELEMENTWISE, EMBED, GATED_DELTA, HEADS, LIGHTNING,
    MATMUL, NORM, ROUTING, ROWS,
};
use super::kernels::{Kernel, WDtype};
use super::params::*;
use super::recorder::Recorder;
use super::weights::GpuWeight;

/// An f32 activation buffer viewed as rows of `stride` values from `row0`,
/// from column `col0` on (a matmul's output only: every other op takes
/// whole rows).
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub row0: u32,
    pub stride: u32,
    pub col0: u32,
}

impl<'a> Rows<'a> {
    pub fn new(buffer: &'a wgpu::Buffer, stride: u32) -> Self {
        Rows {
            buffer,
            row0: 0,
            stride,
            col0: 0,
        }
    }

    pub fn at(self, row0: u32) -> Self {
        Rows { row0, ..self }
    }

    /// The same rows from column `col0`: a matmul writes its columns there.
    pub fn col(self, col0: u32) -> Self {
        Rows { col0, ..self }
    }
}

/// Rows up to which the matvec kernel, a pass per MATVEC_ROWS rows, beats
/// the tiled kernel: each pass reads the weights once, while a 128-row
/// tile leaves most of its work idle (measured on an H200: 16 rows of
/// 6144 x 2048 took 0.41 ms tiled, 0.02 ms a matvec pass).
const SKINNY_ROWS: u32 = 8 * MATVEC_ROWS;

/// y[m, y.col0 ..] (+)= x[m, :] W^T for m < rows; W may be chunked.
pub fn matmul(rec: &mut Recorder, x: Rows, rows: u32, w: &GpuWeight, y: Rows, accumulate: bool) {
    debug_assert_eq!(x.col0, 0, "matmul reads whole rows of x");
    if rows > MATVEC_ROWS && rows <= SKINNY_ROWS {
        for r0 in (0..rows).step_by(MATVEC_ROWS as usize) {
            matmul(
                rec,
                x.at(x.row0 + r0),
                MATVEC_ROWS.min(rows - r0),
                w,
                y.at(y.row0 + r0),
                accumulate,
            );
        }
        return;
    }
    for c in &w.chunks {
        let params = MatmulParams {
            m: rows,
            n: c.rows,
            k: w.cols,
            x_row0: x.row0,
            x_stride: x.stride,
            y_row0: y.row0,
            y_stride: y.stride,
            y_col0: y.col0 + c.row0,
            accumulate: accumulate as u32,
        };
        let buffers = [
            (MATMUL.x, x.buffer),
            (MATMUL.w, &c.buffer),
            (MATMUL.y, y.buffer),
        ];
        if rows <= MATVEC_ROWS {
            let (gx, gy) = rec.gpu().dispatch_size(c.rows, MATVEC_OUT);
            rec.dispatch(Kernel::Matvec, w.dtype, &params, &buffers, [gx, gy, 1]);
        } else {
            rec.dispatch(
                Kernel::Matmul,
                w.dtype,
                &params,
                &buffers,
                [c.rows.div_ceil(128), rows.div_ceil(128), 1],
            );
        }
    }
}

/// y[r] = rmsnorm(x[x.row0 + r]) * w for r < rows; y starts at row 0.
pub fn rmsnorm(rec: &mut Recorder, x: Rows, rows: u32, w: &GpuWeight, eps: f32, y: &wgpu::Buffer) {
    debug_assert_eq!(x.col0, 0, "rmsnorm takes whole rows");
    let (gx, gy) = rec.gpu().dispatch_size(rows, 1);
    let params = NormParams {
        rows,
        width: x.stride,
        x_row0: x.row0,
        eps,
    };
    rec.dispatch(
        Kernel::RmsNorm,
        w.dtype,
        &params,
        &[(NORM.x, x.buffer), (NORM.w, w.single()), (NORM.y, y)],
        [gx, gy, 1],
    );
}

/// The heads of a row and what `heads` does to each, in order.
pub struct HeadPrep<'a> {
    pub heads: u32,
    pub dh: u32,
    pub norm: Option<&'a GpuWeight>,
    pub rope: Option<&'a wgpu::Buffer>,
    /// The dims RoPE rotates, the first ones of each head (Qwen3.5 turns
    /// a quarter); the table holds `rot / 2` frequencies a position.
    pub rot: u32,
    pub hype_a: Option<f32>,
    /// A constant factor (`attn_logits_scaling` as a number; 1 otherwise).
    pub scale: f32,
    pub eps: f32,
}

/// Per-head norm / RoPE / HyPE of `rows` rows of `heads * dh` values, in
/// place; row r is at absolute position `positions[r]`. `dummy` fills the
/// bindings of steps that are off.
pub fn heads(
    rec: &mut Recorder,
    x: Rows,
    rows: u32,
    positions: &wgpu::Buffer,
    prep: &HeadPrep,
    dummy: &wgpu::Buffer,
) {
    debug_assert_eq!(x.col0, 0, "heads takes whole rows");
    let (heads, dh) = (prep.heads, prep.dh);
    let flag = |on: bool, bit: u32| if on { bit } else { 0 };
    let flags = flag(prep.norm.is_some(), HEADS_NORM)
        | flag(prep.rope.is_some(), HEADS_ROPE)
        | flag(prep.hype_a.is_some(), HEADS_HYPE);
    let params = HeadsParams {
        rows,
        heads,
        dh,
        x_row0: x.row0,
        flags,
        rot: prep.rot,
        eps: prep.eps,
        hype_a: prep.hype_a.unwrap_or(2.0),
        scale: prep.scale,
    };
    let (w, dtype) = prep
        .norm
        .map_or((dummy, WDtype::F32), |w| (w.single(), w.dtype));
    let (gx, gy) = rec.gpu().dispatch_size(rows * heads, 1);
    let buffers = [
        (HEADS.w, w),
        (HEADS.rope, prep.rope.unwrap_or(dummy)),
        (HEADS.x, x.buffer),
        (HEADS.positions, positions),
    ];
    rec.dispatch(Kernel::Heads, dtype, &params, &buffers, [gx, gy, 1]);
}

/// y[r, :] += b for rows starting at y.row0.
pub fn bias(rec: &mut Recorder, b: &GpuWeight, y: Rows, rows: u32) {
    debug_assert_eq!(y.col0, 0, "bias takes whole rows");
    let params = BiasParams {
        n: rows * y.stride,
        width: y.stride,
        y_row0: y.row0,
    };
    rec.dispatch_1d(
        Kernel::Bias,
        b.dtype,
        &params,
        &[(BIAS.w, b.single()), (BIAS.y, y.buffer)],
        rows * y.stride,
        256,
    );
}

/// x[t] = E[ids[t]] for `tokens` ids.
pub fn embed(rec: &mut Recorder, ids: &wgpu::Buffer, tokens: u32, e: &GpuWeight, x: &wgpu::Buffer) {
    for c in &e.chunks {
        let params = EmbedParams {
            tokens,
            width: e.cols,
            row0: c.row0,
            rows: c.rows,
        };
        rec.dispatch_1d(
            Kernel::Embed,
            e.dtype,
            &params,
            &[(EMBED.ids, ids), (EMBED.w, &c.buffer), (EMBED.x, x)],
            tokens * e.cols,
            256,
        );
    }
}

/// a = silu(a) * b over the first n values.
pub fn swiglu(rec: &mut Recorder, a: &wgpu::Buffer, b: &wgpu::Buffer, n: u32) {
    rec.dispatch_1d(
        Kernel::Swiglu,
        WDtype::F32,
        &ElementwiseParams { n, width: 0 },
        &[(ELEMENTWISE.b, b), (ELEMENTWISE.a, a)],
        n,
        256,
    );
}

/// a = silu(a) over the first n values.
pub fn silu(rec: &mut Recorder, a: &wgpu::Buffer, n: u32) {
    rec.dispatch_1d(
        Kernel::Silu,
        WDtype::F32,
        &ElementwiseParams { n, width: 0 },
        &[(ELEMENTWISE.a, a)],
        n,
        256,
    );
}

/// a = a * sigmoid(b) over the first n values.
pub fn gate(rec: &mut Recorder, a: &wgpu::Buffer, b: &wgpu::Buffer, n: u32) {
    rec.dispatch_1d(
        Kernel::Gate,
        WDtype::F32,
        &ElementwiseParams { n, width: 0 },
        &[(ELEMENTWISE.b, b), (ELEMENTWISE.a, a)],
        n,
        256,
    );
}

/// out[slot + i] = argmax of row `row + i` of `logits` (rows of width n)
/// for i < count.
pub fn argmax(
    rec: &mut Recorder,
    logits: &wgpu::Buffer,
    row: u32,
    n: u32,
    out: &wgpu::Buffer,
    slot: u32,
    count: u32,
) {
    rec.dispatch(
        Kernel::Argmax,
        WDtype::F32,
        &ArgmaxParams { n, row, slot },
        &[(ARGMAX.logits, logits), (ARGMAX.out, out)],
        [count, 1, 1],
    );
}

/// dst row `map[map0 + i].1` = src row `map[map0 + i].0` for i < count,
/// rows of `width`.
pub fn copy_rows(
    rec: &mut Recorder,
    (map, map0): (&wgpu::Buffer, u32),
    count: u32,
    width: u32,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
) {
    rec.dispatch_1d(
        Kernel::CopyRows,
        WDtype::F32,
        &RowsParams { width, count, map0 },
        &[(ROWS.map, map), (ROWS.src, src), (ROWS.dst, dst)],
        count * width,
        256,
    );
}

/// A pass's packed rows as the batched kernels read them: `segments`
/// segments (`segs`, [`Seg`]s on the GPU), the longest `max_rows` rows,
/// the furthest ending at position `max_end` (keys a row may see).
#[derive(Clone, Copy)]
pub struct Segments<'a> {
    pub segs: &'a wgpu::Buffer,
    pub count: u32,
    pub max_rows: u32,
    pub max_end: u32,
}

/// Shapes of a softmax attention call over caches of `ctx` rows a
/// sequence; a sliding-window layer's queries see the last `window`
/// positions (0: the whole context).
pub struct AttnShape {
    pub heads: u32,
    pub kv_heads: u32,
    pub dh: u32,
    pub ctx: u32,
    pub window: u32,
}

/// Keys a workgroup of the split (decode) path takes: attention.wgsl's
/// `DT`, one key a thread.
pub const SPLIT_KEYS: u32 = 256;

/// Output columns a prefill workgroup writes: attention.wgsl's `OC`.
pub const ATTEND_COLUMNS: u32 = 128;

/// An f32 scratch buffer free while attention runs, and its size in
/// values: where the split path keeps its partial results.
#[derive(Clone, Copy)]
pub struct Spare<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub floats: u64,
}

impl<'a> Spare<'a> {
    /// All of `buffer`.
    pub fn all(buffer: &'a wgpu::Buffer) -> Self {
        Spare {
            buffer,
            floats: buffer.size() / 4,
        }
    }
}

/// Flash-style causal attention of every segment's queries over its
/// sequence's cache (the keys in their window only, where `s.window` is
/// set); writes o and the log-sum-exp per (cache row, head). Single rows
/// (decode) split their keys across workgroups when `spare` holds the
/// partial results; prefill tiles 64 rows a workgroup.
pub fn attend(
    rec: &mut Recorder,
    s: &AttnShape,
    segs: Segments,
    [q, k, v]: [&wgpu::Buffer; 3],
    o: &wgpu::Buffer,
    lse: &wgpu::Buffer,
    spare: Spare,
) {
    // The most keys a row sees.
    let keys = match s.window {
        0 => segs.max_end,
        w => segs.max_end.min(w),
    };
    let mut params = AttendParams {
        heads: s.heads,
        kv_heads: s.kv_heads,
        dh: s.dh,
        ctx: s.ctx,
        scale: 1.0 / (s.dh as f32).sqrt(),
        col0: 0,
        split_keys: SPLIT_KEYS,
        splits: keys.div_ceil(SPLIT_KEYS).max(1),
        window: s.window,
    };
    let part_floats = segs.count as u64 * s.heads as u64 * params.splits as u64 * (s.dh as u64 + 2);
    let b = ATTENTION;
    if segs.max_rows == 1 && part_floats <= spare.floats {
        let partial = [
            (b.q, q),
            (b.k, k),
            (b.v, v),
            (b.segs, segs.segs),
            (b.part, spare.buffer),
        ];
        rec.dispatch(
            Kernel::AttendPartial,
            WDtype::F32,
            &params,
            &partial,
            [params.splits, s.heads, segs.count],
        );
        let combine = [
            (b.o, o),
            (b.lse, lse),
            (b.segs, segs.segs),
            (b.part, spare.buffer),
        ];
        rec.dispatch(
            Kernel::AttendCombine,
            WDtype::F32,
            &params,
            &combine,
            [s.heads, segs.count, 1],
        );
        return;
    }
    let attend = [
        (b.q, q),
        (b.k, k),
        (b.v, v),
        (b.o, o),
        (b.lse, lse),
        (b.segs, segs.segs),
    ];
    for col0 in (0..s.dh).step_by(ATTEND_COLUMNS as usize) {
        params.col0 = col0;
        rec.dispatch(
            Kernel::Attend,
            WDtype::F32,
            &params,
            &attend,
            [segs.max_rows.div_ceil(64), s.heads, segs.count],
        );
    }
}

/// Shapes of a Lightning attention call.
pub struct LightningShape {
    pub heads: u32,
    pub kv_heads: u32,
    pub dk: u32,
    pub scale: f32,
}

/// Rows a part of a split Lightning segment takes at least, and parts at most.
const PART_ROWS: u32 = 128;
pub const MAX_PARTS: u32 = 32;

/// Lightning attention of every segment's tokens, continuing from its
/// sequence's state: the recurrent step when every segment is one token,
/// the chunked form otherwise. A lone long segment is cut into parts run
/// side by side (their states carried in between) when `spare` holds a
/// state a part.
#[allow(clippy::too_many_arguments)]
pub fn lightning(
    rec: &mut Recorder,
    s: &LightningShape,
    segs: Segments,
    qkv: [&wgpu::Buffer; 3],
    slopes: &wgpu::Buffer,
    state: &wgpu::Buffer,
    o: &wgpu::Buffer,
    spare: Spare,
) {
    let mut params = LightningParams {
        heads: s.heads,
        kv_heads: s.kv_heads,
        dk: s.dk,
        scale: s.scale,
        parts: 1,
        part_rows: 0,
    };
    let b = LIGHTNING;
    let step = [
        (b.q, qkv[0]),
        (b.k, qkv[1]),
        (b.v, qkv[2]),
        (b.slopes, slopes),
        (b.state, state),
        (b.o, o),
        (b.segs, segs.segs),
    ];
    if segs.max_rows == 1 {
        rec.dispatch(
            Kernel::LightningStep,
            WDtype::F32,
            &params,
            &step,
            [(s.heads * s.dk).div_ceil(64), segs.count, 1],
        );
        return;
    }
    let per_part = s.heads as u64 * s.dk as u64 * s.dk as u64;
    let parts = (segs.max_rows / PART_ROWS)
        .min(MAX_PARTS)
        .min((spare.floats / per_part.max(1)) as u32);
    let groups = [s.dk.div_ceil(16), s.heads, segs.count];
    // `chunk` binds the carry whether it splits or not.
    let all: Vec<_> = step
        .iter()
        .copied()
        .chain([(b.carry, spare.buffer)])
        .collect();
    if segs.count != 1 || parts < 2 {
        rec.dispatch(Kernel::LightningChunk, WDtype::F32, &params, &all, groups);
        return;
    }
    // Parts of whole 16-token chunks.
    params.part_rows = segs.max_rows.div_ceil(parts).next_multiple_of(16);
    params.parts = segs.max_rows.div_ceil(params.part_rows);
    let groups = [groups[0], groups[1], params.parts];
    rec.dispatch(
        Kernel::LightningPartState,
        WDtype::F32,
        &params,
        &all,
        groups,
    );
    let (gx, gy) = rec.gpu().dispatch_size((per_part) as u32, 256);
    let carry_in = [
        (b.slopes, slopes),
        (b.state, state),
        (b.segs, segs.segs),
        (b.carry, spare.buffer),
    ];
    rec.dispatch(
        Kernel::LightningCarryIn,
        WDtype::F32,
        &params,
        &carry_in,
        [gx, gy, 1],
    );
    rec.dispatch(Kernel::LightningChunk, WDtype::F32, &params, &all, groups);
}

/// Sizes of a gated-delta layer (SPEC-gdn) as its kernels take them
/// (`conv_kernel`: Qwen3.5's convolution's, read by [`gdn_conv`] only).
pub struct GatedDeltaShape {
    pub key_heads: u32,
    pub value_heads: u32,
    pub key_dim: u32,
    pub value_dim: u32,
    pub conv_kernel: u32,
    /// The gated output norm's epsilon.
    pub eps: f32,
}

/// Tokens a chunk of the chunked gated delta rule (gated_delta.wgsl's `CH`).
pub const GDN_CHUNK: u32 = 64;
/// Value columns a `chunk` workgroup holds (gated_delta.wgsl's `VB`).
const GDN_COLUMNS: u32 = 4;
/// Chunks a part of a split gated-delta segment takes at least (fewer
/// would spend more on A_p, a dk x dk product a chunk, than the parts
/// save), and parts at most.
const GDN_PART_CHUNKS: u32 = 2;
const GDN_MAX_PARTS: u32 = 32;
/// `chunk` workgroups that keep a large GPU busy without a split (about
/// two a multiprocessor on an H100 or H200).
const GDN_FILLING_WORKGROUPS: u32 = 256;

impl GatedDeltaShape {
    /// Scratch values the chunked form needs for `rows` packed rows: w
    /// and the chunk's decayed scores, per row and value head.
    pub fn scratch_floats(&self, rows: u32) -> u64 {
        rows as u64 * self.value_heads as u64 * (self.key_dim + GDN_CHUNK) as u64
    }

    /// Scratch values a part of a split segment needs beyond
    /// [`Self::scratch_floats`]: its B_p (then the next part's starting
    /// state) and A_p, per value head.
    pub fn part_floats(&self) -> u64 {
        let (nv, dk, dv) = (
            self.value_heads as u64,
            self.key_dim as u64,
            self.value_dim as u64,
        );
        nv * dk * (dk + dv)
    }

    /// The parts a lone segment of `seg_rows` rows (of `rows` packed) is
    /// cut into where `floats` of scratch allow it: at least 2 chunks a
    /// part; 1 means no split. Only heads too few to fill a GPU are split:
    /// a split about triples the work (each part's A_p walks dk columns
    /// and B_p dv before the outputs' walk), which paid back nowhere on an
    /// H200 with Qwen3.5-0.8B's 512 column-block workgroups (T 4096: 7.7 ms
    /// unsplit, 38 ms in 24 parts).
    pub fn parts(&self, seg_rows: u32, rows: u32, floats: u64) -> u32 {
        if self.value_heads * self.value_dim.div_ceil(GDN_COLUMNS) >= GDN_FILLING_WORKGROUPS {
            return 1;
        }
        let room = floats.saturating_sub(self.scratch_floats(rows)) / self.part_floats().max(1);
        (seg_rows.div_ceil(GDN_CHUNK) / GDN_PART_CHUNKS)
            .min(GDN_MAX_PARTS)
            .min(room.min(u32::MAX as u64) as u32)
            .max(1)
    }

    /// Whether `chunk` and `wy` can take these heads: S's column block in
    /// workgroup memory (any value width: `wy`'s threads take a column of
    /// u or w each, more than one past 256).
    fn chunkable(&self) -> bool {
        self.key_dim <= 128
    }

    /// The parameters of gated_delta.wgsl for `rows` packed rows.
    fn params(&self, rows: u32) -> GatedDeltaParams {
        GatedDeltaParams {
            nk: self.key_heads,
            nv: self.value_heads,
            dk: self.key_dim,
            dv: self.value_dim,
            taps: self.conv_kernel,
            channels: 2 * self.key_heads * self.key_dim + self.value_heads * self.value_dim,
            rows,
            eps: self.eps,
            parts: 1,
            part_rows: 0,
        }
    }
}

/// Qwen3.5's convolution front end: the q, k, v rows before it (`x`),
/// its f32 weight, the sequences' histories, and where the convolved
/// q, k, v go (`qkv`).
pub struct GdnConvBuffers<'a> {
    pub x: &'a wgpu::Buffer,
    pub conv_w: &'a wgpu::Buffer,
    pub hist: &'a wgpu::Buffer,
    pub qkv: &'a wgpu::Buffer,
}

/// Qwen3.5's depthwise causal convolution and SiLU over every segment's
/// q, k, v rows into `qkv`, each continuing from its sequence's history,
/// which it leaves updated: what [`gated_delta`] takes.
pub fn gdn_conv(rec: &mut Recorder, s: &GatedDeltaShape, segs: Segments, buf: &GdnConvBuffers) {
    let params = s.params(0);
    let b = GATED_DELTA;
    let groups = params.channels.div_ceil(64);
    let conv = [
        (b.x, buf.x),
        (b.conv_w, buf.conv_w),
        (b.hist, buf.hist),
        (b.qkv, buf.qkv),
        (b.segs, segs.segs),
    ];
    rec.dispatch(
        Kernel::GdnConv,
        WDtype::F32,
        &params,
        &conv,
        [groups, segs.max_rows, segs.count],
    );
    let keep = [(b.x, buf.x), (b.hist, buf.hist), (b.segs, segs.segs)];
    rec.dispatch(
        Kernel::GdnConvKeep,
        WDtype::F32,
        &params,
        &keep,
        [groups, segs.count, 1],
    );
}

/// Sizes of a JetBlock's front end (SPEC-gdn, "JetBlock").
pub struct DynamicConvShape {
    pub key_heads: u32,
    pub key_dim: u32,
    /// The value channels (nh dv) the convolution runs over.
    pub channels: u32,
    pub taps: u32,
}

/// A JetBlock's front-end buffers: q, k, v rows before it (`x`, rows of
/// 2 nh dk + channels), each row's generated taps (`kernels`, rows of
/// channels * taps, channel-major), the sequences' v histories, and where
/// q, k, v go (`qkv`, as [`gdn_conv`] leaves them).
pub struct DynamicConvBuffers<'a> {
    pub x: &'a wgpu::Buffer,
    pub kernels: &'a wgpu::Buffer,
    pub hist: &'a wgpu::Buffer,
    pub qkv: &'a wgpu::Buffer,
}

/// A JetBlock's q and k through SiLU and its v through the dynamic
/// convolution and SiLU, every segment's rows into `qkv`, each continuing
/// from its sequence's v history, which it leaves updated: what
/// [`gated_delta`] takes.
pub fn dynamic_conv(
    rec: &mut Recorder,
    s: &DynamicConvShape,
    segs: Segments,
    buf: &DynamicConvBuffers,
) {
    let params = DynamicConvParams {
        qk: 2 * s.key_heads * s.key_dim,
        channels: s.channels,
        taps: s.taps,
    };
    let b = DYNAMIC_CONV;
    let conv = [
        (b.x, buf.x),
        (b.kernels, buf.kernels),
        (b.hist, buf.hist),
        (b.qkv, buf.qkv),
        (b.segs, segs.segs),
    ];
    rec.dispatch(
        Kernel::DynConv,
        WDtype::F32,
        &params,
        &conv,
        [
            (params.qk + params.channels).div_ceil(64),
            segs.max_rows,
            segs.count,
        ],
    );
    let keep = [(b.x, buf.x), (b.hist, buf.hist), (b.segs, segs.segs)];
    rec.dispatch(
        Kernel::DynConvKeep,
        WDtype::F32,
        &params,
        &keep,
        [s.channels.div_ceil(64), segs.count, 1],
    );
}

/// A gated-delta layer's buffers from the convolved q, k, v (`qkv`) on:
/// the projections (`z`; `beta` and `g` holding b and a, replaced by beta
/// and g), its f32 weights, the sequences' S (`state`), where the gated,
/// normed output (`o`) goes, and scratch for the chunked form.
pub struct GatedDeltaBuffers<'a> {
    pub qkv: &'a wgpu::Buffer,
    pub z: &'a wgpu::Buffer,
    pub beta: &'a wgpu::Buffer,
    pub g: &'a wgpu::Buffer,
    pub a_log: &'a wgpu::Buffer,
    pub dt_bias: &'a wgpu::Buffer,
    pub norm_w: &'a wgpu::Buffer,
    pub state: &'a wgpu::Buffer,
    pub o: &'a wgpu::Buffer,
    pub scratch: Spare<'a>,
}

/// The gated delta rule over every segment's `rows` packed rows of `qkv`
/// (left by [`gdn_conv`] or [`dynamic_conv`]), each continuing from its
/// sequence's state, which it leaves updated: q/k norms with beta and g,
/// the rule, then the gated RMSNorm of each value head into `o`. The rule
/// is the recurrence for decode (one row a segment) and the chunked form
/// otherwise, where `scratch` holds [`GatedDeltaShape::scratch_floats`]
/// (it falls back to the recurrence where not, or the heads are too
/// large). A lone segment of at least 4 chunks is cut into parts run side
/// by side where `scratch` also holds [`GatedDeltaShape::part_floats`] a
/// part (see [`GatedDeltaShape::parts`]). `qkv`, `beta` and `g` are left
/// overwritten.
pub fn gated_delta(
    rec: &mut Recorder,
    s: &GatedDeltaShape,
    segs: Segments,
    rows: u32,
    buf: &GatedDeltaBuffers,
) {
    let mut params = s.params(rows);
    let b = GATED_DELTA;
    let f = WDtype::F32;
    let prepare = [
        (b.qkv, buf.qkv),
        (b.beta, buf.beta),
        (b.g, buf.g),
        (b.a_log, buf.a_log),
        (b.dt_bias, buf.dt_bias),
    ];
    let items = 2 * s.key_heads + s.value_heads;
    rec.dispatch_1d(Kernel::GdnPrepare, f, &params, &prepare, rows * items, 64);
    let recur = [
        (b.qkv, buf.qkv),
        (b.beta, buf.beta),
        (b.g, buf.g),
        (b.state, buf.state),
        (b.o, buf.o),
        (b.segs, segs.segs),
    ];
    let chunked =
        segs.max_rows > 1 && s.chunkable() && buf.scratch.floats >= s.scratch_floats(rows);
    if chunked {
        let wy = [
            (b.qkv, buf.qkv),
            (b.beta, buf.beta),
            (b.g, buf.g),
            (b.segs, segs.segs),
            (b.scratch, buf.scratch.buffer),
        ];
        rec.dispatch(
            Kernel::GdnWy,
            f,
            &params,
            &wy,
            [segs.max_rows.div_ceil(GDN_CHUNK), s.value_heads, segs.count],
        );
        let chunk = [
            (b.qkv, buf.qkv),
            (b.g, buf.g),
            (b.state, buf.state),
            (b.o, buf.o),
            (b.segs, segs.segs),
            (b.scratch, buf.scratch.buffer),
        ];
        let blocks = s.value_dim.div_ceil(GDN_COLUMNS);
        let parts = if segs.count == 1 {
            s.parts(segs.max_rows, rows, buf.scratch.floats)
        } else {
            1
        };
        if parts < 2 {
            rec.dispatch(
                Kernel::GdnChunk,
                f,
                &params,
                &chunk,
                [blocks, s.value_heads, segs.count],
            );
        } else {
            // Parts of whole chunks, as even as they come.
            let chunks = segs.max_rows.div_ceil(GDN_CHUNK);
            params.part_rows = chunks.div_ceil(parts) * GDN_CHUNK;
            params.parts = segs.max_rows.div_ceil(params.part_rows);
            // Only later parts start from a part's A_p and B_p: the last
            // part's would go unused.
            rec.dispatch(
                Kernel::GdnPartState,
                f,
                &params,
                &chunk,
                [
                    blocks + s.key_dim.div_ceil(GDN_COLUMNS),
                    s.value_heads,
                    params.parts - 1,
                ],
            );
            let carry = [
                (b.state, buf.state),
                (b.segs, segs.segs),
                (b.scratch, buf.scratch.buffer),
            ];
            rec.dispatch_1d(
                Kernel::GdnCarry,
                f,
                &params,
                &carry,
                s.value_heads * s.value_dim,
                64,
            );
            rec.dispatch(
                Kernel::GdnChunk,
                f,
                &params,
                &chunk,
                [blocks, s.value_heads, params.parts],
            );
        }
    } else {
        rec.dispatch(
            Kernel::GdnRecur,
            f,
            &params,
            &recur,
            [(s.value_heads * s.value_dim).div_ceil(64), segs.count, 1],
        );
    }
    let norm = [(b.o, buf.o), (b.z, buf.z), (b.norm_w, buf.norm_w)];
    rec.dispatch_1d(Kernel::GdnNorm, f, &params, &norm, rows * s.value_heads, 64);
}

/// Shapes of the routing reductions: one sequence of `rows` tokens, a
/// sliding-window layer's `window` (0: the whole context).
pub struct RowStatsShape {
    pub rows: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub dh: u32,
    pub window: u32,
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
        window: s.window,
    };
    let (gx, gy) = rec.gpu().dispatch_size(s.rows * s.heads, 1);
    let b = ROUTING;
    let buffers = [
        (b.q, q),
        (b.k, k),
        (b.lse, lse),
        (b.dist, dist),
        (b.mass, mass),
        (b.pooled, pooled),
    ];
    rec.dispatch(
        Kernel::RowStats,
        WDtype::F32,
        &params,
        &buffers,
        [gx, gy, 1],
    );
}
