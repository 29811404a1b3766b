//! The softmax attention kernels alone against a CPU twin written from
//! the definition: the prefill tiles (rows off the 64-row tile, segments
//! continuing a cache, GQA groups of 1, 2 and 4, head sizes below, at and
//! above the 128 columns a workgroup writes) and the split-key decode path
//! (contexts spanning several 256-key ranges, several sequences a call),
//! output and log-sum-exp both; and both again with a sliding window
//! (Jet-Nemotron's `swa` layers: position i sees keys i - w < j <= i),
//! windows shorter and longer than a tile, a key block and a key range.

mod common;

use qklab::gpu::kernels::Kernels;
use qklab::gpu::ops::{self, AttnShape, Segments, Spare};
use qklab::gpu::params::Seg;
use qklab::gpu::recorder::Recorder;
use qklab::gpu::Gpu;

struct Case {
    heads: u32,
    kv_heads: u32,
    dh: u32,
    ctx: u32,
    segs: Vec<Seg>,
    /// A sliding window; 0: the whole context.
    window: u32,
}

/// (o, lse) from the definition: row r of segment s at position pos0 + r
/// attends keys 0 ..= pos0 + r of its slot's cache, the last `window` of
/// them where a window is set.
fn cpu_twin(c: &Case, q: &[f32], k: &[f32], v: &[f32], rows: usize) -> (Vec<f32>, Vec<f32>) {
    let (h, hk, dh) = (c.heads as usize, c.kv_heads as usize, c.dh as usize);
    let scale = 1.0 / (dh as f32).sqrt();
    let mut o = vec![0.0f32; rows * h * dh];
    let mut lse = vec![0.0f32; c.segs.len().max(1) * c.ctx as usize * h * 4];
    for s in &c.segs {
        for r in 0..s.rows as usize {
            let pos = s.pos0 as usize + r;
            let row = s.row0 as usize + r;
            for head in 0..h {
                let kvh = head / (h / hk);
                let qr = &q[(row * h + head) * dh..][..dh];
                let first = match c.window as usize {
                    0 => 0,
                    w => (pos + 1).saturating_sub(w),
                };
                let keys = first..=pos;
                let logits: Vec<f64> = keys
                    .clone()
                    .map(|j| {
                        let kr = &k[((s.slot * c.ctx) as usize + j) * hk * dh + kvh * dh..][..dh];
                        qr.iter()
                            .zip(kr)
                            .map(|(a, b)| *a as f64 * *b as f64)
                            .sum::<f64>()
                            * scale as f64
                    })
                    .collect();
                let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let l: f64 = logits.iter().map(|x| (x - m).exp()).sum();
                for d in 0..dh {
                    let acc: f64 = keys
                        .clone()
                        .map(|j| {
                            (logits[j - first] - m).exp()
                                * v[((s.slot * c.ctx) as usize + j) * hk * dh + kvh * dh + d] as f64
                        })
                        .sum();
                    o[(row * h + head) * dh + d] = (acc / l) as f32;
                }
                lse[((s.slot * c.ctx) as usize + pos) * h + head] = (m + l.ln()) as f32;
            }
        }
    }
    (o, lse)
}

/// Runs ops::attend on the case and checks o and lse against the twin.
fn check(gpu: &Gpu, c: &Case, spare_floats: u64, label: &str) {
    let kernels = Kernels::new(gpu);
    let rows = c.segs.iter().map(|s| s.row0 + s.rows).max().unwrap() as usize;
    let slots = c.segs.iter().map(|s| s.slot).max().unwrap() as usize + 1;
    let (h, hk, dh) = (c.heads as usize, c.kv_heads as usize, c.dh as usize);
    let q = common::random_f32(rows * h * dh, 1, 2.0);
    let k = common::random_f32(slots * c.ctx as usize * hk * dh, 2, 2.0);
    let v = common::random_f32(slots * c.ctx as usize * hk * dh, 3, 2.0);
    let lse_len = slots * c.ctx as usize * h;
    let (qb, kb, vb) = (
        common::storage(gpu, &q),
        common::storage(gpu, &k),
        common::storage(gpu, &v),
    );
    let ob = common::storage(gpu, &vec![f32::NAN; rows * h * dh]);
    let lb = common::storage(gpu, &vec![0.0; lse_len]);
    let spare = common::storage(gpu, &vec![0.0; spare_floats.max(4) as usize]);
    let segs_buffer = common::storage(gpu, bytemuck::cast_slice(&c.segs));
    let segs = Segments {
        segs: &segs_buffer,
        count: c.segs.len() as u32,
        max_rows: c.segs.iter().map(|s| s.rows).max().unwrap(),
        max_end: c.segs.iter().map(|s| s.pos0 + s.rows).max().unwrap(),
    };
    let shape = AttnShape {
        heads: c.heads,
        kv_heads: c.kv_heads,
        dh: c.dh,
        ctx: c.ctx,
        window: c.window,
    };
    let mut rec = Recorder::new(&kernels);
    ops::attend(
        &mut rec,
        &shape,
        segs,
        [&qb, &kb, &vb],
        &ob,
        &lb,
        Spare {
            buffer: &spare,
            floats: spare_floats,
        },
    );
    rec.submit();
    let (got_o, got_lse) = (
        common::read_f32(gpu, &ob, rows * h * dh),
        common::read_f32(gpu, &lb, lse_len),
    );
    let (want_o, want_lse) = cpu_twin(c, &q, &k, &v, rows);
    let mut worst = 0.0f32;
    for s in &c.segs {
        for r in s.row0 as usize..(s.row0 + s.rows) as usize {
            for i in r * h * dh..(r + 1) * h * dh {
                let d = (got_o[i] - want_o[i]).abs();
                assert!(
                    d < 2e-5 * (1.0 + want_o[i].abs()),
                    "{label}: o[{i}] = {} (want {})",
                    got_o[i],
                    want_o[i]
                );
                worst = worst.max(d);
            }
            let at = ((s.slot * c.ctx + s.pos0) as usize + r - s.row0 as usize) * h;
            for i in at..at + h {
                let d = (got_lse[i] - want_lse[i]).abs();
                assert!(
                    d < 2e-5 * (1.0 + want_lse[i].abs()),
                    "{label}: lse[{i}] = {} (want {})",
                    got_lse[i],
                    want_lse[i]
                );
            }
        }
    }
    eprintln!("{label}: max |o - twin| = {worst:.2e}");
}

fn seg(row0: u32, rows: u32, slot: u32, pos0: u32) -> Seg {
    Seg {
        row0,
        rows,
        slot,
        pos0,
    }
}

#[test]
fn prefill_tiles_match_the_definition() {
    let Some(gpu) = common::gpu() else { return };
    // One sequence from position 0, rows off the tile; GQA 2.
    check(
        &gpu,
        &Case {
            heads: 4,
            kv_heads: 2,
            dh: 48,
            ctx: 160,
            segs: vec![seg(0, 150, 0, 0)],
            window: 0,
        },
        0,
        "dh 48, T 150",
    );
    // Three segments of a batch, two continuing a cache; GQA 4, dh 128.
    let segs = vec![seg(0, 70, 0, 0), seg(70, 5, 1, 33), seg(75, 1, 2, 90)];
    check(
        &gpu,
        &Case {
            heads: 4,
            kv_heads: 1,
            dh: 128,
            ctx: 100,
            segs,
            window: 0,
        },
        0,
        "batch of 3, dh 128",
    );
    // Heads wider than a workgroup's 128 columns, no GQA.
    check(
        &gpu,
        &Case {
            heads: 2,
            kv_heads: 2,
            dh: 200,
            ctx: 80,
            segs: vec![seg(0, 67, 0, 3)],
            window: 0,
        },
        0,
        "dh 200",
    );
}

#[test]
fn split_key_decode_matches_the_definition() {
    let Some(gpu) = common::gpu() else { return };
    // Single rows with contexts of 1, 256, 257 and 700 keys: 1 to 3 ranges.
    let segs = vec![
        seg(0, 1, 0, 0),
        seg(1, 1, 1, 255),
        seg(2, 1, 2, 256),
        seg(3, 1, 3, 699),
    ];
    let c = Case {
        heads: 4,
        kv_heads: 2,
        dh: 64,
        ctx: 720,
        segs,
        window: 0,
    };
    check(&gpu, &c, 1 << 20, "split decode, dh 64");
    check(
        &gpu,
        &Case {
            heads: 2,
            kv_heads: 1,
            dh: 200,
            ctx: 600,
            segs: vec![seg(0, 1, 0, 599)],
            window: 0,
        },
        1 << 20,
        "split decode, dh 200",
    );
    // Without room for the partial results, the prefill tiles take single rows.
    check(&gpu, &c, 0, "decode without spare memory");
}

#[test]
fn windowed_prefill_tiles_match_the_definition() {
    let Some(gpu) = common::gpu() else { return };
    // Windows shorter than a key block (16 < 32), than a tile (40 < 64)
    // and longer (100): tiles whose rows' windows start in different
    // blocks, a tile whose first rows see every key from 0.
    for window in [16, 40, 100] {
        check(
            &gpu,
            &Case {
                heads: 4,
                kv_heads: 2,
                dh: 48,
                ctx: 160,
                segs: vec![seg(0, 150, 0, 0)],
                window,
            },
            0,
            &format!("window {window}, T 150"),
        );
    }
    // A batch continuing caches past and short of the window; GQA 4.
    let segs = vec![
        seg(0, 70, 0, 0),
        seg(70, 5, 1, 33),
        seg(75, 1, 2, 90),
        seg(76, 9, 3, 7),
    ];
    check(
        &gpu,
        &Case {
            heads: 4,
            kv_heads: 1,
            dh: 128,
            ctx: 100,
            segs,
            window: 16,
        },
        0,
        "window 16, batch of 4, dh 128",
    );
}

#[test]
fn windowed_split_decode_matches_the_definition() {
    let Some(gpu) = common::gpu() else { return };
    // Single rows inside and past windows of one and of three 256-key
    // ranges (600): the window's first key off a range's.
    let segs = vec![
        seg(0, 1, 0, 0),
        seg(1, 1, 1, 15),
        seg(2, 1, 2, 16),
        seg(3, 1, 3, 699),
        seg(4, 1, 4, 300),
    ];
    for window in [16, 600] {
        let c = Case {
            heads: 4,
            kv_heads: 2,
            dh: 64,
            ctx: 720,
            segs: segs.clone(),
            window,
        };
        check(&gpu, &c, 1 << 20, &format!("split decode, window {window}"));
        check(
            &gpu,
            &c,
            0,
            &format!("decode without spare memory, window {window}"),
        );
    }
}
