//! The CPU engine's dense arithmetic: matrix products through
//! matrixmultiply (split over rows across threads), each thread's
//! scratch, and row-wise RMSNorm.

use super::super::par::{for_row_blocks, rows_per_task};
use super::super::simd;

/// y = x W^T (+ y when `accumulate`) for x `[m, k]` (rows `x_stride` apart),
/// W `[n, k]` (PyTorch layout) and y `[m, n]`, split over rows across
/// threads when large enough to pay for it.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_nt(x: &[f32], x_stride: usize, w: &[f32], m: usize, k: usize, n: usize, y: &mut [f32], accumulate: bool) {
    if m == 0 || n == 0 {
        return;
    }
    let beta = if accumulate { 1.0 } else { 0.0 };
    let rows_per_task = super::super::par::rows_per_task(m, m * n * k);
    super::super::par::for_row_blocks(y, n, rows_per_task, |r0, block| {
        let rows = block.len() / n;
        // SAFETY: x holds rows r0..r0 + rows of `x_stride` values (k used),
        // w is [n, k] and block is [rows, n], as the strides below say.
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
pub(super) fn gemm_strided(m: usize, k: usize, n: usize, alpha: f32, a: &[f32], (rsa, csa): (usize, usize), b: &[f32], (rsb, csb): (usize, usize), c: &mut [f32], beta: f32) {
    if m == 0 || n == 0 {
        return;
    }
    debug_assert!(c.len() >= m * n);
    debug_assert!(k == 0 || a.len() > (m - 1) * rsa + (k - 1) * csa);
    debug_assert!(k == 0 || b.len() > (k - 1) * rsb + (n - 1) * csb);
    // SAFETY: the asserts above bound every index the strides reach.
    unsafe {
        matrixmultiply::sgemm(m, k, n, alpha, a.as_ptr(), rsa as isize, csa as isize, b.as_ptr(), rsb as isize, csb as isize, beta, c.as_mut_ptr(), n as isize, 1);
    }
}

/// RMSNorm of every row of width w.len(), rows split across threads.
pub(super) fn rmsnorm_into(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let width = w.len();
    let rows = x.len() / width;
    for_row_blocks(out, width, rows_per_task(rows, rows * width * 8), |r0, block| simd::rmsnorm(&x[r0 * width..][..block.len()], w, eps, block));
}

pub(super) fn rmsnorm_rows(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    rmsnorm_into(x, w, eps, &mut out);
    out
}
