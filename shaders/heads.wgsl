// Per-head preparation of queries and keys, in place, in SPEC-hypenet's
// order: RMSNorm over each head (q_norm / k_norm), RoPE (rotate-half) at
// the absolute position over the first `rot` dims (all of them but in
// Qwen3.5, whose other dims pass unrotated), then the query scaling: HyPE's ln(pos + A) / ln(A)
// (a flag) times a constant `scale` (1 for keys). Norm and RoPE are
// switched by flags; with packed.wgsl for the norm weight.
//
// Bindings (group 0):
//   0  p         : Params      uniform
//   1  w         : array<u32>  read        packed norm weight [dh] (unused without FLAG_NORM)
//   2  rope      : array<f32>  read        [pos][rot / 2][cos, sin], computed in f64 on the CPU
//   3  x         : array<f32>  read_write  rows of heads * dh; row x_row0 + r is at position positions[r]
//   4  positions : array<u32>  read        [rows] absolute positions (packed rows of a batch differ)

struct Params {
    rows: u32,
    heads: u32,
    dh: u32,
    x_row0: u32,
    flags: u32,
    rot: u32,
    eps: f32,
    hype_a: f32,
    scale: f32,
}

const FLAG_NORM: u32 = 1u;
const FLAG_ROPE: u32 = 2u;
const FLAG_HYPE: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> rope: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read> positions: array<u32>;

var<workgroup> sums: array<f32, 64>;

// One workgroup of 64 threads per (row, head).
@compute @workgroup_size(64)
fn prepare(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
           @builtin(num_workgroups) groups: vec3<u32>) {
    let id = wg.x + wg.y * groups.x;
    let row = id / p.heads;
    let live = row < p.rows;
    let base = (p.x_row0 + row) * p.heads * p.dh + (id % p.heads) * p.dh;
    let pos = positions[min(row, p.rows - 1u)];

    var inv = 1.0;
    if ((p.flags & FLAG_NORM) != 0u) {
        var ss = 0.0;
        if (live) {
            for (var j = lid.x; j < p.dh; j += 64u) {
                ss = fma(x[base + j], x[base + j], ss);
            }
        }
        sums[lid.x] = ss;
        workgroupBarrier();
        for (var s = 32u; s > 0u; s >>= 1u) {
            if (lid.x < s) {
                sums[lid.x] += sums[lid.x + s];
            }
            workgroupBarrier();
        }
        inv = 1.0 / sqrt(sums[0] / f32(p.dh) + p.eps);
    }
    if (!live) {
        return;
    }
    var scale = p.scale;
    if ((p.flags & FLAG_HYPE) != 0u) {
        scale *= log(f32(pos) + p.hype_a) / log(p.hype_a);
    }
    // Dims from `plain` on are only normed and scaled.
    var plain = 0u;
    if ((p.flags & FLAG_ROPE) != 0u) {
        let half = p.rot / 2u;
        plain = p.rot;
        // Thread owns the pair (j, j + half): nobody else reads it.
        for (var j = lid.x; j < half; j += 64u) {
            var x1 = x[base + j];
            var x2 = x[base + j + half];
            if ((p.flags & FLAG_NORM) != 0u) {
                x1 = w_at(j) * (x1 * inv);
                x2 = w_at(j + half) * (x2 * inv);
            }
            let c = rope[(pos * half + j) * 2u];
            let s = rope[(pos * half + j) * 2u + 1u];
            x[base + j] = (x1 * c - x2 * s) * scale;
            x[base + j + half] = (x2 * c + x1 * s) * scale;
        }
    }
    for (var j = plain + lid.x; j < p.dh; j += 64u) {
        var v = x[base + j];
        if ((p.flags & FLAG_NORM) != 0u) {
            v = w_at(j) * (v * inv);
        }
        x[base + j] = v * scale;
    }
}
