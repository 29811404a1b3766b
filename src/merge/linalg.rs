//! The small dense linear algebra QK-Pro needs, in f64: Gram matrices,
//! the inverse of a symmetric positive (semi)definite `dh x dh` matrix by
//! Cholesky, and a Jacobi-eigenvalue pseudo-inverse when it is singular.
//! Matrices are row-major `Vec<f64>`.

/// `A B^T` for A `[m, k]`, B `[n, k]` (both row-major): dot products of rows,
/// which is how the projections are laid out (`[out, in]`). Rows of A go
/// four at a time, so each row of B is loaded once per four dot products.
pub fn mul_abt(a: &[f64], b: &[f64], m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    let mut i = 0;
    while i + 4 <= m {
        let rows = [
            &a[i * k..(i + 1) * k],
            &a[(i + 1) * k..(i + 2) * k],
            &a[(i + 2) * k..(i + 3) * k],
            &a[(i + 3) * k..(i + 4) * k],
        ];
        for j in 0..n {
            let d = dot4(rows, &b[j * k..(j + 1) * k]);
            for r in 0..4 {
                out[(i + r) * n + j] = d[r];
            }
        }
        i += 4;
    }
    for i in i..m {
        for j in 0..n {
            out[i * n + j] = dot(&a[i * k..(i + 1) * k], &b[j * k..(j + 1) * k]);
        }
    }
    out
}

/// Four dot products against one shared row, each summed exactly as [`dot`] does.
fn dot4(rows: [&[f64]; 4], b: &[f64]) -> [f64; 4] {
    let mut acc = [[0.0f64; 4]; 4];
    let whole = b.len() / 4 * 4;
    for c in (0..whole).step_by(4) {
        for r in 0..4 {
            for l in 0..4 {
                acc[r][l] += rows[r][c + l] * b[c + l];
            }
        }
    }
    let mut out = [0.0; 4];
    for r in 0..4 {
        let tail: f64 = rows[r][whole..]
            .iter()
            .zip(&b[whole..])
            .map(|(x, y)| x * y)
            .sum();
        out[r] = (acc[r][0] + acc[r][1]) + (acc[r][2] + acc[r][3]) + tail;
    }
    out
}

/// `A B` for A `[m, k]`, B `[k, n]`, as row updates (`out_i += a_ij * b_j`),
/// four output rows per pass over B.
pub fn mul_ab(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for (block, rows) in out.chunks_mut(4 * n).enumerate() {
        let i0 = block * 4;
        let count = rows.len() / n;
        for j in 0..k {
            let bj = &b[j * n..(j + 1) * n];
            for r in 0..count {
                let s = a[(i0 + r) * k + j];
                if s != 0.0 {
                    rows[r * n..(r + 1) * n]
                        .iter_mut()
                        .zip(bj)
                        .for_each(|(o, x)| *o += s * x);
                }
            }
        }
    }
    out
}

/// A dot product in four independent lanes (vectorizes, and sums in a
/// fixed order so results do not depend on the machine).
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// The inverse (or pseudo-inverse) of a symmetric PSD matrix.
#[derive(Debug, Clone)]
pub struct SymInverse {
    pub inv: Vec<f64>,
    pub rank: usize,
    /// True when the matrix was singular and the pseudo-inverse was used.
    pub pseudo: bool,
}

/// Inverts a symmetric positive semidefinite `n x n` matrix: Cholesky when
/// it is numerically positive definite, else an eigenvalue pseudo-inverse.
pub fn sym_inverse(g: &[f64], n: usize) -> SymInverse {
    match cholesky_inverse(g, n) {
        Some(inv) => SymInverse {
            inv,
            rank: n,
            pseudo: false,
        },
        None => {
            let (inv, rank) = pseudo_inverse(g, n);
            SymInverse {
                inv,
                rank,
                pseudo: true,
            }
        }
    }
}

/// Relative size below which a pivot or eigenvalue counts as zero.
const RANK_TOL: f64 = 1e-10;

fn cholesky_inverse(g: &[f64], n: usize) -> Option<Vec<f64>> {
    let max_diag = (0..n).map(|i| g[i * n + i]).fold(0.0f64, f64::max);
    if max_diag <= 0.0 {
        return None;
    }
    // G = L L^T
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s = g[i * n + j] - dot(&l[i * n..i * n + j], &l[j * n..j * n + j]);
            if i == j {
                if s <= RANK_TOL * max_diag {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    // L^-1 by forward substitution, then G^-1 = L^-T L^-1.
    let mut li = vec![0.0; n * n];
    for c in 0..n {
        for i in c..n {
            let mut s = if i == c { 1.0 } else { 0.0 };
            for k in c..i {
                s -= l[i * n + k] * li[k * n + c];
            }
            li[i * n + c] = s / l[i * n + i];
        }
    }
    let mut inv = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (i.max(j)..n).map(|k| li[k * n + i] * li[k * n + j]).sum();
            inv[i * n + j] = s;
            inv[j * n + i] = s;
        }
    }
    Some(inv)
}

/// Eigen-decomposes a symmetric matrix by cyclic Jacobi rotations and
/// inverts the eigenvalues above the rank tolerance. Returns (G^+, rank).
pub fn pseudo_inverse(g: &[f64], n: usize) -> (Vec<f64>, usize) {
    let mut a = g.to_vec();
    let mut v = vec![0.0; n * n];
    (0..n).for_each(|i| v[i * n + i] = 1.0);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        let total: f64 = a.iter().map(|x| x * x).sum();
        if off <= 1e-30 * total.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let (c, s) = (1.0 / (t * t + 1.0).sqrt(), t / (t * t + 1.0).sqrt());
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let eig: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
    let max = eig.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let inv_eig: Vec<f64> = eig
        .iter()
        .map(|&e| {
            if e.abs() > RANK_TOL * max && max > 0.0 {
                1.0 / e
            } else {
                0.0
            }
        })
        .collect();
    let rank = inv_eig.iter().filter(|x| **x != 0.0).count();
    let mut inv = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            inv[i * n + j] = (0..n)
                .map(|k| v[i * n + k] * inv_eig[k] * v[j * n + k])
                .sum();
        }
    }
    (inv, rank)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::SplitMix64;

    fn random(rows: usize, cols: usize, seed: u64) -> Vec<f64> {
        let mut r = SplitMix64::new(seed);
        (0..rows * cols).map(|_| r.next_signed() as f64).collect()
    }

    fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn cholesky_inverse_of_a_full_rank_gram() {
        let (n, k) = (7, 19);
        let x = random(n, k, 1);
        let g = mul_abt(&x, &x, n, n, k);
        let s = sym_inverse(&g, n);
        assert!(!s.pseudo && s.rank == n);
        let id = mul_ab(&g, &s.inv, n, n, n);
        let eye: Vec<f64> = (0..n * n)
            .map(|i| if i / n == i % n { 1.0 } else { 0.0 })
            .collect();
        assert!(
            max_abs_diff(&id, &eye) < 1e-10,
            "{}",
            max_abs_diff(&id, &eye)
        );
    }

    #[test]
    fn pseudo_inverse_of_a_rank_deficient_gram() {
        // 6 rows spanning only 3 dimensions: G is 6 x 6 of rank 3.
        let (n, k, r) = (6, 11, 3);
        let basis = random(r, k, 2);
        let coef = random(n, r, 3);
        let x = mul_ab(&coef, &basis, n, r, k);
        let g = mul_abt(&x, &x, n, n, k);
        let s = sym_inverse(&g, n);
        assert!(s.pseudo, "singular Gram must fall back");
        assert_eq!(s.rank, r);
        // Moore-Penrose: G G+ G = G and G+ G G+ = G+.
        let ggg = mul_ab(&mul_ab(&g, &s.inv, n, n, n), &g, n, n, n);
        let pgp = mul_ab(&mul_ab(&s.inv, &g, n, n, n), &s.inv, n, n, n);
        let scale = g.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(max_abs_diff(&ggg, &g) < 1e-9 * scale);
        let pscale = s.inv.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(max_abs_diff(&pgp, &s.inv) < 1e-8 * pscale);
    }

    #[test]
    fn products_match_naive_loops() {
        // Sizes around the 4-row tiles and 4-lane dots.
        for (m, k, n) in [(3, 5, 4), (4, 8, 4), (9, 13, 7), (1, 1, 1)] {
            let a = random(m, k, 4);
            let b = random(k, n, 5);
            let ab = mul_ab(&a, &b, m, k, n);
            let bt: Vec<f64> = (0..n * k).map(|x| b[(x % k) * n + x / k]).collect();
            let abt = mul_abt(&a, &bt, m, n, k);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k).map(|t| a[i * k + t] * b[t * n + j]).sum();
                    assert!((ab[i * n + j] - want).abs() < 1e-12, "mul_ab {m}x{k}x{n}");
                    assert!((abt[i * n + j] - want).abs() < 1e-12, "mul_abt {m}x{k}x{n}");
                }
            }
        }
    }
}
