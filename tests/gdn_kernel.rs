//! gated_delta.wgsl against the reference's gated delta rule
//! (src/model/cpu/mixers/gated_delta.rs, itself within 4e-7 of
//! transformers): a tiny Qwen3.5 (tests/fixtures/qwen35, two value heads
//! per key head) run by the GPU engine and by the reference CpuModel on
//! the same tokens. Ragged batches whose lengths sit on either side of
//! the 64-token chunk (1, 63, 64, 65, 700), packed into passes that cut
//! the long sequences, then more tokens (the convolution's history and S
//! carried across calls) and single decode steps. And the kernels alone
//! at the largest head size (128) and at Jet-Nemotron-2B's (dk 96, dv
//! 256), from random states, against the rule
//! written out here as SPEC-gdn states it: the chunked form (prefill,
//! chunks of 64 tokens), a lone 700-row segment cut into parts run side
//! by side (also against the same segment walked whole), and the
//! recurrence.

mod common;
use common::{open, rel_diff};

use qklab::config::arch_of;
use qklab::gpu::kernels::Kernels;
use qklab::gpu::ops::{self, GatedDeltaBuffers, GatedDeltaShape, GdnConvBuffers, Segments, Spare};
use qklab::gpu::params::Seg;
use qklab::gpu::recorder::Recorder;
use qklab::model::cpu::CpuModel;
use qklab::model::engine::Logits;
use qklab::model::fit::EngineOptions;
use qklab::model::gpu::GpuModel;
use qklab::source::block_on;

fn random_ids(n: usize, seed: u64, vocab: u64) -> Vec<u32> {
    let mut rng = qklab::synth::SplitMix64::new(seed);
    (0..n).map(|_| (rng.next_u64() % vocab) as u32).collect()
}

/// Within 1e-4 of the largest logit, as against transformers.
fn close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: logit count");
    if want.is_empty() {
        return;
    }
    let d = rel_diff(got, want);
    assert!(d < 1e-4, "{what}: {d:.3e}");
}

#[test]
fn ragged_batches_match_the_reference_across_passes_and_into_decode() {
    ragged_batches(Some(160));
}

#[test]
fn ragged_batches_match_the_reference_in_whole_passes() {
    ragged_batches(None);
}

/// Passes of `pass_rows` rows (or the plan's) at most.
fn ragged_batches(pass_rows: Option<u32>) {
    let Some(gpu) = common::gpu() else { return };
    let ck = open("tests/fixtures/qwen35/qwen35-text-f32");
    let arch = arch_of(&ck).unwrap();
    assert!(arch.gdn.value_heads > arch.gdn.key_heads);
    let vocab = arch.vocab_size;
    let cpu = block_on(CpuModel::load(&ck, arch.clone())).unwrap();
    let gpu_model = block_on(GpuModel::load(
        &gpu,
        &ck,
        arch,
        EngineOptions {
            max_context: 800,
            ..Default::default()
        },
        &mut |_| {},
    ))
    .unwrap();
    // Passes of 160 rows: the 700-token prompt spans five, sharing the
    // first and last with the short ones, its segments starting mid-chunk.
    if let Some(rows) = pass_rows {
        gpu_model.limit_pass_rows(rows);
    }
    let lengths = [1usize, 63, 64, 65, 700];
    let prompts: Vec<Vec<u32>> = lengths
        .iter()
        .enumerate()
        .map(|(i, &n)| random_ids(n, 100 + i as u64, vocab))
        .collect();
    let mut b = gpu_model.batch(lengths.len() as u32).unwrap();
    let mut refs: Vec<_> = lengths.iter().map(|_| cpu.new_state(false)).collect();

    let ids: Vec<&[u32]> = prompts.iter().map(|p| p.as_slice()).collect();
    let got = block_on(gpu_model.prefill_batch(&mut b, &ids, Logits::All)).unwrap();
    for (i, p) in prompts.iter().enumerate() {
        let want = cpu.step(&mut refs[i], p).unwrap();
        close(&got[i], &want, &format!("prompt of {}", p.len()));
    }

    // More tokens for some sequences only (ragged again, one left out):
    // each continues from its own history and state.
    let more: Vec<Vec<u32>> = [65usize, 0, 1, 64, 63]
        .iter()
        .enumerate()
        .map(|(i, &n)| random_ids(n, 200 + i as u64, vocab))
        .collect();
    let ids: Vec<&[u32]> = more.iter().map(|p| p.as_slice()).collect();
    let got = block_on(gpu_model.prefill_batch(&mut b, &ids, Logits::All)).unwrap();
    for (i, p) in more.iter().enumerate() {
        let want = cpu.step(&mut refs[i], p).unwrap();
        close(
            &got[i],
            &want,
            &format!("{} more tokens of sequence {i}", p.len()),
        );
    }

    // Single steps, every sequence at once: the decode path.
    for step in 0..3u64 {
        let next: Vec<Vec<u32>> = (0..lengths.len())
            .map(|i| random_ids(1, 300 + 10 * step + i as u64, vocab))
            .collect();
        let ids: Vec<&[u32]> = next.iter().map(|p| p.as_slice()).collect();
        let got = block_on(gpu_model.prefill_batch(&mut b, &ids, Logits::Last)).unwrap();
        for (i, p) in next.iter().enumerate() {
            let want = cpu.step(&mut refs[i], p).unwrap();
            close(
                &got[i],
                &want,
                &format!("decode step {step} of sequence {i}"),
            );
        }
    }
}

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

fn seg(row0: u32, rows: u32, slot: u32) -> Seg {
    Seg {
        row0,
        rows,
        slot,
        pos0: 0,
    }
}

/// Three segments: a chunk and one row, one row, and two chunks and two
/// rows (the last chunks partial, one of a single row).
const SEGS: [(u32, u32, u32); 3] = [(0, 65, 1), (65, 1, 0), (66, 130, 2)];

/// How much scratch the op is given: none (the recurrence), what the
/// chunked form needs, or room for a lone segment's parts too.
#[derive(Clone, Copy, PartialEq)]
enum Room {
    None,
    Chunked,
    Parts,
}

/// (key heads, value heads, dk, dv): the largest head size, two value
/// heads a key head (Qwen3.5's grouping).
const HEADS_128: (usize, usize, usize, usize) = (1, 2, 128, 128);

/// Jet-Nemotron-2B's JetBlock heads (dk 96, dv 256: more columns of u and
/// w than `wy` has threads), a value head a key head.
const HEADS_JET: (usize, usize, usize, usize) = (2, 2, 96, 256);

#[test]
fn the_chunked_kernels_follow_the_rule_at_head_size_128() {
    kernels_follow_the_rule(
        &SEGS.map(|(r, n, s)| seg(r, n, s)),
        HEADS_128,
        Room::Chunked,
        false,
    );
}

#[test]
fn the_chunked_kernels_follow_the_rule_with_value_heads_of_256() {
    kernels_follow_the_rule(
        &SEGS.map(|(r, n, s)| seg(r, n, s)),
        HEADS_JET,
        Room::Chunked,
        false,
    );
}

#[test]
fn the_recurrent_kernel_follows_the_rule_at_head_size_128() {
    // Without scratch the same prefill takes the recurrence.
    kernels_follow_the_rule(
        &SEGS.map(|(r, n, s)| seg(r, n, s)),
        HEADS_128,
        Room::None,
        false,
    );
}

#[test]
fn a_lone_long_segment_split_into_parts_follows_the_rule() {
    // 700 rows, 11 chunks: parts of 3 chunks, the last of 2 (one
    // partial), their states chained; against the rule and against the
    // same segment walked whole.
    let lone = [seg(0, 700, 0)];
    let (split_o, split_s) = kernels_follow_the_rule(&lone, HEADS_128, Room::Parts, true);
    let (whole_o, whole_s) = kernels_follow_the_rule(&lone, HEADS_128, Room::Chunked, true);
    for (got, want, what) in [(&split_o, &whole_o, "o"), (&split_s, &whole_s, "state")] {
        let top = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let d = got
            .iter()
            .zip(want.iter())
            .fold(0.0f32, |m, (g, w)| m.max((g - w).abs()));
        assert!(
            d <= 2e-5 * top,
            "split vs whole {what}: {d} (largest {top})"
        );
    }
}

fn kernels_follow_the_rule(
    segs: &[Seg],
    (nk, nv, dk, dv): (usize, usize, usize, usize),
    room: Room,
    slow: bool,
) -> (Vec<f32>, Vec<f32>) {
    let Some(gpu) = common::gpu() else {
        return (vec![], vec![]);
    };
    let kernels = Kernels::new(&gpu);
    let taps = 4usize;
    let c = 2 * nk * dk + nv * dv;
    let hk = taps - 1;
    let rows = segs.iter().map(|s| s.rows as usize).sum::<usize>();
    let slots = segs.len();
    let x = common::random_f32(rows * c, 1, 1.0);
    let z = common::random_f32(rows * nv * dv, 2, 2.0);
    let b = common::random_f32(rows * nv, 3, 3.0);
    let a = common::random_f32(rows * nv, 4, 3.0);
    let conv_w = common::random_f32(c * taps, 5, 0.7);
    // Slow decays (exp(A_log) near e^-6) keep the starting state and each
    // part's A_p alive across hundreds of tokens; at the usual rates they
    // fade within a chunk and a split would pass whatever it carried.
    let a_log: Vec<f32> = common::random_f32(nv, 6, 1.0)
        .into_iter()
        .map(|v| if slow { v - 6.0 } else { v })
        .collect();
    let dt_bias = common::random_f32(nv, 7, 1.0);
    let norm_w = common::random_f32(dv, 8, 1.0);
    let hist0 = common::random_f32(slots * hk * c, 9, 1.0);
    let state0 = common::random_f32(slots * nv * dk * dv, 10, 0.1);
    let buf = |v: &[f32]| common::storage(&gpu, v);
    let (xb, zb, bb, ab, wb, alb, dtb, nwb, hb, sb) = (
        buf(&x),
        buf(&z),
        buf(&b),
        buf(&a),
        buf(&conv_w),
        buf(&a_log),
        buf(&dt_bias),
        buf(&norm_w),
        buf(&hist0),
        buf(&state0),
    );
    let (qkvb, ob) = (
        buf(&vec![f32::NAN; rows * c]),
        buf(&vec![f32::NAN; rows * nv * dv]),
    );
    let segs_buffer = common::storage(&gpu, bytemuck::cast_slice(segs));
    let shape = GatedDeltaShape {
        key_heads: nk as u32,
        value_heads: nv as u32,
        key_dim: dk as u32,
        value_dim: dv as u32,
        conv_kernel: taps as u32,
        eps: 1e-6,
    };
    let max_rows = segs.iter().map(|s| s.rows).max().unwrap();
    let floats = match room {
        Room::None => 4,
        Room::Chunked => shape.scratch_floats(rows as u32) as usize,
        Room::Parts => {
            let floats = shape.scratch_floats(rows as u32) + 8 * shape.part_floats();
            // That the op splits is the point of this case.
            assert!(shape.parts(max_rows, rows as u32, floats) > 1);
            floats as usize
        }
    };
    if room == Room::Chunked {
        assert_eq!(shape.parts(max_rows, rows as u32, floats as u64), 1);
    }
    let scratch = buf(&vec![f32::NAN; floats]);
    let mut rec = Recorder::new(&kernels);
    let segments = Segments {
        segs: &segs_buffer,
        count: segs.len() as u32,
        max_rows,
        max_end: 0,
    };
    let conv = GdnConvBuffers {
        x: &xb,
        conv_w: &wb,
        hist: &hb,
        qkv: &qkvb,
    };
    ops::gdn_conv(&mut rec, &shape, segments, &conv);
    ops::gated_delta(
        &mut rec,
        &shape,
        segments,
        rows as u32,
        &GatedDeltaBuffers {
            qkv: &qkvb,
            z: &zb,
            beta: &bb,
            g: &ab,
            a_log: &alb,
            dt_bias: &dtb,
            norm_w: &nwb,
            state: &sb,
            o: &ob,
            scratch: Spare {
                buffer: &scratch,
                floats: floats as u64,
            },
        },
    );
    rec.submit();
    let got_o = common::read_f32(&gpu, &ob, rows * nv * dv);
    let got_s = common::read_f32(&gpu, &sb, state0.len());
    let got_h = common::read_f32(&gpu, &hb, hist0.len());

    let (mut want_s, mut want_h) = (state0.clone(), hist0.clone());
    let mut want_o = vec![0.0f32; rows * nv * dv];
    for sg in segs {
        let (r0, n, slot) = (sg.row0 as usize, sg.rows as usize, sg.slot as usize);
        let mut all = want_h[slot * hk * c..][..hk * c].to_vec();
        all.extend_from_slice(&x[r0 * c..(r0 + n) * c]);
        want_h[slot * hk * c..][..hk * c].copy_from_slice(&all[n * c..]);
        for t in 0..n {
            let mut row: Vec<f32> = (0..c)
                .map(|ch| {
                    silu(
                        (0..taps)
                            .map(|k| conv_w[ch * taps + k] * all[(t + k) * c + ch])
                            .sum(),
                    )
                })
                .collect();
            for (hd, piece) in row[..2 * nk * dk].chunks_mut(dk).enumerate() {
                let inv = 1.0 / (piece.iter().map(|v| v * v).sum::<f32>() + 1e-6).sqrt();
                let scale = if hd < nk {
                    1.0 / (dk as f32).sqrt()
                } else {
                    1.0
                };
                piece.iter_mut().for_each(|v| *v = *v * inv * scale);
            }
            let r = r0 + t;
            for j in 0..nv {
                let kh = j / (nv / nk);
                let q = &row[kh * dk..][..dk];
                let k = &row[nk * dk + kh * dk..][..dk];
                let v = &row[2 * nk * dk + j * dv..][..dv];
                let beta = 1.0 / (1.0 + (-b[r * nv + j]).exp());
                let sp = (a[r * nv + j] + dt_bias[j]).exp().ln_1p();
                let decay = (-a_log[j].exp() * sp).exp();
                let s = &mut want_s[(slot * nv + j) * dk * dv..][..dk * dv];
                s.iter_mut().for_each(|x| *x *= decay);
                let u: Vec<f32> = (0..dv)
                    .map(|col| {
                        beta * (v[col] - (0..dk).map(|i| k[i] * s[i * dv + col]).sum::<f32>())
                    })
                    .collect();
                for i in 0..dk {
                    for col in 0..dv {
                        s[i * dv + col] += k[i] * u[col];
                    }
                }
                let o = &mut want_o[(r * nv + j) * dv..][..dv];
                for col in 0..dv {
                    o[col] = (0..dk).map(|i| q[i] * s[i * dv + col]).sum();
                }
                let inv = 1.0 / (o.iter().map(|v| v * v).sum::<f32>() / dv as f32 + 1e-6).sqrt();
                for col in 0..dv {
                    o[col] = norm_w[col] * (o[col] * inv) * silu(z[(r * nv + j) * dv + col]);
                }
            }
        }
    }
    let near = |got: &[f32], want: &[f32], what: &str| {
        let top = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 2e-5 * top,
                "{what}[{i}] = {g} (want {w}, largest {top})"
            );
        }
    };
    near(&got_o, &want_o, "o");
    near(&got_s, &want_s, "state");
    assert_eq!(got_h, want_h, "conv history");
    (got_o, got_s)
}
