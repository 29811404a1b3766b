//! matmul.wgsl alone against a CPU twin: the tiled kernel and the matvec
//! for few rows (alone, or a pass per 4 rows up to 32), at shapes off every tile and run size (K odd, so 16-bit
//! rows start mid-word; K below, at and above the 16-wide k-slice), f32,
//! bf16 and f16 weights, weights cut into row chunks (each writing its
//! own columns), rows offset into x and y, and accumulation into y.

mod common;

use qklab::gpu::kernels::{Kernels, WDtype};
use qklab::gpu::ops::{self, Rows};
use qklab::gpu::recorder::Recorder;
use qklab::gpu::weights::GpuWeight;
use qklab::gpu::Gpu;
use qklab::source::block_on;

/// The weights as stored (rounded to `dtype`), their bytes, and as f32.
fn weights(n: usize, k: usize, dtype: WDtype, seed: u64) -> (Vec<u8>, Vec<f32>) {
    let v = common::random_f32(n * k, seed, 1.0);
    match dtype {
        WDtype::F32 => (bytemuck::cast_slice(&v).to_vec(), v),
        WDtype::Bf16 => {
            let h: Vec<half::bf16> = v.iter().map(|&x| half::bf16::from_f32(x)).collect();
            (
                h.iter().flat_map(|x| x.to_le_bytes()).collect(),
                h.iter().map(|x| x.to_f32()).collect(),
            )
        }
        WDtype::F16 => {
            let h: Vec<half::f16> = v.iter().map(|&x| half::f16::from_f32(x)).collect();
            (
                h.iter().flat_map(|x| x.to_le_bytes()).collect(),
                h.iter().map(|x| x.to_f32()).collect(),
            )
        }
    }
}

/// y[y_row0 + i, :] (+)= x[x_row0 + i, :] W^T for i < m, on the GPU and by
/// the twin; y rows are n wide, x rows k + 3 wide.
fn check(gpu: &Gpu, (m, n, k): (u32, u32, u32), dtype: WDtype, binding: u64, accumulate: bool) {
    let label = format!("{m}x{n}x{k} {dtype:?} binding {binding} accumulate {accumulate}");
    let kernels = Kernels::new(gpu);
    let (bytes, wf) = weights(n as usize, k as usize, dtype, 7);
    let w = block_on(GpuWeight::upload(
        gpu,
        "w",
        dtype,
        &[n as u64, k as u64],
        binding,
        |off, len| std::future::ready(Ok(bytes[off as usize..(off + len) as usize].to_vec())),
    ))
    .unwrap();
    let (xs, x_row0, y_row0) = (k + 3, 2u32, 1u32);
    let x = common::random_f32((x_row0 + m) as usize * xs as usize, 1, 1.0);
    let y0 = common::random_f32((y_row0 + m) as usize * n as usize, 2, 1.0);
    let (xb, yb) = (common::storage(gpu, &x), common::storage(gpu, &y0));
    let mut rec = Recorder::new(&kernels);
    ops::matmul(
        &mut rec,
        Rows::new(&xb, xs).at(x_row0),
        m,
        &w,
        Rows::new(&yb, n).at(y_row0),
        accumulate,
    );
    rec.submit();
    let got = common::read_f32(gpu, &yb, y0.len());
    for i in 0..(y_row0 + m) as usize {
        for j in 0..n as usize {
            let at = i * n as usize + j;
            let want = if i < y_row0 as usize {
                y0[at]
            } else {
                let xr = &x[(i - y_row0 as usize + x_row0 as usize) * xs as usize..][..k as usize];
                let dot: f64 = xr
                    .iter()
                    .zip(&wf[j * k as usize..][..k as usize])
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum();
                (dot + if accumulate { y0[at] as f64 } else { 0.0 }) as f32
            };
            assert!(
                (got[at] - want).abs() <= 1e-5 * (1.0 + want.abs()) * (k as f32).sqrt(),
                "{label}: y[{i}, {j}] = {} (want {want})",
                got[at]
            );
        }
    }
}

#[test]
fn tiled_matmul_matches_the_twin_off_every_tile_size() {
    let Some(gpu) = common::gpu() else { return };
    let big = 1 << 30;
    for dtype in [WDtype::F32, WDtype::Bf16, WDtype::F16] {
        // 5 to 32 rows run as matvec passes of 4 rows; 33 on, tiled.
        for shape in [
            (5, 37, 19),
            (13, 64, 64),
            (32, 100, 33),
            (33, 40, 30),
            (130, 129, 27),
            (67, 140, 64),
            (9, 300, 8),
            (200, 17, 130),
        ] {
            check(&gpu, shape, dtype, big, false);
        }
    }
    check(&gpu, (131, 260, 33), WDtype::Bf16, big, true);
    // Rows of W in chunks of 24 (bf16, 33 wide: 1584 bytes a chunk).
    check(&gpu, (70, 100, 33), WDtype::Bf16, 24 * 33 * 2, true);
}

#[test]
fn matvec_matches_the_twin_for_one_to_four_rows() {
    let Some(gpu) = common::gpu() else { return };
    let big = 1 << 30;
    for m in 1..=4 {
        for dtype in [WDtype::F32, WDtype::Bf16, WDtype::F16] {
            for (n, k) in [(37, 19), (100, 64), (9, 1), (300, 130), (40, 600)] {
                check(&gpu, (m, n, k), dtype, big, m % 2 == 0);
            }
        }
    }
    check(&gpu, (1, 100, 33), WDtype::Bf16, 24 * 33 * 2, true);
}
