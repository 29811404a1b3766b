//! The reference's arithmetic: plain loops in f32, one function per
//! formula, shared by the driver and every mixer.

use crate::config::LogitsScaling;

pub(super) fn inv_sqrt(d: usize) -> f32 {
    1.0 / (d as f32).sqrt()
}

pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub(super) fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// y = x W^T for x `[T, n_in]` and W `[n_out, n_in]` (PyTorch layout).
pub(super) fn linear(x: &[f32], w: &[f32], n_in: usize, n_out: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(x.len() / n_in * n_out);
    for row in x.chunks(n_in) {
        y.extend((0..n_out).map(|o| dot(row, &w[o * n_in..(o + 1) * n_in])));
    }
    y
}

/// w * x / sqrt(mean(x^2) + eps) over each row of width w.len().
pub(super) fn rmsnorm_rows(x: &[f32], w: &[f32], eps: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(w.len()) {
        let ms = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
        let inv = 1.0 / (ms + eps as f32).sqrt();
        out.extend(row.iter().zip(w).map(|(v, w)| w * (v * inv)));
    }
    out
}

/// x / sqrt(sum(x^2) + 1e-6) over each piece of width `d`, in place: the
/// gated delta rule's L2 norm of q and k (SPEC-gdn).
pub(super) fn l2norm_pieces(x: &mut [f32], d: usize) {
    for piece in x.chunks_mut(d) {
        let inv = 1.0 / (piece.iter().map(|v| v * v).sum::<f32>() + 1e-6).sqrt();
        piece.iter_mut().for_each(|v| *v *= inv);
    }
}

pub(super) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

pub(super) fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// log(1 + e^x), as torch's softplus (linear above 20).
pub(super) fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// RMSNorm of every head (width `dh`) of every row, in place.
pub(super) fn norm_heads(x: &mut [f32], w: &[f32], dh: usize, eps: f64) {
    debug_assert_eq!(w.len(), dh);
    let normed = rmsnorm_rows(x, w, eps);
    x.copy_from_slice(&normed);
}

/// RoPE, rotate-half layout, on the first 2 x `inv_freq` dims (from
/// [`crate::config::Arch::rope_inv_freq`]; all of them but in Qwen3.5's
/// partial RoPE) of every head of width `dh` in each row of `row_width`
/// values; the rest of each head passes through. Row i is at absolute
/// position pos0 + i: during decoding the angle must come from the
/// token's place in the whole sequence, not in this step.
pub(super) fn rope(x: &mut [f32], row_width: usize, dh: usize, inv_freq: &[f64], pos0: usize) {
    let half = inv_freq.len();
    for (i, row) in x.chunks_mut(row_width).enumerate() {
        let t = (pos0 + i) as f64;
        for head in row.chunks_mut(dh) {
            for j in 0..half {
                let (sin, cos) = (t * inv_freq[j]).sin_cos();
                let (sin, cos) = (sin as f32, cos as f32);
                let (x1, x2) = (head[j], head[j + half]);
                head[j] = x1 * cos - x2 * sin;
                head[j + half] = x2 * cos + x1 * sin;
            }
        }
    }
}

/// Index of the first maximum of `row` under f32's total order: ties go to
/// the lowest index, as torch.argmax does, and a NaN cannot make the answer
/// depend on where it sits. `row` must not be empty.
pub fn argmax(row: &[f32]) -> u32 {
    assert!(!row.is_empty(), "argmax of an empty row");
    let mut best = 0;
    for (i, x) in row.iter().enumerate().skip(1) {
        if x.total_cmp(&row[best]).is_gt() {
            best = i;
        }
    }
    best as u32
}

/// ALiBi slopes: 2^(-8(h+1)/n) for n a power of two; otherwise those of the
/// largest power of two m below n, then every other slope of 2m.
pub fn alibi_slopes(n: usize) -> Vec<f64> {
    let pow2 = |n: usize| {
        (0..n)
            .map(|h| 2f64.powf(-8.0 * (h + 1) as f64 / n as f64))
            .collect::<Vec<_>>()
    };
    if n.is_power_of_two() {
        return pow2(n);
    }
    let m = 1usize << (usize::BITS - 1 - n.leading_zeros());
    let mut s = pow2(m);
    s.extend(pow2(2 * m).into_iter().step_by(2).take(n - m));
    s
}

/// The query factor at absolute position t. HyPE (`"hype A"`): ln(t + A) /
/// ln(A), growing with t so that late queries stay sharp over long
/// contexts; it touches only the query, never the cached keys. A float s
/// scales every position alike.
pub(crate) fn query_scale(scaling: LogitsScaling, t: usize) -> f32 {
    match scaling {
        LogitsScaling::None => 1.0,
        LogitsScaling::Constant(s) => s as f32,
        LogitsScaling::Hype(big_a) => ((t as f64 + big_a).ln() / big_a.ln()) as f32,
    }
}
