// Unpacking of 16-bit floats to f32 (with packed.wgsl): the check that a
// compute shader runs, natively and in the browser, and that the weight
// decode every kernel uses equals the CPU's.
//
// Bindings (group 0):
//   0  params: Params      uniform                    n = number of values
//   1  w     : array<u32>  read        packed values (W_DTYPE)
//   2  out   : array<f32>  read_write  [n]            decoded values

struct Params {
    n: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const WORKGROUP: u32 = 64u;

@compute @workgroup_size(WORKGROUP)
fn unpack(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WORKGROUP;
    if (i >= params.n) {
        return;
    }
    out[i] = w_at(i);
}
