//! QK-Pro (the paper's Appendix N, as SPEC-methods reads it): keys restored,
//! and per query head h (kv head g) the part of the query drift that lies
//! in the row space of K_pre,g undone:
//!
//!   Q*_h = Q_sft,h - beta (Q_sft,h - Q_pre,h) P_g,
//!   P_g  = K_g^T (K_g K_g^T)^-1 K_g,   K_g = K_pre,g  (dh x D)
//!
//! P_g is never formed (it is D x D): with G = K_g K_g^T (dh x dh),
//! (Δ P_g) = ((Δ K_g^T) G^-1) K_g, three small products per head.

use super::linalg::{mul_ab, mul_abt, sym_inverse};

/// What happened to one kv head's Gram matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct GramNote {
    pub kv_head: usize,
    pub rank: usize,
    pub pseudo: bool,
}

/// Layout of one softmax layer's projections.
#[derive(Debug, Clone, Copy)]
pub struct QkShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub hidden: usize,
}

/// Computes Q* for a whole layer. `q_sft`, `q_pre` are `[heads*dh, D]`,
/// `k_pre` is `[kv_heads*dh, D]`, all row-major f32; the math is f64.
pub fn qk_pro(
    q_sft: &[f32],
    q_pre: &[f32],
    k_pre: &[f32],
    s: QkShape,
    beta: f64,
) -> (Vec<f32>, Vec<GramNote>) {
    let (dh, d) = (s.head_dim, s.hidden);
    let group = s.heads / s.kv_heads;
    let mut out = q_sft.to_vec();
    let mut notes = Vec::with_capacity(s.kv_heads);
    for g in 0..s.kv_heads {
        let k: Vec<f64> = k_pre[g * dh * d..(g + 1) * dh * d]
            .iter()
            .map(|&x| x as f64)
            .collect();
        let gram = mul_abt(&k, &k, dh, dh, d);
        let ginv = sym_inverse(&gram, dh);
        notes.push(GramNote {
            kv_head: g,
            rank: ginv.rank,
            pseudo: ginv.pseudo,
        });
        for h in g * group..(g + 1) * group {
            let rows = h * dh * d..(h + 1) * dh * d;
            let delta: Vec<f64> = q_sft[rows.clone()]
                .iter()
                .zip(&q_pre[rows.clone()])
                .map(|(a, b)| *a as f64 - *b as f64)
                .collect();
            let m = mul_abt(&delta, &k, dh, dh, d); // Δ K^T      [dh, dh]
            let x = mul_ab(&m, &ginv.inv, dh, dh, dh); // Δ K^T G^-1 [dh, dh]
            let c = mul_ab(&x, &k, dh, dh, d); // Δ P        [dh, D]
            for (o, (q, c)) in out[rows.clone()].iter_mut().zip(q_sft[rows].iter().zip(&c)) {
                *o = (*q as f64 - beta * c) as f32;
            }
        }
    }
    (out, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::linalg::mul_abt;
    use crate::synth::SplitMix64;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut r = SplitMix64::new(seed);
        (0..n).map(|_| r.next_signed()).collect()
    }

    fn to64(x: &[f32]) -> Vec<f64> {
        x.iter().map(|&v| v as f64).collect()
    }

    const S: QkShape = QkShape {
        heads: 4,
        kv_heads: 2,
        head_dim: 6,
        hidden: 20,
    };

    /// Per head: the logits Q_h K_g^T as a dh x dh matrix.
    fn logits(q: &[f32], k: &[f32], h: usize) -> Vec<f64> {
        let (dh, d) = (S.head_dim, S.hidden);
        let g = h / (S.heads / S.kv_heads);
        mul_abt(
            &to64(&q[h * dh * d..(h + 1) * dh * d]),
            &to64(&k[g * dh * d..(g + 1) * dh * d]),
            dh,
            dh,
            d,
        )
    }

    #[test]
    fn constraint_holds_at_beta_one() {
        let n_q = S.heads * S.head_dim * S.hidden;
        let (q_sft, q_pre) = (random(n_q, 1), random(n_q, 2));
        let k_pre = random(S.kv_heads * S.head_dim * S.hidden, 3);
        let (q, notes) = qk_pro(&q_sft, &q_pre, &k_pre, S, 1.0);
        assert!(notes.iter().all(|n| !n.pseudo && n.rank == S.head_dim));
        for h in 0..S.heads {
            let (got, want) = (logits(&q, &k_pre, h), logits(&q_pre, &k_pre, h));
            let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let err = got
                .iter()
                .zip(&want)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(err <= 1e-5 * scale, "head {h}: {err} vs scale {scale}");
        }
    }

    #[test]
    fn no_feasible_perturbation_is_closer_to_q_sft() {
        let (dh, d) = (S.head_dim, S.hidden);
        let n_q = S.heads * dh * d;
        let (q_sft, q_pre) = (random(n_q, 4), random(n_q, 5));
        let k_pre = random(S.kv_heads * dh * d, 6);
        let (q, _) = qk_pro(&q_sft, &q_pre, &k_pre, S, 1.0);
        let dist = |a: &[f64]| -> f64 {
            a.iter()
                .zip(&q_sft)
                .map(|(x, y)| (x - *y as f64).powi(2))
                .sum()
        };
        let base = dist(&to64(&q));
        // Feasible moves keep Q K^T: add Z (I - P) for random Z, per head.
        let mut rng = SplitMix64::new(7);
        for trial in 0..20 {
            let z: Vec<f32> = (0..n_q).map(|_| rng.next_signed() * 0.1).collect();
            // Project Z's rows out of K's row space with QK-Pro itself at beta = 1
            // (Q_sft = Z, Q_pre = 0 gives Z - Z P = Z (I - P)).
            let (z_null, _) = qk_pro(&z, &vec![0.0; n_q], &k_pre, S, 1.0);
            let moved: Vec<f64> = q
                .iter()
                .zip(&z_null)
                .map(|(a, b)| *a as f64 + *b as f64)
                .collect();
            let moved32: Vec<f32> = moved.iter().map(|&x| x as f32).collect();
            for h in 0..S.heads {
                let (a, b) = (logits(&moved32, &k_pre, h), logits(&q_pre, &k_pre, h));
                let err = a
                    .iter()
                    .zip(&b)
                    .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
                assert!(
                    err < 1e-4,
                    "trial {trial}: the perturbation left the constraint ({err})"
                );
            }
            assert!(
                dist(&moved) >= base * (1.0 - 1e-9),
                "trial {trial}: a feasible Q is closer to Q_sft"
            );
        }
    }

    #[test]
    fn square_full_rank_k_reduces_to_restore() {
        // dh = D: K_g is square and (almost surely) invertible, so P = I.
        let s = QkShape {
            heads: 2,
            kv_heads: 1,
            head_dim: 8,
            hidden: 8,
        };
        let n_q = s.heads * 64;
        let (q_sft, q_pre, k_pre) = (random(n_q, 8), random(n_q, 9), random(64, 10));
        let (q, _) = qk_pro(&q_sft, &q_pre, &k_pre, s, 1.0);
        let err = q
            .iter()
            .zip(&q_pre)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 1e-5, "{err}");
    }

    #[test]
    fn beta_zero_keeps_sft_and_singular_k_is_handled() {
        let n_q = S.heads * S.head_dim * S.hidden;
        let (q_sft, q_pre) = (random(n_q, 11), random(n_q, 12));
        let mut k_pre = random(S.kv_heads * S.head_dim * S.hidden, 13);
        let (q, _) = qk_pro(&q_sft, &q_pre, &k_pre, S, 0.0);
        assert_eq!(q, q_sft);
        // Two equal key rows in kv head 0: its Gram matrix is singular.
        let d = S.hidden;
        let row0 = k_pre[..d].to_vec();
        k_pre[d..2 * d].copy_from_slice(&row0);
        let (q, notes) = qk_pro(&q_sft, &q_pre, &k_pre, S, 1.0);
        assert_eq!(
            notes[0],
            GramNote {
                kv_head: 0,
                rank: S.head_dim - 1,
                pseudo: true
            }
        );
        assert!(q.iter().all(|x| x.is_finite()));
        for h in 0..S.heads {
            let (got, want) = (logits(&q, &k_pre, h), logits(&q_pre, &k_pre, h));
            let err = got
                .iter()
                .zip(&want)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err < 1e-4,
                "head {h}: constraint with a pseudo-inverse ({err})"
            );
        }
    }
}
