//! Routing diagnostics (SPEC-methods, "Routing diagnostics"): where a
//! softmax layer's heads look. Both backends reduce every attention row
//! to a few numbers (expected distance, needle mass, sums over key blocks)
//! without ever holding the T x T matrix; the pictures and rankings are
//! made from those rows here.

/// ln(a / b) cell by cell, with both floored at `floor` so empty cells
/// (above the diagonal) give 0 rather than NaN.
pub fn log_ratio(a: &[f32], b: &[f32], floor: f32) -> Vec<f32> {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x.max(floor) / y.max(floor)).ln())
        .collect()
}

/// Softmax layers ranked by how many heads attend closer after SFT
/// (`after[l][h] < before[l][h]`), most affected first: (layer, heads that
/// shrank, heads), ties broken by the larger total shrinkage.
pub fn most_affected(
    before: &[(usize, Vec<f32>)],
    after: &[(usize, Vec<f32>)],
) -> Vec<(usize, usize, usize)> {
    let mut ranked: Vec<(usize, usize, usize, f32)> = before
        .iter()
        .zip(after)
        .map(|((l, b), (_, a))| {
            let shrank = b.iter().zip(a).filter(|(b, a)| a < b).count();
            let total: f32 = b.iter().zip(a).map(|(b, a)| (b - a).max(0.0)).sum();
            (*l, shrank, b.len(), total)
        })
        .collect();
    ranked.sort_by(|x, y| y.1.cmp(&x.1).then(y.3.total_cmp(&x.3)));
    ranked.into_iter().map(|(l, s, n, _)| (l, s, n)).collect()
}
