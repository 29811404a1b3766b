//! Copying a GPU buffer back to the CPU, the same way natively and in the
//! browser: map asynchronously, then wait on a channel (natively we must
//! poll the device to make the mapping happen; the browser does it itself).

use super::device::Gpu;
use crate::error::{Error, Result};

/// The first `size` bytes of `buffer` (which needs `COPY_SRC`).
pub async fn read_buffer(gpu: &Gpu, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
    gpu.check()?;
    let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
    gpu.queue.submit([encoder.finish()]);

    let (tx, rx) = futures_channel::oneshot::channel();
    staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    #[cfg(not(target_arch = "wasm32"))]
    if let Err(e) = gpu.device.poll(wgpu::PollType::wait_indefinitely()) {
        gpu.check()?;
        return Err(Error::Gpu(format!("waiting for the GPU: {e}")));
    }
    let mapped = rx.await;
    // A device that failed meanwhile explains a failed mapping best.
    gpu.check()?;
    mapped
        .map_err(|_| Error::Gpu("the GPU dropped a buffer mapping".into()))?
        .map_err(|e| Error::Gpu(format!("mapping a buffer: {e}")))?;
    let bytes = staging
        .slice(..)
        .get_mapped_range()
        .map_err(|e| Error::Gpu(format!("reading a mapped buffer: {e}")))?
        .to_vec();
    staging.unmap();
    Ok(bytes)
}
