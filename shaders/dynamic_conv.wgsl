// A JetBlock's front end (SPEC-gdn, "JetBlock" and "Dynamic short
// convolution"): what the gated delta rule (gated_delta.wgsl, from
// `prepare` on) takes in place of Qwen3.5's static convolution. Per row,
// over the projections x = [q | k | v] (before any activation):
//   q, k   silu(x), no convolution
//   v      silu(sum_w kernel_t[c, w] * v_{t-W+1+w}[c]), a causal depthwise
//          convolution whose W taps per channel each token generated
//          (kernel_t = W2 silu(W1 x_t) + b2, by the matmuls before this,
//          channel-major: kernel_t[c, w] at c * W + w), the inputs before
//          a segment's first row read from `hist` (zeros from the start)
// Entry points, dispatched in this order by gpu::ops::dynamic_conv:
//
//   conv       qkv = the above, as gated_delta.wgsl's `conv` leaves it
//   conv_keep  the last W-1 v inputs of each segment into `hist` (a pass
//              of its own: `conv` still reads the old history)
//
// A batch's new rows are packed: segment z (a Seg, from segments.wgsl)
// holds `rows` rows from packed row `row0` of the sequence whose history
// is number `slot`. A pass holds at most one segment of a sequence.
//
// Bindings (group 0):
//   0  p       : Params      uniform
//   1  x       : array<f32>  read        [rows, qk + channels] q, k, v before
//   2  kernels : array<f32>  read        [rows, channels * taps] generated taps
//   3  hist    : array<f32>  read_write  [slots, taps-1, channels] v inputs, oldest first
//   4  qkv     : array<f32>  read_write  [rows, qk + channels] after (q | k | v)
//   5  segs    : array<Seg>  read        [segments]

struct Params {
    // q's and k's channels (2 nh dk), passed through SiLU; then the
    // `channels` of v (nh dv) that the convolution runs over.
    qk: u32,
    channels: u32,
    taps: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> kernels: array<f32>;
@group(0) @binding(3) var<storage, read_write> hist: array<f32>;
@group(0) @binding(4) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(5) var<storage, read> segs: array<Seg>;

fn silu(v: f32) -> f32 {
    return v / (1.0 + exp(-v));
}

// v channel `ch` of entry i of a segment's [history ++ rows] (history
// taps-1 entries long).
fn v_input(sg: Seg, i: u32, ch: u32) -> f32 {
    let hk = p.taps - 1u;
    if (i < hk) {
        return hist[(sg.slot * hk + i) * p.channels + ch];
    }
    return x[(sg.row0 + i - hk) * (p.qk + p.channels) + p.qk + ch];
}

// Thread (channel x of q | k | v, row y of segment z).
@compute @workgroup_size(64)
fn conv(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ch = gid.x;
    let sg = segs[gid.z];
    let r = gid.y;
    let width = p.qk + p.channels;
    if (ch >= width || r >= sg.rows) {
        return;
    }
    let at = (sg.row0 + r) * width + ch;
    if (ch < p.qk) {
        qkv[at] = silu(x[at]);
        return;
    }
    // Row r's window is entries r .. r + taps-1 of [history ++ rows].
    let c = ch - p.qk;
    let kb = (sg.row0 + r) * p.channels * p.taps + c * p.taps;
    var sum = 0.0;
    for (var tap = 0u; tap < p.taps; tap++) {
        sum = fma(kernels[kb + tap], v_input(sg, r + tap, c), sum);
    }
    qkv[at] = silu(sum);
}

// Thread (v channel x, segment y).
@compute @workgroup_size(64)
fn conv_keep(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ch = gid.x;
    if (ch >= p.channels) {
        return;
    }
    let sg = segs[gid.y];
    let hk = p.taps - 1u;
    // Entry j becomes entry j + rows: in ascending j each history entry
    // is read before it is overwritten (rows >= 1).
    for (var j = 0u; j < hk; j++) {
        let v = v_input(sg, j + sg.rows, ch);
        hist[(sg.slot * hk + j) * p.channels + ch] = v;
    }
}
