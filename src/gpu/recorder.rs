//! Records a sequence of kernel dispatches and buffer copies into one
//! command buffer. Every dispatch's parameters go into one uniform buffer
//! (a slot per dispatch, at the adapter's offset alignment), so a forward
//! pass of hundreds of dispatches makes one parameter upload.

use super::kernels::{Kernel, Kernels, WDtype};
use super::params::KernelParams;

enum Step {
    Dispatch { pipeline: wgpu::ComputePipeline, buffers: Vec<wgpu::Buffer>, params: (u64, u64), groups: [u32; 3] },
    Copy { src: wgpu::Buffer, src_offset: u64, dst: wgpu::Buffer, dst_offset: u64, size: u64 },
}

pub struct Recorder<'k> {
    kernels: &'k Kernels,
    steps: Vec<Step>,
    params: Vec<u8>,
    align: usize,
}

impl<'k> Recorder<'k> {
    pub fn new(kernels: &'k Kernels) -> Self {
        let align = kernels.gpu().limits.min_uniform_buffer_offset_alignment.max(16) as usize;
        Recorder { kernels, steps: Vec::new(), params: Vec::new(), align }
    }

    pub fn gpu(&self) -> &super::device::Gpu {
        self.kernels.gpu()
    }

    /// Dispatches `kernel` with `params` at binding 0 and `buffers` at
    /// bindings 1, 2, … in order.
    pub fn dispatch<P: KernelParams>(&mut self, kernel: Kernel, dtype: WDtype, params: &P, buffers: &[&wgpu::Buffer], groups: [u32; 3]) {
        debug_assert_eq!(P::FILE, kernel.file(), "{kernel:?} takes the parameters of {}.wgsl", kernel.file());
        if groups.contains(&0) {
            return;
        }
        let offset = self.params.len().next_multiple_of(self.align);
        self.params.resize(offset, 0);
        let bytes = bytemuck::bytes_of(params);
        self.params.extend_from_slice(bytes);
        let size = bytes.len().next_multiple_of(16);
        self.params.resize(offset + size, 0);
        self.steps.push(Step::Dispatch {
            pipeline: self.kernels.pipeline(kernel, dtype),
            buffers: buffers.iter().map(|b| (*b).clone()).collect(),
            params: (offset as u64, size as u64),
            groups,
        });
    }

    /// A dispatch over `n` threads in workgroups of `size`, folded into a
    /// second dimension past the per-dimension limit (kernels index with
    /// `gid.x + gid.y * groups.x * size`).
    pub fn dispatch_1d<P: KernelParams>(&mut self, kernel: Kernel, dtype: WDtype, params: &P, buffers: &[&wgpu::Buffer], n: u32, size: u32) {
        if n == 0 {
            return;
        }
        let (x, y) = self.kernels.gpu().dispatch_size(n, size);
        self.dispatch(kernel, dtype, params, buffers, [x, y, 1]);
    }

    pub fn copy(&mut self, src: &wgpu::Buffer, src_offset: u64, dst: &wgpu::Buffer, dst_offset: u64, size: u64) {
        if size > 0 {
            self.steps.push(Step::Copy { src: src.clone(), src_offset, dst: dst.clone(), dst_offset, size });
        }
    }

    /// Encodes everything recorded and submits it.
    pub fn submit(self) {
        let gpu = self.kernels.gpu();
        let dev = &gpu.device;
        let uniforms = (!self.params.is_empty()).then(|| {
            let buffer = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("params"),
                size: self.params.len() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            gpu.queue.write_buffer(&buffer, 0, &self.params);
            buffer
        });
        let mut encoder = dev.create_command_encoder(&Default::default());
        let mut pass: Option<wgpu::ComputePass<'static>> = None;
        for step in &self.steps {
            match step {
                Step::Dispatch { pipeline, buffers, params, groups } => {
                    let uniforms = uniforms.as_ref().expect("a dispatch has parameters");
                    let mut entries = vec![wgpu::BindGroupEntry {
                        binding: 0,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: uniforms,
                            offset: params.0,
                            size: wgpu::BufferSize::new(params.1),
                        }),
                    }];
                    entries.extend(
                        buffers
                            .iter()
                            .enumerate()
                            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() }),
                    );
                    let bind = dev.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: None,
                        layout: &pipeline.get_bind_group_layout(0),
                        entries: &entries,
                    });
                    let pass = pass.get_or_insert_with(|| encoder.begin_compute_pass(&Default::default()).forget_lifetime());
                    pass.set_pipeline(pipeline);
                    pass.set_bind_group(0, &bind, &[]);
                    pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                }
                Step::Copy { src, src_offset, dst, dst_offset, size } => {
                    pass = None;
                    encoder.copy_buffer_to_buffer(src, *src_offset, dst, *dst_offset, *size);
                }
            }
        }
        drop(pass);
        gpu.queue.submit([encoder.finish()]);
    }
}
