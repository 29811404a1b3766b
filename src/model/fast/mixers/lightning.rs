//! Lightning attention in the CPU engine: per (sequence, head), the
//! chunked form of the recurrence, continued from the sequence's state.

use crate::model::fast::blas::gemm_strided;
use crate::model::fast::model::FastModel;
use crate::model::fast::pass::Span;
use crate::model::par::map_tasks;
use crate::model::simd;

/// Tokens per Lightning chunk.
const CHUNK: usize = 64;

impl FastModel {
    /// Lightning attention of every sequence's new rows, continued from
    /// its state, in chunks: within a chunk of C tokens starting from state
    /// S0, o_a = scale (gamma^(a+1) q_a S0 + sum_{j<=a} gamma^(a-j) (q_a . k_j) v_j)
    /// and the state becomes gamma^C S0 + sum_j gamma^(C-1-j) k_j^T v_j,
    /// which is the recurrence S_t = gamma S_{t-1} + k_t^T v_t, o_t = scale q_t S_t.
    pub(super) fn lightning(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        spans: &[Span],
        states: &mut [&mut Vec<f32>],
    ) -> Vec<f32> {
        let a = &self.arch;
        let lt = &a.lightning;
        let (nh, nkv, dl) = (
            lt.heads as usize,
            lt.kv_heads as usize,
            lt.head_dim as usize,
        );
        let (qw, kw) = (nh * dl, nkv * dl);
        let scale = a.lightning_scale.value(lt.head_dim) as f32;
        let group = nh / nkv;
        let tasks: Vec<(usize, usize)> = (0..spans.len())
            .flat_map(|si| (0..nh).map(move |h| (si, h)))
            .collect();
        let before: Vec<&[f32]> = states.iter().map(|s| s.as_slice()).collect();
        let results = map_tasks(&tasks, |&(si, h): &(usize, usize)| {
            let span = spans[si];
            let gamma = self.gammas[h];
            // gamma^d for every distance within a chunk, and one past it.
            let mut pow = vec![1.0f32; CHUNK + 1];
            for d in 1..=CHUNK {
                pow[d] = pow[d - 1] * gamma;
            }
            // rev_pow[CHUNK - i + j] = gamma^(i - j): row i's decays, key by key.
            let rev_pow: Vec<f32> = pow.iter().rev().copied().collect();
            let g = h / group;
            let mut st = before[si][h * dl * dl..][..dl * dl].to_vec();
            let mut out = vec![0.0f32; span.rows * dl];
            let mut scores = vec![0.0f32; CHUNK * CHUNK];
            let mut kd = vec![0.0f32; CHUNK * dl];
            let mut qd = vec![0.0f32; CHUNK * dl];
            for c0 in (0..span.rows).step_by(CHUNK) {
                let c = CHUNK.min(span.rows - c0);
                let r0 = span.row0 + c0;
                let (qs, ks, vs) = (
                    &q[r0 * qw + h * dl..],
                    &k[r0 * kw + g * dl..],
                    &v[r0 * kw + g * dl..],
                );
                // Intra-chunk: (Q K^T masked and decayed) V.
                let sc = &mut scores[..c * c];
                gemm_strided(c, dl, c, 1.0, qs, (qw, 1), ks, (1, kw), sc, 0.0);
                for (i, row) in sc.chunks_mut(c).enumerate() {
                    let (live, masked) = row.split_at_mut(i + 1);
                    simd::mul(live, &rev_pow[CHUNK - i..]);
                    masked.fill(0.0);
                }
                let o = &mut out[c0 * dl..(c0 + c) * dl];
                gemm_strided(c, c, dl, scale, sc, (c, 1), vs, (kw, 1), o, 0.0);
                // Inter-chunk: gamma^(a+1) q_a S0.
                for i in 0..c {
                    let f = pow[i + 1] * scale;
                    simd::scale_into(&mut qd[i * dl..][..dl], &qs[i * qw..][..dl], f);
                }
                gemm_strided(c, dl, dl, 1.0, &qd, (dl, 1), &st, (dl, 1), o, 1.0);
                // State: gamma^C S0 + (gamma^(C-1-j) k_j)^T v_j.
                simd::scale(&mut st, pow[c]);
                for j in 0..c {
                    let f = pow[c - 1 - j];
                    simd::scale_into(&mut kd[j * dl..][..dl], &ks[j * kw..][..dl], f);
                }
                gemm_strided(dl, c, dl, 1.0, &kd, (1, dl), vs, (kw, 1), &mut st, 1.0);
            }
            (out, st)
        });
        let rows: usize = spans.iter().map(|s| s.rows).sum();
        let mut o = vec![0.0f32; rows * qw];
        for (&(si, h), (out, st)) in tasks.iter().zip(results) {
            let span = spans[si];
            for (i, row) in out.chunks(dl).enumerate() {
                o[(span.row0 + i) * qw + h * dl..][..dl].copy_from_slice(row);
            }
            states[si][h * dl * dl..][..dl * dl].copy_from_slice(&st);
        }
        o
    }
}
