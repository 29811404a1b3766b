//! GPU access through wgpu: Vulkan/Metal/DX12 natively, WebGPU in the browser.
