//! The Pareto front of a tune on (recall, retention), both higher-better,
//! and the point it recommends.

use serde::{Deserialize, Serialize};

/// A candidate's two scores in percent, and its KL from sft where measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub recall: f64,
    pub retention: f64,
    /// Mean per-token KL(sft || candidate) on sft's continuations.
    pub kl: f64,
}

/// Whether `a` is at least as good as `b` on both scores and better on one.
pub fn dominates(a: &Point, b: &Point) -> bool {
    a.recall >= b.recall
        && a.retention >= b.retention
        && (a.recall > b.recall || a.retention > b.retention)
}

/// The indices of the points no other point dominates, in order of recall
/// (then retention) descending. Equal points are all on the front.
pub fn pareto_front(points: &[Point]) -> Vec<usize> {
    let mut front: Vec<usize> = (0..points.len())
        .filter(|&i| !points.iter().any(|p| dominates(p, &points[i])))
        .collect();
    front.sort_by(|&a, &b| {
        let (pa, pb) = (&points[a], &points[b]);
        pb.recall
            .total_cmp(&pa.recall)
            .then(pb.retention.total_cmp(&pa.retention))
            .then(a.cmp(&b))
    });
    front
}

/// How much of what SFT taught a recommended merge may give up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    /// Task retention: percentage points below sft's own score (with answers).
    pub points: f64,
    /// Agreement: mean per-token KL(sft || candidate) (without answers).
    pub kl: f64,
}

impl Default for Tolerance {
    fn default() -> Tolerance {
        Tolerance {
            points: 1.0,
            kl: 0.01,
        }
    }
}

/// Which score a tolerance is read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Measure {
    /// Exact match on the user's answers: within `points` of sft.
    Answers,
    /// Agreement with sft: KL at most `kl`.
    Agreement,
}

/// Whether `p` keeps what SFT taught within `tol` of `baseline` (sft).
pub fn within(p: &Point, baseline: &Point, measure: Measure, tol: Tolerance) -> bool {
    match measure {
        // A tiny slack: scores are means of 0/1 and print rounded.
        Measure::Answers => p.retention >= baseline.retention - tol.points - 1e-9,
        Measure::Agreement => p.kl <= tol.kl,
    }
}

/// The recommended point: the most recall among the points within the
/// tolerance (the baseline always is), ties to more retention, then to
/// the earlier point.
pub fn recommend(points: &[Point], baseline: usize, measure: Measure, tol: Tolerance) -> usize {
    let base = points[baseline];
    (0..points.len())
        .filter(|&i| i == baseline || within(&points[i], &base, measure, tol))
        .min_by(|&a, &b| {
            let (pa, pb) = (&points[a], &points[b]);
            pb.recall
                .total_cmp(&pa.recall)
                .then(pb.retention.total_cmp(&pa.retention))
                .then(a.cmp(&b))
        })
        .unwrap_or(baseline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(recall: f64, retention: f64, kl: f64) -> Point {
        Point {
            recall,
            retention,
            kl,
        }
    }

    /// A small deterministic generator, for property checks without a crate.
    fn points(seed: u64, n: usize) -> Vec<Point> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Coarse values, so that ties happen.
            ((s >> 33) % 11) as f64 * 10.0
        };
        (0..n).map(|_| p(next(), next(), next() / 1000.0)).collect()
    }

    #[test]
    fn the_front_is_exactly_the_undominated_points() {
        for seed in 0..200 {
            let pts = points(seed, 1 + seed as usize % 17);
            let front = pareto_front(&pts);
            for (i, q) in pts.iter().enumerate() {
                let dominated = pts.iter().any(|o| dominates(o, q));
                assert_eq!(front.contains(&i), !dominated, "seed {seed}, point {i}");
            }
            assert!(front
                .windows(2)
                .all(|w| pts[w[0]].recall >= pts[w[1]].recall));
        }
    }

    #[test]
    fn the_recommendation_follows_its_rule() {
        // sft, QK-Restore (recall, but loses the skill), QK-Pro (within 1 point).
        let pts = [
            p(40.0, 100.0, 0.0),
            p(94.0, 50.0, 0.2),
            p(86.0, 99.5, 0.004),
            p(86.0, 99.0, 0.02),
        ];
        assert_eq!(
            recommend(&pts, 0, Measure::Answers, Tolerance::default()),
            2
        );
        assert_eq!(
            recommend(
                &pts,
                0,
                Measure::Answers,
                Tolerance {
                    points: 60.0,
                    kl: 0.0
                }
            ),
            1
        );
        assert_eq!(
            recommend(&pts, 0, Measure::Agreement, Tolerance::default()),
            2
        );
        assert_eq!(
            recommend(
                &pts,
                0,
                Measure::Agreement,
                Tolerance {
                    points: 0.0,
                    kl: 0.001
                }
            ),
            0,
            "nothing within: sft itself"
        );
        for seed in 0..200 {
            let pts = points(seed, 2 + seed as usize % 9);
            let r = recommend(&pts, 0, Measure::Answers, Tolerance::default());
            assert!(r == 0 || within(&pts[r], &pts[0], Measure::Answers, Tolerance::default()));
            for (i, q) in pts.iter().enumerate() {
                if within(q, &pts[0], Measure::Answers, Tolerance::default()) {
                    assert!(
                        q.recall <= pts[r].recall,
                        "seed {seed}: {i} has more recall within the tolerance"
                    );
                }
            }
            // With answers, the recommendation is on the front.
            assert!(pareto_front(&pts).contains(&r), "seed {seed}");
        }
    }
}
