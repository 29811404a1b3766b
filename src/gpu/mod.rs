//! GPU access through wgpu: Vulkan/Metal/DX12 natively, WebGPU in the
//! browser. `Gpu` is created by the caller and passed in, so tests bring
//! their own adapter and skip cleanly where none exists.

pub mod bindings;
pub mod calibrate;
mod device;
pub mod kernels;
pub mod ops;
pub mod params;
mod readback;
pub mod recorder;
pub mod unpack;
pub mod weights;

pub use device::Gpu;
pub use readback::read_buffer;
