// The gated delta rule (SPEC-gdn), Qwen3.5's linear layers, continuing
// from each sequence's state kept on the GPU: per value head j a state
// S_j [dk, dv] and, per sequence, the convolution's last K-1 inputs.
// Five entry points, dispatched in this order by gpu::ops::gated_delta:
//
//   conv       y = silu(depthwise causal conv1d of the projected q, k, v),
//              the history before a segment's first row read from `hist`
//   conv_keep  the last K-1 inputs of each segment into `hist` (a pass of
//              its own: `conv` still reads the old history)
//   prepare    q, k L2-normed per key head (q also times dk^-1/2);
//              beta = sigmoid(b), g = -exp(A_log) softplus(a + dt_bias)
//   recur      S = S exp(g); u = beta (v - S^T k); S += k u^T; o = S^T q
//   gated_norm o = o / rms(o) * w * silu(z) per value head
//
// `recur` walks a segment's tokens in order, a thread per (value head,
// value column): the rule never mixes value columns, so each column of S
// is a recurrence of its own, held in registers (dk <= MAX_DK).
//
// A batch's new rows are packed: segment z (a Seg, from segments.wgsl)
// holds `rows` rows from packed row `row0` of the sequence whose state is
// number `slot`. A pass holds at most one segment of a sequence.
//
// Bindings (group 0):
//   0  p       : Params      uniform
//   1  x       : array<f32>  read        [rows, C] q, k, v before the convolution
//   2  conv_w  : array<f32>  read        [C, K]
//   3  hist    : array<f32>  read_write  [slots, K-1, C], oldest first
//   4  qkv     : array<f32>  read_write  [rows, C] after it (q | k | v)
//   5  beta    : array<f32>  read_write  [rows, nv] b in, beta out
//   6  g       : array<f32>  read_write  [rows, nv] a in, g out
//   7  a_log   : array<f32>  read        [nv]
//   8  dt_bias : array<f32>  read        [nv]
//   9  state   : array<f32>  read_write  [slots, nv, dk, dv]
//  10  o       : array<f32>  read_write  [rows, nv * dv]
//  11  z       : array<f32>  read        [rows, nv * dv]
//  12  norm_w  : array<f32>  read        [dv]
//  13  segs    : array<Seg>  read        [segments]

struct Params {
    nk: u32,
    nv: u32,
    dk: u32,
    dv: u32,
    taps: u32,
    channels: u32,
    rows: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> conv_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> hist: array<f32>;
@group(0) @binding(4) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(5) var<storage, read_write> beta: array<f32>;
@group(0) @binding(6) var<storage, read_write> g: array<f32>;
@group(0) @binding(7) var<storage, read> a_log: array<f32>;
@group(0) @binding(8) var<storage, read> dt_bias: array<f32>;
@group(0) @binding(9) var<storage, read_write> state: array<f32>;
@group(0) @binding(10) var<storage, read_write> o: array<f32>;
@group(0) @binding(11) var<storage, read> z: array<f32>;
@group(0) @binding(12) var<storage, read> norm_w: array<f32>;
@group(0) @binding(13) var<storage, read> segs: array<Seg>;

const MAX_DK: u32 = 128u;

fn silu(v: f32) -> f32 {
    return v / (1.0 + exp(-v));
}

// Entry i of a segment's [history ++ rows] (history K-1 entries long).
fn conv_input(sg: Seg, i: u32, ch: u32) -> f32 {
    let hk = p.taps - 1u;
    if (i < hk) {
        return hist[(sg.slot * hk + i) * p.channels + ch];
    }
    return x[(sg.row0 + i - hk) * p.channels + ch];
}

// Thread (channel x, row y of segment z).
@compute @workgroup_size(64)
fn conv(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ch = gid.x;
    let sg = segs[gid.z];
    let r = gid.y;
    if (ch >= p.channels || r >= sg.rows) {
        return;
    }
    // Row r's window is entries r .. r + K-1 of [history ++ rows].
    var sum = 0.0;
    for (var tap = 0u; tap < p.taps; tap++) {
        sum = fma(conv_w[ch * p.taps + tap], conv_input(sg, r + tap, ch), sum);
    }
    qkv[(sg.row0 + r) * p.channels + ch] = silu(sum);
}

// Thread (channel x, segment y).
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
        let v = conv_input(sg, j + sg.rows, ch);
        hist[(sg.slot * hk + j) * p.channels + ch] = v;
    }
}

// log(1 + e^v), as torch's softplus (linear above 20); e^v where 1 + e^v
// would round to 1.
fn softplus(v: f32) -> f32 {
    if (v > 20.0) {
        return v;
    }
    if (v < -15.0) {
        return exp(v);
    }
    return log(1.0 + exp(v));
}

// Thread per (row, item): items 0 .. 2 nk are the q and k heads, then
// one per value head.
@compute @workgroup_size(64)
fn prepare(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = gid.x + gid.y * groups.x * 64u;
    let items = 2u * p.nk + p.nv;
    let row = e / items;
    let it = e % items;
    if (row >= p.rows) {
        return;
    }
    if (it < 2u * p.nk) {
        let base = row * p.channels + it * p.dk;
        var ss = 0.0;
        for (var d = 0u; d < p.dk; d++) {
            ss = fma(qkv[base + d], qkv[base + d], ss);
        }
        let inv = 1.0 / sqrt(ss + 1e-6);
        // Queries are normed first, then scaled, as the reference does.
        let scale = select(1.0, 1.0 / sqrt(f32(p.dk)), it < p.nk);
        for (var d = 0u; d < p.dk; d++) {
            qkv[base + d] = (qkv[base + d] * inv) * scale;
        }
        return;
    }
    let j = it - 2u * p.nk;
    let at = row * p.nv + j;
    beta[at] = 1.0 / (1.0 + exp(-beta[at]));
    g[at] = -exp(a_log[j]) * softplus(g[at] + dt_bias[j]);
}

// Thread per (value head, value column) x, segment y.
@compute @workgroup_size(64)
fn recur(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x / p.dv;
    let col = gid.x % p.dv;
    if (j >= p.nv) {
        return;
    }
    let sg = segs[gid.y];
    let kh = j / (p.nv / p.nk);
    let c = p.channels;
    let sb = (sg.slot * p.nv + j) * p.dk * p.dv + col;
    var s: array<f32, MAX_DK>;
    for (var d = 0u; d < p.dk; d++) {
        s[d] = state[sb + d * p.dv];
    }
    for (var r = 0u; r < sg.rows; r++) {
        let row = sg.row0 + r;
        let qb = row * c + kh * p.dk;
        let kb = qb + p.nk * p.dk;
        let v = qkv[row * c + 2u * p.nk * p.dk + j * p.dv + col];
        let decay = exp(g[row * p.nv + j]);
        var sk = 0.0;
        for (var d = 0u; d < p.dk; d++) {
            s[d] *= decay;
            sk = fma(qkv[kb + d], s[d], sk);
        }
        let u = beta[row * p.nv + j] * (v - sk);
        var acc = 0.0;
        for (var d = 0u; d < p.dk; d++) {
            s[d] = fma(qkv[kb + d], u, s[d]);
            acc = fma(qkv[qb + d], s[d], acc);
        }
        o[(row * p.nv + j) * p.dv + col] = acc;
    }
    for (var d = 0u; d < p.dk; d++) {
        state[sb + d * p.dv] = s[d];
    }
}

// Thread per (row, value head).
@compute @workgroup_size(64)
fn gated_norm(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = gid.x + gid.y * groups.x * 64u;
    if (e / p.nv >= p.rows) {
        return;
    }
    let base = e * p.dv;
    var ss = 0.0;
    for (var c = 0u; c < p.dv; c++) {
        ss = fma(o[base + c], o[base + c], ss);
    }
    let inv = 1.0 / sqrt(ss / f32(p.dv) + p.eps);
    for (var c = 0u; c < p.dv; c++) {
        o[base + c] = norm_w[c] * (o[base + c] * inv) * silu(z[base + c]);
    }
}
