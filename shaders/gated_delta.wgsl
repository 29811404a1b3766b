// The gated delta rule (SPEC-gdn), Qwen3.5's linear layers, continuing
// from each sequence's state kept on the GPU: per value head j a state
// S_j [dk, dv] and, per sequence, the convolution's last K-1 inputs.
// Entry points, dispatched in this order by gpu::ops::gated_delta:
//
//   conv       y = silu(depthwise causal conv1d of the projected q, k, v),
//              the history before a segment's first row read from `hist`
//   conv_keep  the last K-1 inputs of each segment into `hist` (a pass of
//              its own: `conv` still reads the old history)
//   prepare    q, k L2-normed per key head (q also times dk^-1/2);
//              beta = sigmoid(b), g = -exp(A_log) softplus(a + dt_bias)
//   recur      S = S exp(g); u = beta (v - S^T k); S += k u^T; o = S^T q
//     or, when a segment has more than one row (prefill), the same in
//     chunks of CH tokens:
//   wy         per (chunk, value head): the WY form of the chunk
//   chunk      per (value head, block of VB value columns): S carried
//              across the chunks of a segment
//     a lone long segment cut into parts first takes
//   part_state per part: A_p and B_p, S_out = A_p S_in + B_p
//   carry      each part's starting state from those, in order
//     and then `chunk` per part
//   gated_norm o = o / rms(o) * w * silu(z) per value head
//
// `recur` walks a segment's tokens in order, a thread per (value head,
// value column): the rule never mixes value columns, so each column of S
// is a recurrence of its own, held in registers (dk <= MAX_DK). Decode
// takes it; for long prompts it leaves the GPU almost idle (nv * dv
// threads, each walking every token), hence the chunked form, which
// turns most of the work into products of whole chunks.
//
// The chunked form, within a chunk of n <= CH tokens starting from S
// (gc_i the cumulative sum of g over the chunk up to token i):
//   L  = strictly lower, L_is = beta_i (k_i . k_s) exp(gc_i - gc_s)
//   u  = (I + L)^-1 (beta v)             (the deltas, as if S were zero)
//   w  = (I + L)^-1 (beta exp(gc) k)     (what S takes away from them)
//   v' = u - w S
//   o_i = exp(gc_i) q_i S + sum_{s <= i} (q_i . k_s) exp(gc_i - gc_s) v'_s
//   S  <- exp(gc_last) S + sum_s exp(gc_last - gc_s) k_s v'_s^T
// Every exponent is <= 0, so nothing overflows however strong the decay.
// `wy` solves (I + L) by forward substitution (a thread per column of
// u and w, two or more past 256 columns) and leaves u in place of v, w and the scores
// P_is = (q_i . k_s) exp(gc_i - gc_s) in `scratch`, gc in place of g;
// `chunk` does the rest, its block of S in workgroup memory (12.3 KiB
// in all, under WebGPU's 16 KiB).
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
//  14  scratch : array<f32>  read_write  [rows, nv, dk] w, then [rows, nv, CH] P,
//                                        then (split) B_p and A_p per part

struct Params {
    nk: u32,
    nv: u32,
    dk: u32,
    dv: u32,
    taps: u32,
    channels: u32,
    rows: u32,
    eps: f32,
    // A lone long segment cut into `parts` parts of `part_rows` rows
    // (whole chunks); parts = 1 otherwise.
    parts: u32,
    part_rows: u32,
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
@group(0) @binding(14) var<storage, read_write> scratch: array<f32>;

const MAX_DK: u32 = 128u;
// Tokens a chunk; value columns a `chunk` workgroup holds (narrow, so
// that a lone sequence still fills the GPU: dv / VB x nv workgroups walk
// its chunks in order), and the threads that share a column (TI = 256 / VB).
const CH: u32 = 64u;
const VB: u32 = 4u;
const TI: u32 = 64u;

var<workgroup> seg_wg: Seg;
// The chunk's cumulative log-decays, and (`wy`) its betas or (`chunk`)
// exp(gc_last - gc_s).
var<workgroup> gc: array<f32, CH>;
var<workgroup> per_row: array<f32, CH>;
// `wy`: L, row i's entries from i (i - 1) / 2.
var<workgroup> tri: array<f32, 2016>;
// `chunk`: S[d][col0 + c], and the chunk's v'.
var<workgroup> sk: array<array<f32, VB>, MAX_DK>;
var<workgroup> vn: array<array<f32, VB>, CH>;

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

// Workgroup (chunk x, value head y, segment z).
@compute @workgroup_size(256)
fn wy(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    if (t == 0u) {
        seg_wg = segs[wg.z];
    }
    let sg = workgroupUniformLoad(&seg_wg);
    let c0 = wg.x * CH;
    if (c0 >= sg.rows) {
        return;
    }
    let n = min(CH, sg.rows - c0);
    let r0 = sg.row0 + c0;
    let j = wg.y;
    let c = p.channels;
    let kh = j / (p.nv / p.nk);
    let q0 = kh * p.dk;
    let k0 = p.nk * p.dk + kh * p.dk;
    let v0 = 2u * p.nk * p.dk + j * p.dv;
    if (t == 0u) {
        // In order, as the reference's cumsum.
        var acc = 0.0;
        for (var i = 0u; i < n; i++) {
            let at = (r0 + i) * p.nv + j;
            acc += g[at];
            gc[i] = acc;
            g[at] = acc;
        }
    }
    if (t < n) {
        per_row[t] = beta[(r0 + t) * p.nv + j];
    }
    workgroupBarrier();
    let scores = p.rows * p.nv * p.dk;
    for (var e = t; e < CH * CH; e += 256u) {
        let i = e / CH;
        let s = e % CH;
        if (i < n && s <= i) {
            let ki = (r0 + i) * c + k0;
            let qi = (r0 + i) * c + q0;
            let ks = (r0 + s) * c + k0;
            var kk = 0.0;
            var qk = 0.0;
            for (var d = 0u; d < p.dk; d++) {
                let kd = qkv[ks + d];
                kk = fma(qkv[ki + d], kd, kk);
                qk = fma(qkv[qi + d], kd, qk);
            }
            let decay = exp(gc[i] - gc[s]);
            scratch[scores + ((r0 + i) * p.nv + j) * CH + s] = qk * decay;
            if (s < i) {
                tri[(i * i - i) / 2u + s] = per_row[i] * kk * decay;
            }
        }
    }
    workgroupBarrier();
    // Thread t solves column t of [u | w] (u's dv columns, then w's dk),
    // and t + 256, ... where dk + dv > 256 (a JetBlock's dv of 256); each
    // reads back only what it wrote itself.
    var xs: array<f32, CH>;
    for (var cc = t; cc < p.dv + p.dk; cc += 256u) {
        let is_u = cc < p.dv;
        let col = select(cc - p.dv, cc, is_u);
        for (var i = 0u; i < n; i++) {
            let row = r0 + i;
            var x_i: f32;
            if (is_u) {
                x_i = per_row[i] * qkv[row * c + v0 + col];
            } else {
                x_i = per_row[i] * exp(gc[i]) * qkv[row * c + k0 + col];
            }
            let base = (i * i - i) / 2u;
            for (var s = 0u; s < i; s++) {
                x_i = fma(-tri[base + s], xs[s], x_i);
            }
            xs[i] = x_i;
            if (is_u) {
                qkv[row * c + v0 + col] = x_i;
            } else {
                scratch[(row * p.nv + j) * p.dk + col] = x_i;
            }
        }
    }
}

// What a `chunk` or `part_state` workgroup computes (uniform across it).
// RUN: the rule with outputs, from the sequence's state (or, split, from
// the part's starting state), the final state into `state` (split: only
// the last part). FROM_ZERO: B_p, the part's final state from S = 0 with
// no outputs. FROM_IDENTITY: A_p, the same recurrence over a dk x dk
// "state" started from I with u = 0: over a chunk that is exactly M_c S.
const RUN: u32 = 0u;
const FROM_ZERO: u32 = 1u;
const FROM_IDENTITY: u32 = 2u;

// Where a split's B_p (then, after `carry`, the state at the start of
// part p + 1) and A_p lie in `scratch`: after w and the scores,
// [parts, nv, dk, dv] then [parts, nv, dk, dk].
fn part_b(part: u32, j: u32) -> u32 {
    return p.rows * p.nv * (p.dk + CH) + (part * p.nv + j) * p.dk * p.dv;
}

fn part_a(part: u32, j: u32) -> u32 {
    return p.rows * p.nv * (p.dk + CH) + p.parts * p.nv * p.dk * p.dv + (part * p.nv + j) * p.dk * p.dk;
}

// Thread (ti, cl) = (t / VB, t % VB): column block `block`'s column
// block * VB + cl, chunk rows ti + TI r and key dims ti + TI m of S, over
// segment z's rows or (p.parts > 1, segment 0 alone) part z's. w, q and P
// rows are read by the VB threads of a row at one address.
fn walk(t: u32, block: u32, j: u32, z: u32, mode: u32) {
    let split = p.parts > 1u;
    if (t == 0u) {
        seg_wg = segs[select(z, 0u, split)];
    }
    let sg = workgroupUniformLoad(&seg_wg);
    var first = 0u;
    var end = sg.rows;
    if (split) {
        first = z * p.part_rows;
        end = min(sg.rows, first + p.part_rows);
    }
    let cl = t % VB;
    let ti = t / VB;
    let col = block * VB + cl;
    // A_p's columns run over key dims, and take no values (u = 0).
    let width = select(p.dv, p.dk, mode == FROM_IDENTITY);
    let live = col < width;
    let takes_u = live && mode != FROM_IDENTITY;
    let c = p.channels;
    let kh = j / (p.nv / p.nk);
    let q0 = kh * p.dk;
    let k0 = p.nk * p.dk + kh * p.dk;
    let v0 = 2u * p.nk * p.dk + j * p.dv;
    let scores = p.rows * p.nv * p.dk;
    let sb = (sg.slot * p.nv + j) * p.dk * p.dv + col;
    for (var d = ti; d < p.dk; d += TI) {
        var s = 0.0;
        if (live) {
            if (mode == FROM_IDENTITY) {
                s = select(0.0, 1.0, d == col);
            } else if (mode == RUN) {
                if (split && z > 0u) {
                    s = scratch[part_b(z - 1u, j) + d * p.dv + col];
                } else {
                    s = state[sb + d * p.dv];
                }
            }
        }
        sk[d][cl] = s;
    }
    for (var c0 = first; c0 < end; c0 += CH) {
        let n = min(CH, end - c0);
        let r0 = sg.row0 + c0;
        workgroupBarrier();
        if (t < n) {
            let gt = g[(r0 + t) * p.nv + j];
            gc[t] = gt;
            per_row[t] = exp(g[(r0 + n - 1u) * p.nv + j] - gt);
        }
        workgroupBarrier();
        // v' and the state's part of o, from S before this chunk.
        var inter: array<f32, CH / TI>;
        for (var r = 0u; r < CH / TI; r++) {
            let i = ti + TI * r;
            if (i < n) {
                let row = r0 + i;
                let wb = (row * p.nv + j) * p.dk;
                let qb = row * c + q0;
                var ws = 0.0;
                var qs = 0.0;
                for (var d = 0u; d < p.dk; d++) {
                    let s = sk[d][cl];
                    ws = fma(scratch[wb + d], s, ws);
                    qs = fma(qkv[qb + d], s, qs);
                }
                var u = 0.0;
                if (takes_u) {
                    u = qkv[row * c + v0 + col];
                }
                vn[i][cl] = u - ws;
                inter[r] = qs * exp(gc[i]);
            }
        }
        workgroupBarrier();
        if (mode == RUN) {
            for (var r = 0u; r < CH / TI; r++) {
                let i = ti + TI * r;
                if (i < n && live) {
                    let pb = scores + ((r0 + i) * p.nv + j) * CH;
                    var acc = inter[r];
                    for (var s = 0u; s <= i; s++) {
                        acc = fma(scratch[pb + s], vn[s][cl], acc);
                    }
                    o[((r0 + i) * p.nv + j) * p.dv + col] = acc;
                }
            }
        }
        let keep = exp(gc[n - 1u]);
        for (var d = ti; d < p.dk; d += TI) {
            var acc = sk[d][cl] * keep;
            for (var s = 0u; s < n; s++) {
                acc = fma(qkv[(r0 + s) * c + k0 + d] * per_row[s], vn[s][cl], acc);
            }
            sk[d][cl] = acc;
        }
    }
    workgroupBarrier();
    if (!live) {
        return;
    }
    for (var d = ti; d < p.dk; d += TI) {
        if (mode == FROM_ZERO) {
            scratch[part_b(z, j) + d * p.dv + col] = sk[d][cl];
        } else if (mode == FROM_IDENTITY) {
            scratch[part_a(z, j) + d * p.dk + col] = sk[d][cl];
        } else if (!split || z + 1u == p.parts) {
            state[sb + d * p.dv] = sk[d][cl];
        }
    }
}

// Workgroup (column block x, value head y, segment or part z).
@compute @workgroup_size(256)
fn chunk(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    walk(t, wg.x, wg.y, wg.z, RUN);
}

// A lone long segment walks its chunks in order: dv / VB x nv workgroups
// for thousands of tokens leave most of the GPU idle. Each chunk's update
// is affine in S (S' = M_c S + N_c), so a part of chunks maps its starting
// state to A_p S + B_p: this finds A_p and B_p of every part but the last
// side by side, `carry` chains them into each part's starting state, and
// `chunk` runs the parts side by side from those.
// Workgroup (column block x: dv / VB blocks of B_p, then dk / VB of A_p,
// value head y, part z).
@compute @workgroup_size(256)
fn part_state(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let value_blocks = (p.dv + VB - 1u) / VB;
    if (wg.x < value_blocks) {
        walk(t, wg.x, wg.y, wg.z, FROM_ZERO);
    } else {
        walk(t, wg.x - value_blocks, wg.y, wg.z, FROM_IDENTITY);
    }
}

// Thread per (value head, value column): S_in(0) is the sequence's state,
// S_in(p + 1) = A_p S_in(p) + B_p, written over B_p (each thread reads
// and writes only its own column of it).
@compute @workgroup_size(64)
fn carry(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x / p.dv;
    let col = gid.x % p.dv;
    if (j >= p.nv) {
        return;
    }
    let sg = segs[0];
    let sb = (sg.slot * p.nv + j) * p.dk * p.dv + col;
    var s: array<f32, MAX_DK>;
    var next: array<f32, MAX_DK>;
    for (var d = 0u; d < p.dk; d++) {
        s[d] = state[sb + d * p.dv];
    }
    for (var part = 0u; part + 1u < p.parts; part++) {
        let ab = part_a(part, j);
        let bb = part_b(part, j) + col;
        for (var d = 0u; d < p.dk; d++) {
            var acc = scratch[bb + d * p.dv];
            for (var e = 0u; e < p.dk; e++) {
                acc = fma(scratch[ab + d * p.dk + e], s[e], acc);
            }
            next[d] = acc;
        }
        for (var d = 0u; d < p.dk; d++) {
            s[d] = next[d];
            scratch[bb + d * p.dv] = s[d];
        }
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
