//! RoPE for the CPU engine: cos and sin tables per step, applied row by row.
//! Partial RoPE (Qwen3.5) rotates only the first `Arch::rope_dims` of each
//! head: the tables hold that many frequencies and the rest pass through.

use crate::config::Arch;
use crate::model::mixer::rope_head_dims;

/// cos and sin of every packed row's position for each head width that
/// RoPE uses, computed once a step in f64 as the reference computes them.
pub(super) struct RopeTables {
    tables: Vec<(usize, usize, Vec<(f32, f32)>)>,
}

impl RopeTables {
    pub(super) fn new(a: &Arch, positions: &[usize]) -> RopeTables {
        let widths = rope_head_dims(a).into_iter().map(|dh| dh as usize);
        let tables = widths
            .into_iter()
            .map(|dh| {
                let inv_freq = a.rope_inv_freq(dh as u64);
                let table = positions
                    .iter()
                    .flat_map(|&t| {
                        inv_freq.iter().map(move |f| {
                            let (sin, cos) = (t as f64 * f).sin_cos();
                            (cos as f32, sin as f32)
                        })
                    })
                    .collect();
                (dh, inv_freq.len(), table)
            })
            .collect();
        RopeTables { tables }
    }

    pub(super) fn get(&self, dh: usize) -> Option<RopeTable<'_>> {
        self.tables
            .iter()
            .find(|(w, _, _)| *w == dh)
            .map(|&(_, half, ref cs)| RopeTable { half, cs })
    }
}

#[derive(Clone, Copy)]
pub(super) struct RopeTable<'a> {
    half: usize,
    cs: &'a [(f32, f32)],
}

impl<'a> RopeTable<'a> {
    pub(super) fn row(&self, r: usize) -> &'a [(f32, f32)] {
        &self.cs[r * self.half..][..self.half]
    }
}

/// RoPE, rotate-half layout within the rotated dims (two per entry of
/// `cs`), on every head (width `dh`) of one row.
pub(super) fn apply_rope(row: &mut [f32], dh: usize, cs: &[(f32, f32)]) {
    let half = cs.len();
    for head in row.chunks_mut(dh) {
        let (x1s, x2s) = head[..2 * half].split_at_mut(half);
        for ((x1, x2), &(cos, sin)) in x1s.iter_mut().zip(x2s.iter_mut()).zip(cs) {
            let (a, b) = (*x1, *x2);
            *x1 = a * cos - b * sin;
            *x2 = b * cos + a * sin;
        }
    }
}
