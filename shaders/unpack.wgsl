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

// f16 by bit manipulation rather than unpack2x16float: exact for every
// pattern (GPUs may flush f16 subnormals in the builtin), and naga asks a
// capability for the builtin that plain WebGPU devices need not report.
fn f16_bits_to_f32(h: u32) -> f32 {
    let sign = (h >> 15u) << 31u;
    let exp = (h >> 10u) & 0x1fu;
    let mant = h & 0x3ffu;
    if (exp == 0u) {
        if (mant == 0u) {
            return bitcast<f32>(sign);
        }
        // Subnormal: normalise around the leading one bit p (value = mant * 2^-24).
        let p = firstLeadingBit(mant);
        return bitcast<f32>(sign | ((p + 103u) << 23u) | ((mant << (23u - p)) & 0x7fffffu));
    }
    if (exp == 31u) {
        return bitcast<f32>(sign | 0x7f800000u | (mant << 13u));
    }
    return bitcast<f32>(sign | ((exp + 112u) << 23u) | (mant << 13u));
}

@compute @workgroup_size(WORKGROUP)
fn unpack_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WORKGROUP;
    if (i >= params.n) {
        return;
    }
    out[i] = f16_bits_to_f32(half_at(i));
}
