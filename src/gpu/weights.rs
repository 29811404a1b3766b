//! Checkpoint tensors on the GPU, packed as stored (f32, bf16, f16). A
//! tensor larger than one storage binding (`maxStorageBufferBindingSize`)
//! is split into chunks of whole rows; kernels run once per chunk.

use super::device::Gpu;
use super::kernels::WDtype;
use crate::error::{Error, Result};

pub struct WeightChunk {
    pub buffer: wgpu::Buffer,
    /// First row of the tensor held by this chunk, and how many rows.
    pub row0: u32,
    pub rows: u32,
}

pub struct GpuWeight {
    pub dtype: WDtype,
    pub rows: u32,
    pub cols: u32,
    pub chunks: Vec<WeightChunk>,
}

/// Rows per chunk for a tensor with rows of `cols` values under a binding
/// limit of `max_binding` bytes, or why it cannot be split: a single row
/// must fit, and 16-bit chunks must start on a 4-byte word.
pub fn rows_per_chunk(
    name: &str,
    dtype: WDtype,
    rows: u64,
    cols: u64,
    max_binding: u64,
) -> Result<u64> {
    let row_bytes = cols * dtype.bytes();
    let mut per = (max_binding / row_bytes.max(1)).min(rows.max(1));
    if dtype != WDtype::F32 && cols % 2 == 1 && per < rows {
        per &= !1;
    }
    if per == 0 {
        return Err(Error::Gpu(format!(
            "{name}: one row is {row_bytes} bytes, more than this GPU's maxStorageBufferBindingSize ({max_binding} bytes) by {}",
            row_bytes.saturating_sub(max_binding)
        )));
    }
    Ok(per)
}

impl GpuWeight {
    /// Uploads a tensor `[rows, cols]` (1-D tensors: one row), reading
    /// each chunk's bytes through `read(byte_offset, len)`.
    pub async fn upload<F, Fut>(
        gpu: &Gpu,
        name: &str,
        dtype: WDtype,
        shape: &[u64],
        max_binding: u64,
        mut read: F,
    ) -> Result<GpuWeight>
    where
        F: FnMut(u64, u64) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<u8>>>,
    {
        let (rows, cols) = match shape {
            [n] => (1, *n),
            [r, c] => (*r, *c),
            _ => {
                return Err(Error::Gpu(format!(
                    "{name}: the GPU engine takes 1-D or 2-D weights, not {shape:?}"
                )))
            }
        };
        let too_big =
            |what: &str| Error::Gpu(format!("{name}: {what} does not fit in 32-bit GPU indices"));
        let (rows32, cols32) = (
            u32::try_from(rows).map_err(|_| too_big("its row count"))?,
            u32::try_from(cols).map_err(|_| too_big("its width"))?,
        );
        let per = rows_per_chunk(name, dtype, rows, cols, max_binding)?;
        let mut chunks = Vec::new();
        let mut row0 = 0u64;
        while row0 < rows.max(1) {
            let n = per.min(rows - row0).max(1);
            let offset = row0 * cols * dtype.bytes();
            let len = n * cols * dtype.bytes();
            let mut bytes = read(offset, len).await?;
            // Storage buffers are whole 4-byte words and never empty.
            bytes.resize((bytes.len().next_multiple_of(4)).max(4), 0);
            let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(name),
                size: bytes.len() as u64,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            gpu.queue.write_buffer(&buffer, 0, &bytes);
            chunks.push(WeightChunk {
                buffer,
                row0: row0 as u32,
                rows: n as u32,
            });
            row0 += n;
        }
        Ok(GpuWeight {
            dtype,
            rows: rows32,
            cols: cols32,
            chunks,
        })
    }

    /// The only chunk of a small tensor (norm weights, biases).
    pub fn single(&self) -> &wgpu::Buffer {
        &self.chunks[0].buffer
    }

    pub fn bytes(&self) -> u64 {
        self.rows as u64 * self.cols as u64 * self.dtype.bytes()
    }
}
