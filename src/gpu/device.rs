//! The device and queue every kernel runs on, with what the adapter said
//! about itself.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// A device and queue with what the adapter said about itself (cheap to
/// clone: wgpu's handles are shared).
#[derive(Clone)]
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// Why the device was lost, and the first error it reported outside
    /// an error scope. wgpu's default for both is a panic, which kills a
    /// browser tab's engine: here they become a message, and every read
    /// back after them fails with it.
    fault: Arc<Mutex<Faults>>,
}

#[derive(Default)]
struct Faults {
    lost: Option<String>,
    error: Option<String>,
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
        let fault = Arc::new(Mutex::new(Faults::default()));
        let f = fault.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            f.error
                .get_or_insert_with(|| format!("the GPU reported an error: {e}"));
        }));
        let f = fault.clone();
        device.set_device_lost_callback(move |reason, message| {
            let why = if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            };
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            f.lost
                .get_or_insert_with(|| format!("the GPU device was lost ({reason:?}){why}"));
        });
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            fault,
        })
    }

    /// What went wrong with the device, if anything has: its loss first,
    /// since the errors that follow a loss only echo it.
    pub fn fault(&self) -> Option<String> {
        // Natively, callbacks run when the device is polled.
        #[cfg(not(target_arch = "wasm32"))]
        let _ = self.device.poll(wgpu::PollType::Poll);
        let f = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        f.lost.clone().or_else(|| f.error.clone())
    }

    /// An error once the device has failed.
    pub fn check(&self) -> Result<()> {
        match self.fault() {
            Some(f) => Err(Error::Gpu(f)),
            None => Ok(()),
        }
    }

    /// For tests of the failure paths: QKLAB_FAULT=device-lost (native)
    /// destroys the device, as a driver reset or a browser would.
    pub fn inject_fault_from_env(&self) {
        #[cfg(not(target_arch = "wasm32"))]
        if std::env::var("QKLAB_FAULT").as_deref() == Ok("device-lost") {
            self.device.destroy();
            // Let the loss be reported before anything else fails on it.
            let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        }
    }

    /// Whether the adapter is a CPU running a GPU's work (llvmpipe,
    /// lavapipe, SwiftShader, WebGPU's fallback adapter): there the CPU
    /// engine is faster.
    pub fn is_cpu_emulation(&self) -> bool {
        let name = self.info.name.to_ascii_lowercase();
        self.info.device_type == wgpu::DeviceType::Cpu
            || ["llvmpipe", "lavapipe", "swiftshader", "softpipe"]
                .iter()
                .any(|n| name.contains(n))
    }

    /// One line naming the adapter, for logs and the page.
    pub fn describe(&self) -> String {
        // Browsers may hide the adapter's name.
        let name = if self.info.name.is_empty() {
            "unnamed adapter"
        } else {
            &self.info.name
        };
        format!(
            "{name} ({:?}, {:?})",
            self.info.backend, self.info.device_type
        )
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
