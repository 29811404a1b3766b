// Lightning attention (linear attention with a per-head decay gamma =
// exp(-slope)), continuing from a state S [heads, dk, dk] kept on the GPU:
//
//   S(t) = gamma S(t-1) + k(t)^T v(t),   o(t) = scale q(t) S(t)
//
// `chunk` (prefill) processes 16 tokens at a time in the parallel form
//   o_i = scale (sum_{s <= i} gamma^(i-s) (q_i . k_s) v_s + gamma^(i+1) q_i S)
//   S  <- gamma^n S + sum_s gamma^(n-1-s) k_s^T v_s
// with a workgroup per (head, block of 16 value columns), the state block
// in workgroup memory (head dims up to 128; 14 KiB in all); `step`
// (decode) is the recurrence for one token.
//
// A batch's new rows are packed: segment z (a Seg, from segments.wgsl)
// holds `rows` rows from packed row `row0` of the sequence whose state is
// number `slot` (pos0 unused).
// `chunk` takes segment z = workgroup z; `step` segment y = global y, one
// row each.
//
// One long segment alone would give the GPU only heads x dk / 16
// workgroups, each walking thousands of tokens. With `parts` > 1 its rows
// are cut into parts of `part_rows` (workgroup z = part z of segment 0),
// in three passes: `part_state` folds each part's keys and values into a
// state from zero, into `carry`; `carry_in` turns those into the state at
// the start of every part (from the segment's own); `chunk` then runs every
// part from its starting state, the last one leaving the final state.
// (Cutting a sequence this way costs a third more arithmetic and gives
// parts x as many workgroups: 21 Lightning layers of a 2B model at 4096
// tokens went from 139 to 78 ms on an H200, loops unrolled as well.)
//
// Bindings (group 0):
//   0  p      : Params      uniform
//   1  q      : array<f32>  read        [packed rows, heads * dk]
//   2  k      : array<f32>  read        [packed rows, kv_heads * dk]
//   3  v      : array<f32>  read        [packed rows, kv_heads * dk]
//   4  slopes : array<f32>  read        [heads]
//   5  state  : array<f32>  read_write  [slots, heads, dk, dk], S[h][key dim][value dim]
//   6  o      : array<f32>  read_write  [packed rows, heads * dk]
//   7  segs   : array<Seg>  read        [segments]
//   8  carry  : array<f32>  read_write  [parts, heads, dk, dk] (parts > 1)
// `step` binds 1-7; `carry_in` 4, 5, 7, 8.

struct Params {
    heads: u32,
    kv_heads: u32,
    dk: u32,
    scale: f32,
    parts: u32,
    part_rows: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> slopes: array<f32>;
@group(0) @binding(5) var<storage, read_write> state: array<f32>;
@group(0) @binding(6) var<storage, read_write> o: array<f32>;
@group(0) @binding(7) var<storage, read> segs: array<Seg>;
@group(0) @binding(8) var<storage, read_write> carry: array<f32>;

const C: u32 = 16u;
const VB: u32 = 16u;
const MAX_DK: u32 = 128u;
const KH: u32 = 64u; // key dims staged at a time

// The state block S[d][col0 + j], kept here across the segment's chunks.
var<workgroup> sk: array<array<f32, VB>, MAX_DK>;
// The chunk's keys, KH dims at a time (padded: lanes read different rows).
var<workgroup> ks: array<array<f32, 65>, C>;
// The chunk's values of this column block.
var<workgroup> vs: array<array<f32, VB>, C>;
// Decayed scores of the chunk.
var<workgroup> att: array<array<f32, 17>, C>;
var<workgroup> seg: Seg;

// What a workgroup of `chunk` or `part_state` works on: rows r0 .. r0 +
// rows of the packed block, state from `source` (FROM_*), output on or
// off, final state to `to` (TO_*), at state / carry index `at` [dk, dk]
// blocks.
struct Run {
    r0: u32,
    rows: u32,
    source: u32,
    source_at: u32,
    outputs: bool,
    to: u32,
    to_at: u32,
}

const FROM_ZERO: u32 = 0u;
const FROM_STATE: u32 = 1u;
const FROM_CARRY: u32 = 2u;
const TO_NONE: u32 = 0u;
const TO_STATE: u32 = 1u;
const TO_CARRY: u32 = 2u;

// Segment or part z of this call, as a Run. Uniform across the workgroup.
fn run_of(t: u32, z: u32, h: u32, outputs: bool) -> Run {
    if (t == 0u) {
        seg = segs[select(z, 0u, p.parts > 1u)];
    }
    let sg = workgroupUniformLoad(&seg);
    let whole = (sg.slot * p.heads + h) * p.dk * p.dk;
    if (p.parts <= 1u) {
        return Run(sg.row0, sg.rows, FROM_STATE, whole, outputs, TO_STATE, whole);
    }
    let begin = min(sg.rows, z * p.part_rows);
    let rows = min(sg.rows, begin + p.part_rows) - begin;
    let mine = (z * p.heads + h) * p.dk * p.dk;
    let last = z + 1u == p.parts;
    if (!outputs) {
        // part_state: the last part's sum is never needed.
        return Run(sg.row0 + begin, select(rows, 0u, last), FROM_ZERO, 0u, false, select(TO_CARRY, TO_NONE, last), mine);
    }
    // Every part starts from the carry, part 0 too: the last part writes
    // the segment's state, which part 0 could otherwise still be reading.
    return Run(sg.row0 + begin, rows, FROM_CARRY, mine, true, select(TO_NONE, TO_STATE, last), whole);
}

// Thread (i, j) = (t / 16, t % 16): chunk token i, value column col0 + j;
// for the state update, also key dims i, i + 16, i + 32, i + 48 of each
// staged half. Queries are read from memory (the 16 threads of a token
// read the same address); keys and values are staged once a chunk.
@compute @workgroup_size(256)
fn chunk(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    chunks(t, wg, run_of(t, wg.z, wg.y, true));
}

@compute @workgroup_size(256)
fn part_state(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    chunks(t, wg, run_of(t, wg.z, wg.y, false));
}

fn chunks(t: u32, wg: vec3<u32>, run: Run) {
    let j = t % 16u;
    let i = t / 16u;
    let h = wg.y;
    let col = wg.x * VB + j;
    let g = h / (p.heads / p.kv_heads);
    let slope = slopes[h];
    let q_stride = p.heads * p.dk;
    let kv_stride = p.kv_heads * p.dk;
    let r0 = run.r0;

    for (var d = i; d < p.dk; d += C) {
        var s = 0.0;
        if (col < p.dk) {
            let at = d * p.dk + col;
            if (run.source == FROM_STATE) {
                s = state[run.source_at + at];
            } else if (run.source == FROM_CARRY) {
                s = carry[run.source_at + at];
            }
        }
        sk[d][j] = s;
    }

    for (var c0 = 0u; c0 < run.rows; c0 += C) {
        let n = min(C, run.rows - c0);
        let live = i < n;
        let qb = (r0 + c0 + min(i, n - 1u)) * q_stride + h * p.dk;
        workgroupBarrier();
        var vv = 0.0;
        if (live && col < p.dk) {
            vv = v[(r0 + c0 + i) * kv_stride + g * p.dk + col];
        }
        vs[i][j] = vv;
        // The state's part, before this chunk updates it.
        // Four at a time (a loop's own bookkeeping costs as much as one
        // FMA), then the rest.
        var inter = 0.0;
        var d = 0u;
        for (; d + 4u <= p.dk; d += 4u) {
            inter = fma(q[qb + d], sk[d][j], inter);
            inter = fma(q[qb + d + 1u], sk[d + 1u][j], inter);
            inter = fma(q[qb + d + 2u], sk[d + 2u][j], inter);
            inter = fma(q[qb + d + 3u], sk[d + 3u][j], inter);
        }
        for (; d < p.dk; d++) {
            inter = fma(q[qb + d], sk[d][j], inter);
        }
        var a = 0.0;
        for (var d0 = 0u; d0 < p.dk; d0 += KH) {
            workgroupBarrier();
            // ks[token][dd] = k[token][d0 + dd]: 4 values a thread.
            for (var e = t; e < C * KH; e += 256u) {
                let tok = e / KH;
                let dd = e % KH;
                var kv_val = 0.0;
                if (tok < n && d0 + dd < p.dk) {
                    kv_val = k[(r0 + c0 + tok) * kv_stride + g * p.dk + d0 + dd];
                }
                ks[tok][dd] = kv_val;
            }
            workgroupBarrier();
            let dn = min(KH, p.dk - d0);
            var dd = 0u;
            for (; dd + 4u <= dn; dd += 4u) {
                a = fma(q[qb + d0 + dd], ks[j][dd], a);
                a = fma(q[qb + d0 + dd + 1u], ks[j][dd + 1u], a);
                a = fma(q[qb + d0 + dd + 2u], ks[j][dd + 2u], a);
                a = fma(q[qb + d0 + dd + 3u], ks[j][dd + 3u], a);
            }
            for (; dd < dn; dd++) {
                a = fma(q[qb + d0 + dd], ks[j][dd], a);
            }
            // S[d] <- gamma^n S[d] + sum_s gamma^(n-1-s) k_s[d] v_s, for
            // d = d0 + i + 16 r.
            var acc = vec4<f32>(0.0);
            let decay_n = exp(-slope * f32(n));
            for (var r = 0u; r < 4u; r++) {
                let d = d0 + i + 16u * r;
                if (d < p.dk) {
                    acc[r] = sk[d][j] * decay_n;
                }
            }
            for (var s = 0u; s < n; s++) {
                let w = exp(-slope * f32(n - 1u - s)) * vs[s][j];
                acc = fma(vec4<f32>(w), vec4<f32>(ks[s][i], ks[s][i + 16u], ks[s][i + 32u], ks[s][i + 48u]), acc);
            }
            for (var r = 0u; r < 4u; r++) {
                let d = d0 + i + 16u * r;
                if (d < p.dk) {
                    sk[d][j] = acc[r];
                }
            }
        }
        // Thread (i, j) scored the pair (token i, key j).
        var sc = 0.0;
        if (j <= i && live) {
            sc = a * exp(-slope * f32(i - j));
        }
        att[i][j] = sc;
        workgroupBarrier();
        if (run.outputs && live && col < p.dk) {
            var intra = 0.0;
            for (var s = 0u; s <= i; s++) {
                intra = fma(att[i][s], vs[s][j], intra);
            }
            o[qb + col] = p.scale * (intra + exp(-slope * f32(i + 1u)) * inter);
        }
    }
    workgroupBarrier();
    if (col < p.dk) {
        for (var d = i; d < p.dk; d += C) {
            let at = d * p.dk + col;
            if (run.to == TO_STATE) {
                state[run.to_at + at] = sk[d][j];
            } else if (run.to == TO_CARRY) {
                carry[run.to_at + at] = sk[d][j];
            }
        }
    }
}

// Thread (h, d, col) of the state: carry[z] holds part z's own sum (from
// part_state, for z < parts - 1); leaves there the state at the start of
// part z. Every part but the last has part_rows rows.
@compute @workgroup_size(256)
fn carry_in(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = gid.x + gid.y * groups.x * 256u;
    let per_head = p.dk * p.dk;
    let block = p.heads * per_head;
    if (e >= block) {
        return;
    }
    let decay = exp(-slopes[e / per_head] * f32(p.part_rows));
    var s = state[segs[0].slot * block + e];
    var own = carry[e];
    carry[e] = s;
    for (var z = 1u; z < p.parts; z++) {
        s = decay * s + own;
        if (z + 1u < p.parts) {
            own = carry[z * block + e];
        }
        carry[z * block + e] = s;
    }
}

// One token per segment: a thread per (head, value column) walks its
// column of the state.
@compute @workgroup_size(64)
fn step(@builtin(global_invocation_id) gid: vec3<u32>) {
    let h = gid.x / p.dk;
    let col = gid.x % p.dk;
    if (h >= p.heads) {
        return;
    }
    let sg = segs[gid.y];
    let g = h / (p.heads / p.kv_heads);
    let gamma = exp(-slopes[h]);
    let kv_base = sg.row0 * p.kv_heads * p.dk + g * p.dk;
    let q_base = sg.row0 * p.heads * p.dk + h * p.dk;
    let s_base = (sg.slot * p.heads + h) * p.dk * p.dk;
    var acc = 0.0;
    for (var d = 0u; d < p.dk; d++) {
        let s = gamma * state[s_base + d * p.dk + col] + k[kv_base + d] * v[kv_base + col];
        state[s_base + d * p.dk + col] = s;
        acc = fma(q[q_base + d] * p.scale, s, acc);
    }
    o[q_base + col] = acc;
}
