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
// Bindings (group 0):
//   0  p      : Params      uniform
//   1  q      : array<f32>  read        [rows, heads * dk]
//   2  k      : array<f32>  read        [rows, kv_heads * dk]
//   3  v      : array<f32>  read        [rows, kv_heads * dk]
//   4  slopes : array<f32>  read        [heads]
//   5  state  : array<f32>  read_write  [heads, dk, dk], S[h][key dim][value dim]
//   6  o      : array<f32>  read_write  [rows, heads * dk]

struct Params {
    rows: u32,
    heads: u32,
    kv_heads: u32,
    dk: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> slopes: array<f32>;
@group(0) @binding(5) var<storage, read_write> state: array<f32>;
@group(0) @binding(6) var<storage, read_write> o: array<f32>;

const C: u32 = 16u;
const VB: u32 = 16u;
const MAX_DK: u32 = 128u;

var<workgroup> sk: array<array<f32, VB>, MAX_DK>;
var<workgroup> att: array<array<f32, C>, C>;

// Thread (j, i): value column col0 + j, chunk token i.
@compute @workgroup_size(16, 16)
fn chunk(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let j = lid.x;
    let i = lid.y;
    let h = wg.y;
    let col = wg.x * VB + j;
    let g = h / (p.heads / p.kv_heads);
    let slope = slopes[h];
    let q_stride = p.heads * p.dk;
    let kv_stride = p.kv_heads * p.dk;
    let s_base = h * p.dk * p.dk;

    for (var d = i; d < p.dk; d += C) {
        var s = 0.0;
        if (col < p.dk) {
            s = state[s_base + d * p.dk + col];
        }
        sk[d][j] = s;
    }
    workgroupBarrier();

    for (var c0 = 0u; c0 < p.rows; c0 += C) {
        let n = min(C, p.rows - c0);
        // Decayed scores; thread (j, i) takes the pair (token i, key j).
        var a = 0.0;
        if (j <= i && i < n) {
            let qb = (c0 + i) * q_stride + h * p.dk;
            let kb = (c0 + j) * kv_stride + g * p.dk;
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
                intra = fma(att[i][s], v[(c0 + s) * kv_stride + g * p.dk + col], intra);
            }
            var inter = 0.0;
            let qb = (c0 + i) * q_stride + h * p.dk;
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
                    let kv_row = (c0 + t) * kv_stride + g * p.dk;
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

// One token (rows = 1): a thread per (head, value column) walks its column
// of the state.
@compute @workgroup_size(64)
fn step(@builtin(global_invocation_id) gid: vec3<u32>) {
    let h = gid.x / p.dk;
    let col = gid.x % p.dk;
    if (h >= p.heads) {
        return;
    }
    let g = h / (p.heads / p.kv_heads);
    let gamma = exp(-slopes[h]);
    let kv_base = g * p.dk;
    let s_base = h * p.dk * p.dk;
    var acc = 0.0;
    for (var d = 0u; d < p.dk; d++) {
        let s = gamma * state[s_base + d * p.dk + col] + k[kv_base + d] * v[kv_base + col];
        state[s_base + d * p.dk + col] = s;
        acc = fma(q[h * p.dk + d] * p.scale, s, acc);
    }
    o[h * p.dk + col] = acc;
}
