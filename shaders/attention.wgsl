// Causal softmax attention with GQA, flash-style: no T x T matrix ever
// exists. Queries arrive normalised, rotated and scaled by HyPE
// (heads.wgsl); keys and values are the layer's cache.
//
// A batch's new rows are packed: segment z (a Seg, from segments.wgsl)
// holds `rows` query rows from packed row `row0`, of the sequence whose
// cache starts at cache row slot * ctx; its row r sits at absolute
// position pos0 + r and sees keys 0 ..= pos0 + r of that cache, or, in a
// sliding-window layer (`window` w > 0), keys pos0 + r - w + 1 ..= pos0 + r:
// keys before a workgroup's first window are never read, not masked.
//
// Per row and head it also writes the log-sum-exp of the scaled logits,
// at the row's cache row, from which the routing diagnostics rebuild any
// attention probability: p(t, s) = exp(q_t . k_s * scale - lse_t).
//
// Two ways through, chosen per call (ops::attend):
// - `attend` (prefill): a workgroup takes 64 query rows of one head and
//   streams their keys in blocks of 32, both products register-tiled like
//   matmul.wgsl; it writes output columns col0 .. col0 + 128.
// - `partial` + `combine` (decode, one row per segment): the keys are
//   split into ranges of `split_keys`, a workgroup per (range, head,
//   segment) writes its unnormalised output and softmax statistics to
//   `part`, and `combine` merges the ranges (flash-decoding): a single
//   row otherwise leaves all but a few workgroups of a large GPU idle.
//
// Bindings (group 0):
//   0  p    : Params      uniform
//   1  q    : array<f32>  read        [packed rows, heads * dh]
//   2  k    : array<f32>  read        cache [slots * ctx, kv_heads * dh]
//   3  v    : array<f32>  read        cache [slots * ctx, kv_heads * dh]
//   4  o    : array<f32>  read_write  [packed rows, heads * dh]
//   5  lse  : array<f32>  read_write  [slots * ctx, heads]
//   6  segs : array<Seg>  read        [segments]
//   7  part : array<f32>  read_write  [segments, heads, splits, dh + 2]
// `attend` binds 1-6, `partial` 1-3 and 6-7, `combine` 4-7.

struct Params {
    heads: u32,
    kv_heads: u32,
    dh: u32,
    ctx: u32,
    scale: f32,
    col0: u32,
    split_keys: u32,
    splits: u32,
    // A sliding window's length; 0: the whole context.
    window: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<storage, read> segs: array<Seg>;
@group(0) @binding(7) var<storage, read_write> part: array<f32>;

// Finite, so that a fully masked block gives exp(masked - m) = 0 without
// an inf - inf.
const MASKED: f32 = -1e30;

// The first key a query at position `pos` sees.
fn first_key(pos: u32) -> u32 {
    if (p.window > 0u && pos + 1u > p.window) {
        return pos + 1u - p.window;
    }
    return 0u;
}

// ---- prefill ----------------------------------------------------------
//
// Thread t = (ty, tx) = (t / 16, t % 16) owns query rows ty * 4 .. + 4.
// Scores: keys tx * 2 .. + 2 of the block. Output: columns
// col0 + tx * 4 .. + 4 and col0 + 64 + tx * 4 .. + 4.
// Workgroup storage stays within WebGPU's guaranteed 16 KiB.
const BR: u32 = 64u;
const BC: u32 = 32u;
const DC: u32 = 16u; // head dims staged at a time for the scores
const VK: u32 = 8u; // keys staged at a time for the output
const OC: u32 = 128u; // output columns a workgroup writes

// Scores stage [DC][BR] queries and [DC][BC] keys; the output stage
// [VK][OC] values, in the same memory.
var<workgroup> stage: array<vec4<f32>, 384>;
// The block's probabilities, key-major: pt[key * 16 + r / 4][r % 4].
var<workgroup> pt: array<vec4<f32>, 512>;
// Per row: the rescale of the running output this block (then 1 / l).
var<workgroup> corr: array<vec4<f32>, 16>;
var<workgroup> seg: Seg;

// A thread's scores: keys tx * 2 (a) and tx * 2 + 1 (b) of its 4 rows.
struct Scores {
    a: vec4<f32>,
    b: vec4<f32>,
}

// One head dim of the scores: q holds it for the 4 rows, kv for 4 keys,
// of which the thread's pair is the low half (even tx) or the high one.
// Called four times a loop step: a loop's own bookkeeping (and, with
// bounds checks, its iteration guard) costs as much as these 8 FMAs.
fn score(s: Scores, q: vec4<f32>, kv: vec4<f32>, odd: bool) -> Scores {
    let k = select(kv.xy, kv.zw, odd);
    return Scores(fma(q, vec4<f32>(k.x), s.a), fma(q, vec4<f32>(k.y), s.b));
}

// A thread's outputs: row i, columns tx * 4 .. + 4 (a) and 64 + tx * 4 ..
// + 4 (b). Named vectors, not an array: arrays indexed in loops may be
// kept in memory.
struct Out {
    r0a: vec4<f32>,
    r0b: vec4<f32>,
    r1a: vec4<f32>,
    r1b: vec4<f32>,
    r2a: vec4<f32>,
    r2b: vec4<f32>,
    r3a: vec4<f32>,
    r3b: vec4<f32>,
}

// One key's probabilities (of the 4 rows) times its value columns.
fn add_pv(o: Out, pr: vec4<f32>, v0: vec4<f32>, v1: vec4<f32>) -> Out {
    return Out(fma(vec4<f32>(pr.x), v0, o.r0a), fma(vec4<f32>(pr.x), v1, o.r0b),
               fma(vec4<f32>(pr.y), v0, o.r1a), fma(vec4<f32>(pr.y), v1, o.r1b),
               fma(vec4<f32>(pr.z), v0, o.r2a), fma(vec4<f32>(pr.z), v1, o.r2b),
               fma(vec4<f32>(pr.w), v0, o.r3a), fma(vec4<f32>(pr.w), v1, o.r3b));
}

// Row i scaled by c[i].
fn rescale(o: Out, c: vec4<f32>) -> Out {
    return Out(o.r0a * c.x, o.r0b * c.x, o.r1a * c.y, o.r1b * c.y, o.r2a * c.z, o.r2b * c.z, o.r3a * c.w, o.r3b * c.w);
}

fn q_at(row: u32, live_rows: u32, base: u32, stride: u32, d: u32) -> f32 {
    if (row < live_rows && d < p.dh) {
        return q[base + row * stride + d];
    }
    return 0.0;
}

@compute @workgroup_size(256)
fn attend(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let tx = t % 16u;
    let ty = t / 16u;
    let head = wg.y;
    if (t == 0u) {
        seg = segs[wg.z];
    }
    // Uniform across the workgroup, as the barriers below need.
    let sg = workgroupUniformLoad(&seg);
    let r0 = wg.x * BR;
    let kv = head / (p.heads / p.kv_heads);
    let q_stride = p.heads * p.dh;
    let q_base = (sg.row0 + r0) * q_stride + head * p.dh;
    let kv_stride = p.kv_heads * p.dh;
    let cache0 = sg.slot * p.ctx;
    let k_base = cache0 * kv_stride + kv * p.dh;
    let live_rows = min(BR, sg.rows - min(sg.rows, r0));
    // Keys needed by the workgroup's last live row, from the first one
    // its first row sees.
    var kv_end = 0u;
    if (live_rows > 0u) {
        kv_end = sg.pos0 + r0 + live_rows;
    }
    let kv_start = first_key(sg.pos0 + r0);

    // Row statistics live in the registers of threads 0 .. 63, one row each.
    var m = MASKED;
    var l = 0.0;
    var out = Out();
    // Staging of the scores: thread t moves 4 head dims of query row t / 4
    // and (t < 128) of key t / 4.
    let st_row = t / 4u;
    let st_d = (t % 4u) * 4u;
    let odd = tx % 2u == 1u;
    // A window's first block may hold none of a later row's keys: that
    // row's m stays MASKED, its sum counts each masked key as 1, and its
    // first real block rescales all of it by exp(MASKED - m) = 0.
    for (var kb = kv_start; kb < kv_end; kb += BC) {
        var sc = Scores();
        for (var d0 = 0u; d0 < p.dh; d0 += DC) {
            workgroupBarrier();
            // stage[d * 16 + r / 4][r % 4] = query r, dim d0 + d;
            // stage[256 + d * 8 + key / 4][key % 4] = key, dim d0 + d.
            for (var i = 0u; i < 4u; i++) {
                let d = d0 + st_d + i;
                stage[(st_d + i) * 16u + st_row / 4u][st_row % 4u] = q_at(st_row, live_rows, q_base, q_stride, d);
            }
            if (st_row < BC) {
                let key = kb + st_row;
                for (var i = 0u; i < 4u; i++) {
                    let d = d0 + st_d + i;
                    var kv_val = 0.0;
                    if (key < kv_end && d < p.dh) {
                        kv_val = k[k_base + key * kv_stride + d];
                    }
                    stage[256u + (st_d + i) * 8u + st_row / 4u][st_row % 4u] = kv_val;
                }
            }
            workgroupBarrier();
            // Four dims a step (see `score`).
            for (var dd = 0u; dd < DC; dd += 4u) {
                sc = score(sc, stage[dd * 16u + ty], stage[256u + dd * 8u + tx / 2u], odd);
                sc = score(sc, stage[(dd + 1u) * 16u + ty], stage[256u + (dd + 1u) * 8u + tx / 2u], odd);
                sc = score(sc, stage[(dd + 2u) * 16u + ty], stage[256u + (dd + 2u) * 8u + tx / 2u], odd);
                sc = score(sc, stage[(dd + 3u) * 16u + ty], stage[256u + (dd + 3u) * 8u + tx / 2u], odd);
            }
        }
        // Scale and mask, then hand the scores to the row owners.
        let key0 = kb + tx * 2u;
        let last_key = sg.pos0 + r0 + ty * 4u; // row ty * 4 + i sees keys <= last_key + i
        let rows_in = live_rows - min(live_rows, ty * 4u);
        let keys = array<vec4<f32>, 2>(sc.a, sc.b);
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 2u; j++) {
                var s = MASKED;
                let key = key0 + j;
                if (i < rows_in && key <= last_key + i && (p.window == 0u || key + p.window > last_key + i)) {
                    s = keys[j][i] * p.scale;
                }
                pt[(tx * 2u + j) * 16u + ty][i] = s;
            }
        }
        workgroupBarrier();
        if (t < BR) {
            var block_max = MASKED;
            for (var j = 0u; j < BC; j++) {
                block_max = max(block_max, pt[j * 16u + t / 4u][t % 4u]);
            }
            let m_new = max(m, block_max);
            var sum = 0.0;
            for (var j = 0u; j < BC; j++) {
                let e = exp(pt[j * 16u + t / 4u][t % 4u] - m_new);
                pt[j * 16u + t / 4u][t % 4u] = e;
                sum += e;
            }
            let c = exp(m - m_new);
            l = l * c + sum;
            m = m_new;
            corr[t / 4u][t % 4u] = c;
        }
        workgroupBarrier();
        let c = corr[ty];
        out = rescale(out, c);
        // Output: o += P V over the block's keys, VK keys staged at a time.
        for (var j0 = 0u; j0 < BC; j0 += VK) {
            workgroupBarrier();
            // stage[key * 32 + c / 4][c % 4] = value of key j0 + key, column col0 + c:
            // thread t moves 4 columns of key t / 32.
            let key = kb + j0 + t / 32u;
            let cc = (t % 32u) * 4u;
            for (var i = 0u; i < 4u; i++) {
                let col = p.col0 + cc + i;
                var val = 0.0;
                if (key < kv_end && col < p.dh) {
                    val = v[k_base + key * kv_stride + col];
                }
                stage[(t / 32u) * 32u + cc / 4u][i] = val;
            }
            workgroupBarrier();
            for (var j = 0u; j < VK; j += 4u) {
                out = add_pv(out, pt[(j0 + j) * 16u + ty], stage[j * 32u + tx], stage[j * 32u + 16u + tx]);
                out = add_pv(out, pt[(j0 + j + 1u) * 16u + ty], stage[(j + 1u) * 32u + tx], stage[(j + 1u) * 32u + 16u + tx]);
                out = add_pv(out, pt[(j0 + j + 2u) * 16u + ty], stage[(j + 2u) * 32u + tx], stage[(j + 2u) * 32u + 16u + tx]);
                out = add_pv(out, pt[(j0 + j + 3u) * 16u + ty], stage[(j + 3u) * 32u + tx], stage[(j + 3u) * 32u + 16u + tx]);
            }
        }
        workgroupBarrier();
    }
    if (t < BR) {
        corr[t / 4u][t % 4u] = 1.0 / l;
        if (t < live_rows) {
            lse[(cache0 + sg.pos0 + r0 + t) * p.heads + head] = m + log(l);
        }
    }
    workgroupBarrier();
    let inv = corr[ty];
    let done = rescale(out, inv);
    let rows = array<vec4<f32>, 8>(done.r0a, done.r0b, done.r1a, done.r1b, done.r2a, done.r2b, done.r3a, done.r3b);
    for (var i = 0u; i < 4u; i++) {
        let row = ty * 4u + i;
        if (row < live_rows) {
            let base = q_base + row * q_stride + p.col0;
            for (var h = 0u; h < 2u; h++) {
                let c0 = h * 64u + tx * 4u;
                for (var j = 0u; j < 4u; j++) {
                    if (p.col0 + c0 + j < p.dh) {
                        o[base + c0 + j] = rows[i * 2u + h][j];
                    }
                }
            }
        }
    }
}

// ---- decode -----------------------------------------------------------

const DT: u32 = 256u; // threads of a decode workgroup
const MAX_DH: u32 = 256u;

var<workgroup> qd: array<f32, MAX_DH>;
var<workgroup> red: array<f32, DT>;
var<workgroup> acc2: array<array<f32, MAX_DH>, 2>;

// Sum (max = false) or maximum of `red` over the workgroup, in red[0].
fn reduce(t: u32, is_max: bool) {
    for (var s = DT / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if (t < s) {
            if (is_max) {
                red[t] = max(red[t], red[t + s]);
            } else {
                red[t] += red[t + s];
            }
        }
    }
    workgroupBarrier();
}

// Workgroup (split, head, segment): keys first + split * split_keys ..
// + split_keys (at most DT) of the segment's one row, whose window (or
// the whole context, first = 0) starts at key first. Writes, at
// part[((segment * heads + head) * splits + split) * (dh + 2)], the
// unnormalised output sum_j exp(s_j - m) v_j, then m and the sum of the
// exponentials.
@compute @workgroup_size(256)
fn partial(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let split = wg.x;
    let head = wg.y;
    if (t == 0u) {
        seg = segs[wg.z];
    }
    let sg = workgroupUniformLoad(&seg);
    let kv = head / (p.heads / p.kv_heads);
    let kv_stride = p.kv_heads * p.dh;
    let k_base = sg.slot * p.ctx * kv_stride + kv * p.dh;
    let q_base = sg.row0 * p.heads * p.dh + head * p.dh;
    let n_keys = sg.pos0 + 1u;
    let key0 = first_key(sg.pos0) + split * p.split_keys;
    let key_end = min(n_keys, key0 + p.split_keys);
    for (var d = t; d < p.dh; d += DT) {
        qd[d] = q[q_base + d];
    }
    workgroupBarrier();

    let key = key0 + t;
    var s = MASKED;
    if (key < key_end) {
        var dot = 0.0;
        let kr = k_base + key * kv_stride;
        for (var d = 0u; d < p.dh; d++) {
            dot = fma(qd[d], k[kr + d], dot);
        }
        s = dot * p.scale;
    }
    red[t] = s;
    reduce(t, true);
    let m = red[0];
    workgroupBarrier();
    var e = 0.0;
    if (key < key_end) {
        e = exp(s - m);
    }
    red[t] = e;
    reduce(t, false);
    let l = red[0];
    // The probabilities, for the output below.
    workgroupBarrier();
    red[t] = e;
    workgroupBarrier();

    // Thread t sums keys t / 128, + 2, ... for columns t % 128, + 128.
    let half = t / 128u;
    let n = key_end - min(key_end, key0);
    for (var d = t % 128u; d < p.dh; d += 128u) {
        var a = 0.0;
        for (var j = half; j < n; j += 2u) {
            a = fma(red[j], v[k_base + (key0 + j) * kv_stride + d], a);
        }
        acc2[half][d] = a;
    }
    workgroupBarrier();
    let out = ((wg.z * p.heads + head) * p.splits + split) * (p.dh + 2u);
    for (var d = t; d < p.dh; d += DT) {
        part[out + d] = acc2[0][d] + acc2[1][d];
    }
    if (t == 0u) {
        part[out + p.dh] = m;
        part[out + p.dh + 1u] = l;
    }
}

// Workgroup (head, segment): merges the splits of `partial` into the
// output row and its log-sum-exp.
@compute @workgroup_size(128)
fn combine(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let head = wg.x;
    let sg = segs[wg.y];
    let n_keys = sg.pos0 + 1u - first_key(sg.pos0);
    let splits = min(p.splits, (n_keys + p.split_keys - 1u) / p.split_keys);
    let base = (wg.y * p.heads + head) * p.splits * (p.dh + 2u);
    var m = MASKED;
    for (var i = 0u; i < splits; i++) {
        m = max(m, part[base + i * (p.dh + 2u) + p.dh]);
    }
    var l = 0.0;
    for (var i = 0u; i < splits; i++) {
        let at = base + i * (p.dh + 2u);
        l += part[at + p.dh + 1u] * exp(part[at + p.dh] - m);
    }
    let o_base = sg.row0 * p.heads * p.dh + head * p.dh;
    for (var d = t; d < p.dh; d += 128u) {
        var a = 0.0;
        for (var i = 0u; i < splits; i++) {
            let at = base + i * (p.dh + 2u);
            a += part[at + d] * exp(part[at + p.dh] - m);
        }
        o[o_base + d] = a / l;
    }
    if (t == 0u) {
        lse[(sg.slot * p.ctx + sg.pos0) * p.heads + head] = m + log(l);
    }
}
