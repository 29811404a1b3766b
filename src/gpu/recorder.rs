//! Records a sequence of kernel dispatches and buffer copies into one
//! command buffer. Every dispatch's parameters go into one uniform buffer
//! (a slot per dispatch, at the adapter's offset alignment), so a forward
//! pass of hundreds of dispatches makes one parameter upload.
//!
//! A [`BindCache`] (one per session) keeps that uniform buffer and every
//! bind group made with it: a decode step records the same dispatches on
//! the same buffers as the step before, so from the second step on no
//! bind group is created (they were most of a step's CPU time).

use std::cell::RefCell;
use std::collections::HashMap;

use super::bindings::Binding;
use super::kernels::{Kernel, Kernels, WDtype};
use super::params::KernelParams;

/// What makes a bind group: the pipeline, its buffers by binding, and the
/// slot of the parameter buffer.
#[derive(PartialEq, Eq, Hash)]
struct BindKey {
    pipeline: wgpu::ComputePipeline,
    buffers: Vec<(u32, wgpu::Buffer)>,
    params: (u64, u64),
}

/// A parameter buffer and the bind groups made on it, kept between
/// submissions. Bind groups hold their buffers: the cache belongs to the
/// session whose buffers it binds and goes with it.
#[derive(Default)]
pub struct BindCache {
    uniforms: RefCell<Option<wgpu::Buffer>>,
    groups: RefCell<HashMap<BindKey, wgpu::BindGroup>>,
}

/// Bind groups a cache holds at most: recordings that never repeat (a
/// growing prompt's passes) would otherwise pile up.
const MAX_CACHED: usize = 8192;

enum Step {
    Dispatch {
        pipeline: wgpu::ComputePipeline,
        buffers: Vec<(u32, wgpu::Buffer)>,
        params: (u64, u64),
        groups: [u32; 3],
    },
    Copy {
        src: wgpu::Buffer,
        src_offset: u64,
        dst: wgpu::Buffer,
        dst_offset: u64,
        size: u64,
    },
}

pub struct Recorder<'k> {
    kernels: &'k Kernels,
    steps: Vec<Step>,
    params: Vec<u8>,
    align: usize,
    cache: Option<&'k BindCache>,
}

impl<'k> Recorder<'k> {
    pub fn new(kernels: &'k Kernels) -> Self {
        let align = kernels
            .gpu()
            .limits
            .min_uniform_buffer_offset_alignment
            .max(16) as usize;
        Recorder {
            kernels,
            steps: Vec::new(),
            params: Vec::new(),
            align,
            cache: None,
        }
    }

    /// A recorder that takes its parameter buffer and bind groups from
    /// `cache`, and leaves the ones it makes there.
    pub fn cached(kernels: &'k Kernels, cache: &'k BindCache) -> Self {
        Recorder {
            cache: Some(cache),
            ..Recorder::new(kernels)
        }
    }

    pub fn gpu(&self) -> &super::device::Gpu {
        self.kernels.gpu()
    }

    /// Dispatches `kernel` with `params` at binding 0 and each buffer at
    /// the binding beside it (entry points of one shader file may use
    /// different subsets of its bindings).
    pub fn dispatch<P: KernelParams>(
        &mut self,
        kernel: Kernel,
        dtype: WDtype,
        params: &P,
        buffers: &[(Binding, &wgpu::Buffer)],
        groups: [u32; 3],
    ) {
        debug_assert_eq!(
            P::FILE,
            kernel.file(),
            "{kernel:?} takes the parameters of {}.wgsl",
            kernel.file()
        );
        debug_assert!(
            buffers.iter().all(|(b, _)| b.file == kernel.file()),
            "{kernel:?} takes the bindings of {}.wgsl",
            kernel.file()
        );
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
            buffers: buffers
                .iter()
                .map(|&(binding, b)| (binding.index, b.clone()))
                .collect(),
            params: (offset as u64, size as u64),
            groups,
        });
    }

    /// A dispatch over `n` threads in workgroups of `size`, folded into a
    /// second dimension past the per-dimension limit (kernels index with
    /// `gid.x + gid.y * groups.x * size`).
    pub fn dispatch_1d<P: KernelParams>(
        &mut self,
        kernel: Kernel,
        dtype: WDtype,
        params: &P,
        buffers: &[(Binding, &wgpu::Buffer)],
        n: u32,
        size: u32,
    ) {
        if n == 0 {
            return;
        }
        let (x, y) = self.kernels.gpu().dispatch_size(n, size);
        self.dispatch(kernel, dtype, params, buffers, [x, y, 1]);
    }

    pub fn copy(
        &mut self,
        src: &wgpu::Buffer,
        src_offset: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
        size: u64,
    ) {
        if size > 0 {
            self.steps.push(Step::Copy {
                src: src.clone(),
                src_offset,
                dst: dst.clone(),
                dst_offset,
                size,
            });
        }
    }

    /// Encodes everything recorded and submits it.
    pub fn submit(self) {
        let gpu = self.kernels.gpu();
        let dev = &gpu.device;
        let uniforms = (!self.params.is_empty()).then(|| self.uniforms());
        if let Some(u) = &uniforms {
            gpu.queue.write_buffer(u, 0, &self.params);
        }
        let mut encoder = dev.create_command_encoder(&Default::default());
        let mut pass: Option<wgpu::ComputePass<'static>> = None;
        for step in self.steps {
            match step {
                Step::Dispatch {
                    pipeline,
                    buffers,
                    params,
                    groups,
                } => {
                    let uniforms = uniforms.as_ref().expect("a dispatch has parameters");
                    let pass = pass.get_or_insert_with(|| {
                        encoder
                            .begin_compute_pass(&Default::default())
                            .forget_lifetime()
                    });
                    pass.set_pipeline(&pipeline);
                    let key = BindKey {
                        pipeline,
                        buffers,
                        params,
                    };
                    match self.cache {
                        Some(cache) => {
                            let mut groups = cache.groups.borrow_mut();
                            if groups.len() >= MAX_CACHED && !groups.contains_key(&key) {
                                groups.clear();
                            }
                            let bind = groups
                                .entry(key)
                                .or_insert_with_key(|key| bind_group(dev, uniforms, key));
                            pass.set_bind_group(0, &*bind, &[]);
                        }
                        None => pass.set_bind_group(0, &bind_group(dev, uniforms, &key), &[]),
                    }
                    pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                }
                Step::Copy {
                    src,
                    src_offset,
                    dst,
                    dst_offset,
                    size,
                } => {
                    pass = None;
                    encoder.copy_buffer_to_buffer(&src, src_offset, &dst, dst_offset, size);
                }
            }
        }
        drop(pass);
        gpu.queue.submit([encoder.finish()]);
    }

    /// The parameter buffer: the cache's while it is large enough (a new,
    /// larger one empties the cache, whose bind groups name the old one),
    /// else a fresh one.
    fn uniforms(&self) -> wgpu::Buffer {
        let create = |size: u64| {
            self.kernels
                .gpu()
                .device
                .create_buffer(&wgpu::BufferDescriptor {
                    label: Some("params"),
                    size,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
        };
        let need = self.params.len() as u64;
        let Some(cache) = self.cache else {
            return create(need);
        };
        let mut u = cache.uniforms.borrow_mut();
        if u.as_ref().is_none_or(|b| b.size() < need) {
            cache.groups.borrow_mut().clear();
            *u = Some(create(need.next_power_of_two()));
        }
        u.clone().expect("made above")
    }
}

fn bind_group(dev: &wgpu::Device, uniforms: &wgpu::Buffer, key: &BindKey) -> wgpu::BindGroup {
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: uniforms,
            offset: key.params.0,
            size: wgpu::BufferSize::new(key.params.1),
        }),
    }];
    entries.extend(key.buffers.iter().map(|(i, b)| wgpu::BindGroupEntry {
        binding: *i,
        resource: b.as_entire_binding(),
    }));
    dev.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &key.pipeline.get_bind_group_layout(0),
        entries: &entries,
    })
}
