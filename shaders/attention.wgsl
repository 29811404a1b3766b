// Causal softmax attention with GQA, flash-style: a workgroup streams the
// keys of its 8 query rows in blocks of 32 with an online softmax, so no
// T x T matrix ever exists. Queries arrive normalised, rotated and scaled
// by HyPE (heads.wgsl); keys and values are the layer's cache. The same
// kernel serves prefill (many rows) and decode (one row per sequence).
//
// A batch's new rows are packed: segment z (workgroup z) holds `rows`
// query rows from packed row `row0`, of the sequence whose cache starts
// at cache row slot * ctx; its row r sits at absolute position pos0 + r
// and sees keys 0 ..= pos0 + r of that cache.
//
// Per row and head it also writes the log-sum-exp of the scaled logits,
// at the row's cache row, from which the routing diagnostics rebuild any
// attention probability: p(t, s) = exp(q_t . k_s * scale - lse_t).
//
// Bindings (group 0):
//   0  p    : Params      uniform
//   1  q    : array<f32>  read        [packed rows, heads * dh]
//   2  k    : array<f32>  read        cache [slots * ctx, kv_heads * dh]
//   3  v    : array<f32>  read        cache [slots * ctx, kv_heads * dh]
//   4  o    : array<f32>  read_write  [packed rows, heads * dh]
//   5  lse  : array<f32>  read_write  [slots * ctx, heads]
//   6  segs : array<Seg>  read        [segments]

struct Params {
    heads: u32,
    kv_heads: u32,
    dh: u32,
    ctx: u32,
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
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<storage, read> segs: array<Seg>;

const BR: u32 = 8u;
const BC: u32 = 32u;
const MAX_DH: u32 = 256u;
// Finite, so that a fully masked block gives exp(masked - m) = 0 without
// an inf - inf.
const MASKED: f32 = -1e30;

var<workgroup> qs: array<array<f32, MAX_DH>, BR>;
var<workgroup> ks: array<array<f32, 33>, BC>; // 32 dims of 32 keys, padded against bank conflicts
var<workgroup> ps: array<array<f32, BC>, BR>;
var<workgroup> seg: Seg;

// Thread (c, r): lane c of query row r. Lane c scores key kb + c, then
// owns output dims c, c + 32, ...
@compute @workgroup_size(32, 8)
fn attend(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let c = lid.x;
    let r = lid.y;
    let head = wg.y;
    if (c == 0u && r == 0u) {
        seg = segs[wg.z];
    }
    // Uniform across the workgroup, as the barriers below need.
    let sg = workgroupUniformLoad(&seg);
    let row = wg.x * BR + r;
    let live = row < sg.rows;
    let kv = head / (p.heads / p.kv_heads);
    let q_base = (sg.row0 + row) * p.heads * p.dh + head * p.dh;
    let kv_stride = p.kv_heads * p.dh;
    let cache0 = sg.slot * p.ctx;

    for (var d = c; d < p.dh; d += BC) {
        var qv = 0.0;
        if (live) {
            qv = q[q_base + d];
        }
        qs[r][d] = qv;
    }
    // Keys needed by the workgroup's last live row (none past the segment).
    var kv_end = 0u;
    if (wg.x * BR < sg.rows) {
        kv_end = sg.pos0 + min(wg.x * BR + BR, sg.rows);
    }

    var m = MASKED;
    var l = 0.0;
    var acc: array<f32, 8>; // MAX_DH / BC
    for (var kb = 0u; kb < kv_end; kb += BC) {
        var score = 0.0;
        for (var d0 = 0u; d0 < p.dh; d0 += 32u) {
            workgroupBarrier();
            for (var i = 0u; i < 4u; i++) {
                let e = r * 32u + c + 256u * i;
                let key = e / 32u;
                let dd = e % 32u;
                var kv_val = 0.0;
                if (kb + key < kv_end && d0 + dd < p.dh) {
                    kv_val = k[(cache0 + kb + key) * kv_stride + kv * p.dh + d0 + dd];
                }
                ks[key][dd] = kv_val;
            }
            workgroupBarrier();
            let dn = min(32u, p.dh - d0);
            for (var dd = 0u; dd < dn; dd++) {
                score = fma(qs[r][d0 + dd], ks[c][dd], score);
            }
        }
        let s = kb + c;
        if (live && s <= sg.pos0 + row) {
            score *= p.scale;
        } else {
            score = MASKED;
        }
        ps[r][c] = score;
        workgroupBarrier();
        var block_max = MASKED;
        for (var j = 0u; j < BC; j++) {
            block_max = max(block_max, ps[r][j]);
        }
        let m_new = max(m, block_max);
        let corr = exp(m - m_new);
        workgroupBarrier();
        ps[r][c] = exp(score - m_new);
        workgroupBarrier();
        var sum = 0.0;
        for (var j = 0u; j < BC; j++) {
            sum += ps[r][j];
        }
        l = l * corr + sum;
        m = m_new;
        let n_keys = min(BC, kv_end - kb);
        for (var jj = 0u; jj < MAX_DH / BC; jj++) {
            let d = c + BC * jj;
            if (d < p.dh) {
                var a = acc[jj] * corr;
                for (var j = 0u; j < n_keys; j++) {
                    a = fma(ps[r][j], v[(cache0 + kb + j) * kv_stride + kv * p.dh + d], a);
                }
                acc[jj] = a;
            }
        }
    }
    if (!live) {
        return;
    }
    for (var jj = 0u; jj < MAX_DH / BC; jj++) {
        let d = c + BC * jj;
        if (d < p.dh) {
            o[q_base + d] = acc[jj] / l;
        }
    }
    if (c == 0u) {
        lse[(cache0 + sg.pos0 + row) * p.heads + head] = m + log(l);
    }
}
