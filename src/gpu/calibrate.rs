//! How fast an adapter multiplies matrices, measured in a few
//! milliseconds: the estimate behind refusing an adapter on which a prompt
//! would take minutes, and behind sizing submissions below a watchdog.

use super::device::Gpu;
use super::kernels::{Kernels, WDtype};
use super::ops::{self, Rows};
use super::readback::read_buffer;
use super::recorder::Recorder;
use super::weights::GpuWeight;
use crate::clock::now_ms;
use crate::error::Result;

/// GFLOP/s of the engine's matmul on M x 2048 x 512 products (after a
/// warm-up that compiles the pipeline). The work grows (M up to 4096, then
/// more products a submission) until one submission takes at least
/// `ENOUGH_MS`: on a fast GPU a small product measures the submission's
/// latency and leaves most of the chip idle, not the rate, and the rate
/// sizes prefill passes (a rate far too low made the 2B model's
/// 4096-token prefill 12x slower on an H200).
pub async fn matmul_gflops(gpu: &Gpu) -> Result<f64> {
    const ENOUGH_MS: f64 = 10.0;
    const MAX_M: u32 = 4096;
    const MAX_REPS: u32 = 256;
    const K: u32 = 512;
    // Wide enough that a large M fills a big GPU with 128 x 128 tiles.
    const N: u32 = 2048;
    let weights: Vec<u8> = (0..N * K)
        .flat_map(|i: u32| {
            ((i.wrapping_mul(2_654_435_761) >> 16) as f32 / 65536.0 - 0.5).to_le_bytes()
        })
        .collect();
    let w = GpuWeight::upload(
        gpu,
        "calibration",
        WDtype::F32,
        &[N as u64, K as u64],
        gpu.limits.max_storage_buffer_binding_size,
        |off, len| {
            let bytes = weights[off as usize..(off + len) as usize].to_vec();
            async move { Ok(bytes) }
        },
    )
    .await?;
    let buffer = |label, width: u32| {
        gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (MAX_M * width * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    };
    let (x, y) = (buffer("calibration x", K), buffer("calibration y", N));
    let kernels = Kernels::new(gpu);
    let (mut m, mut reps) = (64u32, 4u32);
    loop {
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t0 = now_ms();
            let mut rec = Recorder::new(&kernels);
            for _ in 0..reps {
                ops::matmul(&mut rec, Rows::new(&x, K), m, &w, Rows::new(&y, N), false);
            }
            rec.submit();
            read_buffer(gpu, &y, 4).await?;
            best = best.min(now_ms() - t0);
        }
        let flop = reps as f64 * 2.0 * (m as f64) * (N as f64) * (K as f64);
        if best >= ENOUGH_MS || reps >= MAX_REPS {
            return Ok(flop / (best.max(0.01) * 1e-3) / 1e9);
        }
        if m < MAX_M {
            m = (m * 4).min(MAX_M);
        } else {
            reps *= 4;
        }
    }
}
