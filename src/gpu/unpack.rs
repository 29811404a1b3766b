//! 16-bit float unpacking on the GPU (`shaders/unpack.wgsl`), with its CPU
//! twin in `safetensors::decode_f32`.

use wgpu::util::DeviceExt;

use super::{read_buffer, Gpu};
use crate::error::{Error, Result};

const SHADER: &str = include_str!("../../shaders/unpack.wgsl");
const WORKGROUP: u32 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    Bf16,
    F16,
}

/// Decodes `n` halves packed two per word (low half first) to f32.
pub async fn unpack(gpu: &Gpu, kind: Half, words: &[u32], n: u32) -> Result<Vec<f32>> {
    if (n as usize).div_ceil(2) > words.len() {
        return Err(Error::Gpu(format!("{n} halves need {} words, got {}", n.div_ceil(2), words.len())));
    }
    let entry = match kind {
        Half::Bf16 => "unpack_bf16",
        Half::F16 => "unpack_f16",
    };
    let pipeline = gpu.pipeline("unpack", SHADER, entry);
    let dev = &gpu.device;
    // Storage bindings may not be empty.
    let padded: Vec<u32> = if words.is_empty() { vec![0] } else { words.to_vec() };
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
    let params = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("unpack.params"),
        contents: bytemuck::cast_slice(&[n, 0, 0, 0]),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let bind = dev.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("unpack"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: input.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: output.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 2, resource: params.as_entire_binding() },
        ],
    });
    let mut encoder = dev.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        let (x, y) = gpu.dispatch_size(n, WORKGROUP);
        pass.dispatch_workgroups(x, y, 1);
    }
    gpu.queue.submit([encoder.finish()]);
    let bytes = read_buffer(gpu, &output, out_size).await?;
    Ok(bytemuck::cast_slice::<u8, f32>(&bytes)[..n as usize].to_vec())
}

/// Packs little-endian 16-bit values two per u32 word.
pub fn pack_halves(halves: &[u16]) -> Vec<u32> {
    halves.chunks(2).map(|c| c[0] as u32 | (*c.get(1).unwrap_or(&0) as u32) << 16).collect()
}
