// RMSNorm (with packed.wgsl for its weight), as SPEC-hypenet writes it:
// y = w * (x / sqrt(mean(x^2) + eps)), reduced in f32.
//
// Bindings (group 0):
//   0  p : Params      uniform
//   1  x : array<f32>  read        rows of `width`, starting at row x_row0
//   2  w : array<u32>  read        packed weight [width]
//   3  y : array<f32>  read_write  rows of `width`, starting at row 0

struct Params {
    rows: u32,
    width: u32,
    x_row0: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> sums: array<f32, 256>;

// One workgroup per row.
@compute @workgroup_size(256)
fn rmsnorm(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
           @builtin(num_workgroups) groups: vec3<u32>) {
    let row = wg.x + wg.y * groups.x;
    // Rows past the end still reach every barrier.
    let live = row < p.rows;
    let src = (p.x_row0 + row) * p.width;
    var ss = 0.0;
    if (live) {
        for (var j = lid.x; j < p.width; j += 256u) {
            let v = x[src + j];
            ss = fma(v, v, ss);
        }
    }
    sums[lid.x] = ss;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid.x < s) {
            sums[lid.x] += sums[lid.x + s];
        }
        workgroupBarrier();
    }
    if (!live) {
        return;
    }
    let inv = 1.0 / sqrt(sums[0] / f32(p.width) + p.eps);
    for (var j = lid.x; j < p.width; j += 256u) {
        y[row * p.width + j] = w_at(j) * (x[src + j] * inv);
    }
}
