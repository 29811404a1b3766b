//! The device and queue every kernel runs on, with what the adapter said
//! about itself.

use crate::error::{Error, Result};

/// A device and queue with what the adapter said about itself (cheap to
/// clone: wgpu's handles are shared).
#[derive(Clone)]
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
}

impl Gpu {
    /// Opens the default adapter with its full limits (large models need
    /// the largest storage buffers the adapter allows).
    pub async fn new() -> Result<Gpu> {
        // Primary backends only (Vulkan, Metal, DX12, WebGPU): GL would add
        // noise and nothing a compute engine can rely on. WGPU_BACKEND overrides.
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::PRIMARY;
        let instance = wgpu::Instance::new(desc.with_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("no GPU adapter: {e}")))?;
        let limits = adapter.limits();
        let info = adapter.get_info();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("qklab"),
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("cannot open {}: {e}", info.name)))?;
        Ok(Gpu { device, queue, info, limits })
    }

    /// Whether the adapter is a CPU running a GPU's work (llvmpipe,
    /// lavapipe, SwiftShader, WebGPU's fallback adapter): there the CPU
    /// engine is faster.
    pub fn is_cpu_emulation(&self) -> bool {
        let name = self.info.name.to_ascii_lowercase();
        self.info.device_type == wgpu::DeviceType::Cpu || ["llvmpipe", "lavapipe", "swiftshader", "softpipe"].iter().any(|n| name.contains(n))
    }

    /// One line naming the adapter, for logs and the page.
    pub fn describe(&self) -> String {
        // Browsers may hide the adapter's name.
        let name = if self.info.name.is_empty() { "unnamed adapter" } else { &self.info.name };
        format!("{name} ({:?}, {:?})", self.info.backend, self.info.device_type)
    }

    /// A compute pipeline from WGSL source and an entry point.
    pub fn pipeline(&self, label: &str, source: &str, entry: &str) -> wgpu::ComputePipeline {
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        })
    }

    /// Workgroup counts for `n` invocations of `size` threads, folded into
    /// a second dimension when one exceeds the per-dimension limit.
    pub fn dispatch_size(&self, n: u32, size: u32) -> (u32, u32) {
        let groups = n.div_ceil(size).max(1);
        let max = self.limits.max_compute_workgroups_per_dimension.max(1);
        if groups <= max {
            (groups, 1)
        } else {
            (max, groups.div_ceil(max))
        }
    }
}
