//! The CPU engine's dense arithmetic: matrix products through
//! matrixmultiply (split over rows across threads), each thread's
//! scratch, and row-wise RMSNorm.

use super::super::par::{for_row_blocks, rows_per_task};
use super::super::simd;

/// Up to this many rows, [`gemm_nt`] takes dot products instead of sgemm.
const GEMV_ROWS: usize = 4;

/// y = x W^T (+ y when `accumulate`) for x `[m, k]` (rows `x_stride` apart),
/// W `[n, k]` (PyTorch layout) and y `[m, n]`, split over rows across
/// threads when large enough to pay for it.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_nt(
    x: &[f32],
    x_stride: usize,
    w: &[f32],
    m: usize,
    k: usize,
    n: usize,
    y: &mut [f32],
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    // The bounds sgemm reads within. The config gate (config::gate) makes
    // every size here one the tensors have; these asserts turn a size that
    // slipped past it into a panic rather than a read out of bounds.
    assert!(
        x_stride >= k && x.len() >= (m - 1) * x_stride + k,
        "gemm_nt: x holds {} values, [{m}, {k}] rows {x_stride} apart need more",
        x.len()
    );
    assert!(
        w.len() >= n * k,
        "gemm_nt: W holds {} values, [{n}, {k}] needs {}",
        w.len(),
        n * k
    );
    assert!(
        y.len() >= m * n,
        "gemm_nt: y holds {} values, [{m}, {n}] needs {}",
        y.len(),
        m * n
    );
    if m <= GEMV_ROWS {
        // A decode step's few rows: sgemm would pack all of W for them,
        // which costs more than the product; dot products read W once.
        for (r, yr) in y[..m * n].chunks_mut(n).enumerate() {
            let xr = &x[r * x_stride..][..k];
            for_row_blocks(yr, 1, rows_per_task(n, n * k), |j0, block| {
                for (j, yv) in block.iter_mut().enumerate() {
                    let v = simd::dot(xr, &w[(j0 + j) * k..][..k]);
                    *yv = if accumulate { *yv + v } else { v };
                }
            });
        }
        return;
    }
    let beta = if accumulate { 1.0 } else { 0.0 };
    let rows_per_task = rows_per_task(m, m * n * k);
    for_row_blocks(&mut y[..m * n], n, rows_per_task, |r0, block| {
        let rows = block.len() / n;
        // SAFETY: by the asserts above, x holds rows r0..r0 + rows of
        // `x_stride` values (k used), w is [n, k] and block is [rows, n].
        unsafe {
            matrixmultiply::sgemm(
                rows,
                k,
                n,
                1.0,
                x[r0 * x_stride..].as_ptr(),
                x_stride as isize,
                1,
                w.as_ptr(),
                1,
                k as isize,
                beta,
                block.as_mut_ptr(),
                n as isize,
                1,
            );
        }
    });
}

thread_local! {
    /// Each thread's scratch for attention scores, kept between calls: a
    /// fresh allocation of megabytes per block costs page faults.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `f` on `n` floats of this thread's scratch (contents unspecified).
pub(super) fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < n {
            s.resize(n, 0.0);
        }
        f(&mut s[..n])
    })
}

/// c `[m, n]` = alpha a `[m, k]` b `[k, n]` (+ beta c) with general strides (row, column).
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_strided(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    c: &mut [f32],
    beta: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    // Checked in release builds too: a wrong stride or size must panic, not
    // read past a slice (the cost is nothing beside the product).
    assert!(
        c.len() >= m * n,
        "gemm_strided: c holds {} values, [{m}, {n}] needs more",
        c.len()
    );
    assert!(
        k == 0 || a.len() > (m - 1) * rsa + (k - 1) * csa,
        "gemm_strided: a is too short for [{m}, {k}]"
    );
    assert!(
        k == 0 || b.len() > (k - 1) * rsb + (n - 1) * csb,
        "gemm_strided: b is too short for [{k}, {n}]"
    );
    // SAFETY: the asserts above bound every index the strides reach.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// RMSNorm of every row of width w.len(), rows split across threads.
pub(super) fn rmsnorm_into(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let width = w.len();
    let rows = x.len() / width;
    for_row_blocks(
        out,
        width,
        rows_per_task(rows, rows * width * 8),
        |r0, block| simd::rmsnorm(&x[r0 * width..][..block.len()], w, eps, block),
    );
}

pub(super) fn rmsnorm_rows(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    rmsnorm_into(x, w, eps, &mut out);
    out
}
