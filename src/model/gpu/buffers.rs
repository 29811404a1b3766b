//! Storage buffers as the engine makes them: sized to whole words, usable
//! by every kernel and copy.

use crate::gpu::Gpu;

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

pub(super) fn buffer(gpu: &Gpu, label: &str, bytes: u64) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.next_multiple_of(4).max(4),
        usage: STORAGE,
        mapped_at_creation: false,
    })
}

pub(super) fn data_buffer(gpu: &Gpu, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    let b = buffer(gpu, label, bytes.len() as u64);
    gpu.queue.write_buffer(&b, 0, bytes);
    b
}

pub(super) fn f32_buffer(gpu: &Gpu, label: &str, values: &[f32]) -> wgpu::Buffer {
    data_buffer(gpu, label, bytemuck::cast_slice(values))
}
