// Unpacking of 16-bit floats to f32: the check that a compute shader runs
// (natively and in the browser) and the decode the engine's tests compare
// against the CPU's. Two halves per u32 word, low half first (little-endian
// files read as u32 words).
//
// Bindings (group 0):
//   0  words : array<u32>  read        [ceil(n / 2)]  packed halves
//   1  out   : array<f32>  read_write  [n]            decoded values
//   2  params: Params      uniform                    n = number of halves

struct Params {
    n: u32,
}

@group(0) @binding(0) var<storage, read> words: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

const WORKGROUP: u32 = 64u;

fn half_at(i: u32) -> u32 {
    return (words[i / 2u] >> ((i % 2u) * 16u)) & 0xffffu;
}

// bf16 is the top half of an f32: a shift and a bitcast, exact for every
// pattern, NaNs and subnormals included.
@compute @workgroup_size(WORKGROUP)
fn unpack_bf16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WORKGROUP;
    if (i >= params.n) {
        return;
    }
    out[i] = bitcast<f32>(half_at(i) << 16u);
}

@compute @workgroup_size(WORKGROUP)
fn unpack_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WORKGROUP;
    if (i >= params.n) {
        return;
    }
    out[i] = unpack2x16float(half_at(i)).x;
}
