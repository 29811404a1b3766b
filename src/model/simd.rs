//! The CPU engine's element-wise loops, written so that they vectorize
//! (reductions in 16 independent lanes, `exp` without libm or branches)
//! and compiled twice on x86-64: for the baseline (SSE2) and for AVX2 with
//! FMA, picked at run time. In wasm they vectorize with SIMD128, which
//! the build enables. The lane order changes sums by a few ulp from the
//! reference's left-to-right sums.

const LANES: usize = 16;

/// Declares `pub fn $name` whose body is compiled once more with AVX2 and
/// FMA on x86-64, that copy taken where the CPU has them.
macro_rules! multiversion {
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if avx2_fma() {
                    // SAFETY: the CPU has AVX2 and FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

#[cfg(target_arch = "x86_64")]
fn avx2_fma() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

/// e^x in f32 without libm and without branches, so that loops over it
/// vectorize: Cephes' expf (a degree-6 polynomial on [-ln2/2, ln2/2] and
/// an exponent built from bits), within 2 ulp of the true value. Inputs
/// below -87.3 give 0 (as expf's result underflows), above 88.7 saturate.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let underflow = x < -87.3;
    let x = x.clamp(-87.3, 88.7);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if underflow {
        0.0
    } else {
        e * scale
    }
}

#[inline(always)]
fn lanes_sum(l: [f32; LANES]) -> f32 {
    l.iter().sum()
}

multiversion! {
    /// Softmax numerators in place: x = exp(x - max x); returns (max, sum).
    pub fn softmax_in_place(x: &mut [f32]) -> (f32, f32) {
        let mut m = [f32::NEG_INFINITY; LANES];
        let mut chunks = x.chunks_exact(LANES);
        for c in &mut chunks {
            for (m, &v) in m.iter_mut().zip(c) {
                *m = if v > *m { v } else { *m };
            }
        }
        let max = chunks.remainder().iter().chain(m.iter()).fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
        let mut s = [0.0f32; LANES];
        let mut chunks = x.chunks_exact_mut(LANES);
        for c in &mut chunks {
            for (s, v) in s.iter_mut().zip(c) {
                *v = exp(*v - max);
                *s += *v;
            }
        }
        let mut sum = lanes_sum(s);
        for v in chunks.into_remainder() {
            *v = exp(*v - max);
            sum += *v;
        }
        (max, sum)
    }
}

multiversion! {
    /// a[i] = silu(a[i]) * b[i] (SwiGLU).
    pub fn silu_mul(a: &mut [f32], b: &[f32]) {
        a.iter_mut().zip(b).for_each(|(a, b)| *a = *a / (1.0 + exp(-*a)) * b);
    }
}

multiversion! {
    /// x . y, summed in lanes.
    pub fn dot(x: &[f32], y: &[f32]) -> f32 {
        let mut s = [0.0f32; LANES];
        let (xc, yc) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
        let tail: f32 = xc.remainder().iter().zip(yc.remainder()).map(|(a, b)| a * b).sum();
        for (a, b) in xc.zip(yc) {
            for ((s, a), b) in s.iter_mut().zip(a).zip(b) {
                *s += a * b;
            }
        }
        lanes_sum(s) + tail
    }
}

multiversion! {
    /// o[i] *= silu(z[i]) (the gated delta rule's output gate).
    pub fn silu_mul_into(o: &mut [f32], z: &[f32]) {
        o.iter_mut().zip(z).for_each(|(o, z)| *o *= z / (1.0 + exp(-*z)));
    }
}

multiversion! {
    /// o[i] *= sigmoid(g[i]).
    pub fn sigmoid_gate(o: &mut [f32], g: &[f32]) {
        o.iter_mut().zip(g).for_each(|(o, g)| *o /= 1.0 + exp(-*g));
    }
}

/// 1 / sqrt(mean(x^2) + eps), the sum in lanes.
#[inline(always)]
fn inv_rms(row: &[f32], eps: f32) -> f32 {
    let mut s = [0.0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for (s, v) in s.iter_mut().zip(c) {
            *s += v * v;
        }
    }
    let ss = chunks
        .remainder()
        .iter()
        .fold(lanes_sum(s), |a, v| a + v * v);
    1.0 / (ss / row.len() as f32 + eps).sqrt()
}

multiversion! {
    /// out = w * x / sqrt(mean(x^2) + eps) over each row of width w.len().
    pub fn rmsnorm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
        for (row, o) in x.chunks(w.len()).zip(out.chunks_mut(w.len())) {
            let inv = inv_rms(row, eps);
            o.iter_mut().zip(row.iter().zip(w)).for_each(|(o, (v, w))| *o = w * (v * inv));
        }
    }
}

multiversion! {
    /// x = w * x / sqrt(mean(x^2) + eps) over each row of width w.len(), in place.
    pub fn rmsnorm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
        for row in x.chunks_mut(w.len()) {
            let inv = inv_rms(row, eps);
            row.iter_mut().zip(w).for_each(|(v, w)| *v = w * (*v * inv));
        }
    }
}

multiversion! {
    /// y[i] = x[i] * f.
    pub fn scale_into(y: &mut [f32], x: &[f32], f: f32) {
        y.iter_mut().zip(x).for_each(|(y, x)| *y = x * f);
    }
}

multiversion! {
    /// y[i] *= f.
    pub fn scale(y: &mut [f32], f: f32) {
        y.iter_mut().for_each(|y| *y *= f);
    }
}

multiversion! {
    /// y[i] *= w[i].
    pub fn mul(y: &mut [f32], w: &[f32]) {
        y.iter_mut().zip(w).for_each(|(y, w)| *y *= w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        let mut worst = 0u32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x), x.exp());
            worst = worst.max(got.to_bits().abs_diff(want.to_bits()));
            x += 0.001_7;
        }
        assert!(worst <= 2, "{worst} ulp");
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn softmax_and_norm_agree_with_plain_loops() {
        let x: Vec<f32> = (0..37)
            .map(|i| ((i * 7919) % 113) as f32 / 17.0 - 3.0)
            .collect();
        let mut y = x.clone();
        let (max, sum) = softmax_in_place(&mut y);
        let want_max = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let want_sum: f32 = x.iter().map(|v| (v - want_max).exp()).sum();
        assert_eq!(max, want_max);
        assert!((sum - want_sum).abs() <= 1e-5 * want_sum);
        let w = vec![0.5f32; 37];
        let mut out = vec![0.0; 37];
        rmsnorm(&x, &w, 1e-6, &mut out);
        let inv = 1.0 / (x.iter().map(|v| v * v).sum::<f32>() / 37.0 + 1e-6).sqrt();
        for (o, v) in out.iter().zip(&x) {
            assert!((o - 0.5 * v * inv).abs() <= 1e-6);
        }
    }
}
