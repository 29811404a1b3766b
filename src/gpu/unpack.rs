//! 16-bit float unpacking on the GPU (`shaders/unpack.wgsl`), with its CPU
//! twin in `safetensors::decode_f32`.

use wgpu::util::DeviceExt;

use super::bindings::UNPACK;
use super::device::Gpu;
use super::kernels::{Kernel, Kernels, WDtype};
use super::params::UnpackParams;
use super::readback::read_buffer;
use super::recorder::Recorder;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    Bf16,
    F16,
}

/// Decodes `n` halves packed two per word (low half first) to f32, with
/// the same `w_at` every weight-reading kernel uses.
pub async fn unpack(gpu: &Gpu, kind: Half, words: &[u32], n: u32) -> Result<Vec<f32>> {
    if (n as usize).div_ceil(2) > words.len() {
        return Err(Error::Gpu(format!(
            "{n} halves need {} words, got {}",
            n.div_ceil(2),
            words.len()
        )));
    }
    let dtype = match kind {
        Half::Bf16 => WDtype::Bf16,
        Half::F16 => WDtype::F16,
    };
    let dev = &gpu.device;
    // Storage bindings may not be empty.
    let padded: Vec<u32> = if words.is_empty() {
        vec![0]
    } else {
        words.to_vec()
    };
    let input = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("unpack.words"),
        contents: bytemuck::cast_slice(&padded),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let out_size = (n.max(1) as u64) * 4;
    let output = dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some("unpack.out"),
        size: out_size,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let kernels = Kernels::new(gpu);
    let mut rec = Recorder::new(&kernels);
    rec.dispatch_1d(
        Kernel::Unpack,
        dtype,
        &UnpackParams { n },
        &[(UNPACK.w, &input), (UNPACK.out, &output)],
        n,
        64,
    );
    rec.submit();
    let bytes = read_buffer(gpu, &output, out_size).await?;
    Ok(bytemuck::cast_slice::<u8, f32>(&bytes)[..n as usize].to_vec())
}

/// Packs little-endian 16-bit values two per u32 word.
pub fn pack_halves(halves: &[u16]) -> Vec<u32> {
    halves
        .chunks(2)
        .map(|c| c[0] as u32 | (*c.get(1).unwrap_or(&0) as u32) << 16)
        .collect()
}
