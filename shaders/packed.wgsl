// Packed weights, shared by every kernel that reads checkpoint tensors:
// the tensors stay on the GPU exactly as the checkpoint stores them
// (f32, bf16 or f16), never expanded to f32 in memory. A kernel that
// includes this file declares its weights as `w: array<u32>`; W_DTYPE is
// set per pipeline. 16-bit values sit two per word, low half first
// (little-endian files read as u32 words).

override W_DTYPE: u32 = 1u; // 0 = f32, 1 = bf16, 2 = f16

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

// A 16-bit weight (the low half of `bits`) as f32; W_DTYPE 1 or 2.
fn half_at(bits: u32) -> f32 {
    if (W_DTYPE == 1u) {
        // bf16 is the top half of an f32.
        return bitcast<f32>(bits << 16u);
    }
    return f16_bits_to_f32(bits);
}

// Element i of the weights, as f32.
fn w_at(i: u32) -> f32 {
    if (W_DTYPE == 0u) {
        return bitcast<f32>(w[i]);
    }
    return half_at((w[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu);
}
