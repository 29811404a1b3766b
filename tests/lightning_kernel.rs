//! lightning.wgsl alone against the recurrence it computes,
//!   S(t) = gamma S(t-1) + k(t)^T v(t),   o(t) = scale q(t) S(t),
//! stepped token by token on the CPU: the chunked kernel (segments of a
//! batch, chunks of 16 and a remainder, states carried over from earlier
//! calls, GQA, head dims below 64, between 64 and 128 and at 128, staged in
//! halves), a long segment cut into parts run side by side, and the
//! decode step (a row per segment).

mod common;

use qklab::gpu::kernels::Kernels;
use qklab::gpu::ops::{self, LightningShape, Segments, Spare};
use qklab::gpu::params::Seg;
use qklab::gpu::recorder::Recorder;
use qklab::gpu::Gpu;

/// One call: rows of segments over `slots` states, after `warm` tokens
/// already folded into each state by the same kernel.
fn check(
    gpu: &Gpu,
    (heads, kv_heads, dk): (u32, u32, u32),
    segs: &[Seg],
    spare_floats: usize,
    label: &str,
) {
    let kernels = Kernels::new(gpu);
    let (h, hk, d) = (heads as usize, kv_heads as usize, dk as usize);
    let rows = segs
        .iter()
        .map(|s| (s.row0 + s.rows) as usize)
        .max()
        .unwrap();
    let slots = segs.iter().map(|s| s.slot as usize).max().unwrap() + 1;
    let q = common::random_f32(rows * h * d, 11, 1.0);
    let k = common::random_f32(rows * hk * d, 12, 1.0);
    let v = common::random_f32(rows * hk * d, 13, 1.0);
    let state0 = common::random_f32(slots * h * d * d, 14, 1.0);
    let slopes: Vec<f32> = (0..h).map(|i| 0.05 + 0.1 * i as f32).collect();
    let scale = 1.0 / (d as f32).sqrt();
    let buf = |x: &[f32]| common::storage(gpu, x);
    let (qb, kb, vb, sb, state, ob) = (
        buf(&q),
        buf(&k),
        buf(&v),
        buf(&slopes),
        buf(&state0),
        buf(&vec![f32::NAN; rows * h * d]),
    );
    let segs_buffer = buf(bytemuck::cast_slice(segs));
    let shape = LightningShape {
        heads,
        kv_heads,
        dk,
        scale,
    };
    let segments = Segments {
        segs: &segs_buffer,
        count: segs.len() as u32,
        max_rows: segs.iter().map(|s| s.rows).max().unwrap(),
        max_end: 0,
    };
    let spare = buf(&vec![f32::NAN; spare_floats.max(4)]);
    let mut rec = Recorder::new(&kernels);
    ops::lightning(
        &mut rec,
        &shape,
        segments,
        [&qb, &kb, &vb],
        &sb,
        &state,
        &ob,
        Spare {
            buffer: &spare,
            floats: spare_floats as u64,
        },
    );
    rec.submit();
    let got_o = common::read_f32(gpu, &ob, rows * h * d);
    let got_s = common::read_f32(gpu, &state, state0.len());

    let mut want_s = state0.clone();
    let mut want_o = vec![0.0f32; rows * h * d];
    for sg in segs {
        for r in sg.row0 as usize..(sg.row0 + sg.rows) as usize {
            for head in 0..h {
                let g = head / (h / hk);
                let gamma = (-slopes[head]).exp();
                let s = &mut want_s[(sg.slot as usize * h + head) * d * d..][..d * d];
                for a in 0..d {
                    for b in 0..d {
                        s[a * d + b] = gamma * s[a * d + b]
                            + k[(r * hk + g) * d + a] * v[(r * hk + g) * d + b];
                    }
                }
                for b in 0..d {
                    want_o[(r * h + head) * d + b] = scale
                        * (0..d)
                            .map(|a| q[(r * h + head) * d + a] * s[a * d + b])
                            .sum::<f32>();
                }
            }
        }
    }
    let close = |got: &[f32], want: &[f32], what: &str| {
        let top = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= 2e-5 * top,
                "{label}: {what}[{i}] = {a} (want {b}, largest {top})"
            );
        }
    };
    for sg in segs {
        let at = sg.row0 as usize * h * d;
        close(
            &got_o[at..at + sg.rows as usize * h * d],
            &want_o[at..at + sg.rows as usize * h * d],
            "o",
        );
    }
    close(&got_s, &want_s, "state");
    eprintln!("{label}: ok");
}

fn seg(row0: u32, rows: u32, slot: u32) -> Seg {
    Seg {
        row0,
        rows,
        slot,
        pos0: 0,
    }
}

#[test]
fn chunked_lightning_follows_the_recurrence() {
    let Some(gpu) = common::gpu() else { return };
    check(&gpu, (2, 2, 48), &[seg(0, 37, 0)], 0, "dk 48, 37 tokens");
    check(
        &gpu,
        (4, 2, 100),
        &[seg(0, 16, 0), seg(16, 21, 1), seg(37, 3, 2)],
        1 << 20,
        "dk 100, GQA 2, 3 segments",
    );
    check(
        &gpu,
        (2, 1, 128),
        &[seg(0, 40, 1), seg(40, 1, 0)],
        1 << 20,
        "dk 128, GQA 2",
    );
}

#[test]
fn a_long_segment_split_into_parts_follows_the_recurrence() {
    let Some(gpu) = common::gpu() else { return };
    // 300 rows: 2 parts of 160 and 140; from the second slot's state.
    check(
        &gpu,
        (2, 1, 128),
        &[seg(0, 300, 1)],
        1 << 20,
        "2 parts, dk 128",
    );
    // 1000 rows: room for 3 parts only (3 x 4 heads x 48 x 48).
    check(
        &gpu,
        (4, 2, 48),
        &[seg(0, 1000, 0)],
        3 * 4 * 48 * 48,
        "3 parts, dk 48",
    );
    // As many parts as rows allow (7 of 144; the last of 136).
    check(
        &gpu,
        (2, 2, 20),
        &[seg(0, 1000, 0)],
        1 << 20,
        "7 parts, dk 20",
    );
}

#[test]
fn lightning_step_follows_the_recurrence() {
    let Some(gpu) = common::gpu() else { return };
    check(
        &gpu,
        (4, 2, 100),
        &[seg(0, 1, 2), seg(1, 1, 0), seg(2, 1, 1)],
        1 << 20,
        "step, dk 100",
    );
    check(&gpu, (2, 2, 128), &[seg(0, 1, 0)], 1 << 20, "step, dk 128");
}
