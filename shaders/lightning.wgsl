// Lightning attention (linear attention with a per-head decay gamma =
// exp(-slope)), continuing from a state S [heads, dk, dk] kept on the GPU:
//
//   S(t) = gamma S(t-1) + k(t)^T v(t),   o(t) = scale q(t) S(t)
//
// `chunk` (prefill) processes 16 tokens at a time in the parallel form
//   o_i = scale (sum_{s <= i} gamma^(i-s) (q_i . k_s) v_s + gamma^(i+1) q_i S)
//   S  <- gamma^n S + sum_s gamma^(n-1-s) k_s^T v_s
// with a workgroup per (head, block of 16 value columns), the state block
// in workgroup memory; `step` (decode) is the recurrence for one token.
//
// A batch's new rows are packed: segment z holds `rows` rows from packed
// row `row0` of the sequence whose state is number `slot` (pos0 unused).
// `chunk` takes segment z = workgroup z; `step` segment y = global y, one
// row each.
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

struct Params {
    heads: u32,
    kv_heads: u32,
    dk: u32,
    scale: f32,
}

struct Seg {
    row0: u32,
    rows: u32,
    slot: u32,
    pos0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> slopes: array<f32>;
@group(0) @binding(5) var<storage, read_write> state: array<f32>;
@group(0) @binding(6) var<storage, read_write> o: array<f32>;
@group(0) @binding(7) var<storage, read> segs: array<Seg>;

const C: u32 = 16u;
const VB: u32 = 16u;
const MAX_DK: u32 = 128u;

var<workgroup> sk: array<array<f32, VB>, MAX_DK>;
var<workgroup> att: array<array<f32, C>, C>;
var<workgroup> seg: Seg;

// Thread (j, i): value column col0 + j, chunk token i.
@compute @workgroup_size(16, 16)
fn chunk(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let j = lid.x;
    let i = lid.y;
    let h = wg.y;
    if (i == 0u && j == 0u) {
        seg = segs[wg.z];
    }
    // Uniform across the workgroup, as the barriers below need.
    let sg = workgroupUniformLoad(&seg);
    let col = wg.x * VB + j;
    let g = h / (p.heads / p.kv_heads);
    let slope = slopes[h];
    let q_stride = p.heads * p.dk;
    let kv_stride = p.kv_heads * p.dk;
    let s_base = (sg.slot * p.heads + h) * p.dk * p.dk;
    let r0 = sg.row0;

    for (var d = i; d < p.dk; d += C) {
        var s = 0.0;
        if (col < p.dk) {
            s = state[s_base + d * p.dk + col];
        }
        sk[d][j] = s;
    }
    workgroupBarrier();

    for (var c0 = 0u; c0 < sg.rows; c0 += C) {
        let n = min(C, sg.rows - c0);
        // Decayed scores; thread (j, i) takes the pair (token i, key j).
        var a = 0.0;
        if (j <= i && i < n) {
            let qb = (r0 + c0 + i) * q_stride + h * p.dk;
            let kb = (r0 + c0 + j) * kv_stride + g * p.dk;
            for (var d = 0u; d < p.dk; d++) {
                a = fma(q[qb + d], k[kb + d], a);
            }
            a *= exp(-slope * f32(i - j));
        }
        att[i][j] = a;
        workgroupBarrier();
        if (i < n && col < p.dk) {
            var intra = 0.0;
            for (var s = 0u; s <= i; s++) {
                intra = fma(att[i][s], v[(r0 + c0 + s) * kv_stride + g * p.dk + col], intra);
            }
            var inter = 0.0;
            let qb = (r0 + c0 + i) * q_stride + h * p.dk;
            for (var d = 0u; d < p.dk; d++) {
                inter = fma(q[qb + d], sk[d][j], inter);
            }
            o[qb + col] = p.scale * (intra + exp(-slope * f32(i + 1u)) * inter);
        }
        workgroupBarrier();
        if (col < p.dk) {
            for (var d = i; d < p.dk; d += C) {
                var s = sk[d][j] * exp(-slope * f32(n));
                for (var t = 0u; t < n; t++) {
                    let kv_row = (r0 + c0 + t) * kv_stride + g * p.dk;
                    s = fma(exp(-slope * f32(n - 1u - t)) * k[kv_row + d], v[kv_row + col], s);
                }
                sk[d][j] = s;
            }
        }
        workgroupBarrier();
    }

    if (col < p.dk) {
        for (var d = i; d < p.dk; d += C) {
            state[s_base + d * p.dk + col] = sk[d][j];
        }
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
