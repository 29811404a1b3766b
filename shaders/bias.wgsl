// Bias addition (with packed.wgsl): y[r, j] += bias[j] over rows of `width`.
//
// Bindings (group 0):
//   0  p : Params      uniform
//   1  w : array<u32>  read        packed bias [width]
//   2  y : array<f32>  read_write  rows of width, starting at row y_row0

struct Params {
    n: u32,
    width: u32,
    y_row0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    if (i < p.n) {
        y[p.y_row0 * p.width + i] += w_at(i % p.width);
    }
}
