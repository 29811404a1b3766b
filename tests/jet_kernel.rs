//! dynamic_conv.wgsl, a JetBlock's front end (SPEC-gdn, "JetBlock" and
//! "Dynamic short convolution"), against a CPU twin written from the
//! formula: q and k through SiLU; v through
//! silu(sum_w kernel_t[c, w] * v_{t-W+1+w}[c]) with each row's taps read
//! channel-major (kernel_t[c, w] at c * W + w) and the inputs before a
//! segment's first row from its sequence's history. Prefill over a batch
//! of segments (one longer than a 64-thread row of channels, one shorter
//! than the history), then decode steps recorded one after another in
//! one submission, as the engine's decode does; the history each leaves
//! must be the last W-1 v inputs, exactly.

mod common;

use qklab::gpu::kernels::Kernels;
use qklab::gpu::ops::{self, DynamicConvBuffers, DynamicConvShape, Segments};
use qklab::gpu::params::Seg;
use qklab::gpu::recorder::Recorder;
use qklab::gpu::Gpu;

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

struct Sizes {
    qk: usize,
    channels: usize,
    taps: usize,
}

/// The twin: q | k | v after the front end for every segment's rows, and
/// the histories it leaves (`hist` updated in place).
fn twin(z: &Sizes, segs: &[Seg], x: &[f32], kernels: &[f32], hist: &mut [f32]) -> Vec<f32> {
    let (qk, c, w) = (z.qk, z.channels, z.taps);
    let width = qk + c;
    let hk = w - 1;
    let rows = segs
        .iter()
        .map(|s| (s.row0 + s.rows) as usize)
        .max()
        .unwrap();
    let mut out = vec![f32::NAN; rows * width];
    for s in segs {
        let (r0, n, slot) = (s.row0 as usize, s.rows as usize, s.slot as usize);
        // [history ++ the segment's v rows], each entry c channels.
        let mut all = hist[slot * hk * c..][..hk * c].to_vec();
        for r in r0..r0 + n {
            all.extend_from_slice(&x[r * width + qk..][..c]);
        }
        for t in 0..n {
            let row = r0 + t;
            for ch in 0..qk {
                out[row * width + ch] = silu(x[row * width + ch]);
            }
            for ch in 0..c {
                let sum: f32 = (0..w)
                    .map(|tap| kernels[row * c * w + ch * w + tap] * all[(t + tap) * c + ch])
                    .sum();
                out[row * width + qk + ch] = silu(sum);
            }
        }
        hist[slot * hk * c..][..hk * c].copy_from_slice(&all[n * c..]);
    }
    out
}

fn seg(row0: u32, rows: u32, slot: u32) -> Seg {
    Seg {
        row0,
        rows,
        slot,
        pos0: 0,
    }
}

/// Runs the op on `segs` (one call a list, all in one submission) from
/// history `hist0` and checks every call's q | k | v and the history.
fn check(gpu: &Gpu, z: &Sizes, calls: &[Vec<Seg>], hist0: &[f32], label: &str) {
    let kernels = Kernels::new(gpu);
    let width = z.qk + z.channels;
    let shape = DynamicConvShape {
        key_heads: 1,
        key_dim: (z.qk / 2) as u32,
        channels: z.channels as u32,
        taps: z.taps as u32,
    };
    let hb = common::storage(gpu, hist0);
    let mut want_hist = hist0.to_vec();
    // Each call's buffers live until the submission is read.
    let mut held = Vec::new();
    let mut rec = Recorder::new(&kernels);
    for (i, segs) in calls.iter().enumerate() {
        let rows = segs
            .iter()
            .map(|s| (s.row0 + s.rows) as usize)
            .max()
            .unwrap();
        let x = common::random_f32(rows * width, 10 + i as u64, 2.0);
        let k = common::random_f32(rows * z.channels * z.taps, 20 + i as u64, 1.0);
        let want = twin(z, segs, &x, &k, &mut want_hist);
        let (xb, kb) = (common::storage(gpu, &x), common::storage(gpu, &k));
        let qkv = common::storage(gpu, &vec![f32::NAN; rows * width]);
        let sb = common::storage(gpu, bytemuck::cast_slice(segs));
        let segments = Segments {
            segs: &sb,
            count: segs.len() as u32,
            max_rows: segs.iter().map(|s| s.rows).max().unwrap(),
            max_end: 0,
        };
        let buffers = DynamicConvBuffers {
            x: &xb,
            kernels: &kb,
            hist: &hb,
            qkv: &qkv,
        };
        ops::dynamic_conv(&mut rec, &shape, segments, &buffers);
        held.push((xb, kb, qkv, sb, want, rows));
    }
    rec.submit();
    for (i, (_, _, qkv, _, want, rows)) in held.iter().enumerate() {
        let got = common::read_f32(gpu, qkv, rows * width);
        for (j, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-6 * (1.0 + w.abs()),
                "{label}, call {i}: qkv[{j}] = {g} (want {w})"
            );
        }
    }
    let got_hist = common::read_f32(gpu, &hb, hist0.len());
    assert_eq!(got_hist, want_hist, "{label}: history");
}

#[test]
fn prefill_then_decode_steps_follow_the_formula() {
    let Some(gpu) = common::gpu() else { return };
    for (z, what) in [
        (
            Sizes {
                qk: 2 * 3 * 24,
                channels: 3 * 40,
                taps: 4,
            },
            "3 heads, dk 24, dv 40, 4 taps",
        ),
        (
            Sizes {
                qk: 2 * 2 * 8,
                channels: 2 * 16,
                taps: 3,
            },
            "2 heads, dk 8, dv 16, 3 taps",
        ),
    ] {
        let slots = 4;
        let hist0 = common::random_f32(slots * (z.taps - 1) * z.channels, 1, 1.5);
        // A long segment, a single row, a few rows, and fewer rows than
        // the history holds (its history keeps some old entries).
        let prefill = vec![seg(0, 70, 1), seg(70, 1, 0), seg(71, 5, 2), seg(76, 1, 3)];
        // Decode: every sequence one row a step, steps in one submission.
        let step = vec![seg(0, 1, 0), seg(1, 1, 1), seg(2, 1, 2), seg(3, 1, 3)];
        check(
            &gpu,
            &z,
            &[prefill, step.clone(), step.clone(), step],
            &hist0,
            what,
        );
    }
}
