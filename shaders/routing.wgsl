// Routing diagnostics of one softmax layer, from what the forward pass
// kept: queries (normalised, rotated, HyPE-scaled), the key cache and the
// per-row log-sum-exp. Every probability is rebuilt on the fly,
//   a(t, s) = exp(q_t . k_s * scale - lse_t),
// so no T x T matrix exists. In a sliding-window layer (`window` w > 0)
// row t sees keys t - w + 1 ..= t only, and every other a(t, s) is zero
// (its lse is over the window). A workgroup takes one (query row, head)
// and writes, per row:
//   dist[t, h]        sum_{s <= t} a(t, s) (t - s)     (SPEC-methods, Eq. 17 before the mean)
//   mass[t, h]        sum over the needle's keys of a(t, s)
//   pooled[h, t, j]   sum over block j of keys (B keys a block) of a(t, s)
//
// Bindings (group 0):
//   0  p      : Params      uniform
//   1  q      : array<f32>  read        [rows, heads * dh]
//   2  k      : array<f32>  read        [rows, kv_heads * dh]
//   3  lse    : array<f32>  read        [rows, heads]
//   4  dist   : array<f32>  read_write  [rows, heads]
//   5  mass   : array<f32>  read_write  [rows, heads]
//   6  pooled : array<f32>  read_write  [heads, rows, blocks]

struct Params {
    rows: u32,
    heads: u32,
    kv_heads: u32,
    dh: u32,
    block: u32,
    blocks: u32,
    needle_start: u32,
    needle_end: u32,
    scale: f32,
    window: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> dist: array<f32>;
@group(0) @binding(5) var<storage, read_write> mass: array<f32>;
@group(0) @binding(6) var<storage, read_write> pooled: array<f32>;

const WG: u32 = 64u;
const MAX_DH: u32 = 256u;

var<workgroup> qs: array<f32, MAX_DH>;
var<workgroup> probs: array<f32, WG>;
var<workgroup> sums: array<vec2<f32>, WG>;

@compute @workgroup_size(64)
fn row_stats(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
             @builtin(num_workgroups) groups: vec3<u32>) {
    let id = wg.x + wg.y * groups.x;
    let t = id / p.heads;
    let h = id % p.heads;
    let live = t < p.rows;
    let g = h / (p.heads / p.kv_heads);
    if (live) {
        for (var d = lid.x; d < p.dh; d += WG) {
            qs[d] = q[t * p.heads * p.dh + h * p.dh + d];
        }
    }
    workgroupBarrier();
    var row_lse = 0.0;
    if (live) {
        row_lse = lse[t * p.heads + h];
    }
    var d_acc = 0.0;
    var m_acc = 0.0;
    // Keys 0 ..= t (the window's) in steps of 64; every thread reaches
    // every barrier.
    var start = 0u;
    var end = 0u;
    if (live) {
        end = t + 1u;
        if (p.window > 0u && end > p.window) {
            start = end - p.window;
        }
    }
    let pool_base = (h * p.rows + t) * p.blocks;
    for (var s0 = start; s0 < end; s0 += WG) {
        let s = s0 + lid.x;
        var a = 0.0;
        if (s < end) {
            var dot = 0.0;
            let kb = s * p.kv_heads * p.dh + g * p.dh;
            for (var d = 0u; d < p.dh; d++) {
                dot = fma(qs[d], k[kb + d], dot);
            }
            a = exp(dot * p.scale - row_lse);
            d_acc = fma(a, f32(t - s), d_acc);
            if (s >= p.needle_start && s < p.needle_end) {
                m_acc += a;
            }
        }
        probs[lid.x] = a;
        workgroupBarrier();
        // One writer per row: the block sums need no atomics.
        if (lid.x == 0u) {
            for (var i = 0u; i < WG && s0 + i < end; i++) {
                let j = (s0 + i) / p.block;
                pooled[pool_base + j] += probs[i];
            }
        }
        workgroupBarrier();
    }
    sums[lid.x] = vec2<f32>(d_acc, m_acc);
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid.x < s) {
            sums[lid.x] += sums[lid.x + s];
        }
        workgroupBarrier();
    }
    if (live && lid.x == 0u) {
        dist[t * p.heads + h] = sums[0].x;
        mass[t * p.heads + h] = sums[0].y;
    }
}
