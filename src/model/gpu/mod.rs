//! HypeNet on the GPU: weights uploaded packed, a batch of sequences run
//! together (their new tokens packed into one block of rows, one command
//! buffer per pass), KV caches and Lightning states kept on the GPU
//! between calls, greedy tokens chosen and fed back on the GPU. The same code runs natively (Vulkan, Metal, DX12) and in the
//! browser (WebGPU); the CPU reference in `cpu/` is its oracle.
//!
//! `layout` cuts a call's tokens into passes, `forward` records a pass,
//! `mixers/` holds each mixer's buffers and recorded layer.

mod batch;
mod buffers;
mod drive;
mod forward;
mod layout;
mod mixers;
mod model;
mod pass;
mod routing;

pub use batch::GpuBatch;
pub use model::GpuModel;
pub use routing::Captured;
