//! Lightning attention on the GPU (shaders/lightning.wgsl).

use crate::config::Mixer;
use crate::gpu::ops::{self, LightningShape, Rows};
use crate::gpu::recorder::Recorder;
use crate::model::gpu::model::GpuModel;
use crate::model::gpu::pass::Layout;

impl GpuModel {
    /// Lightning attention continued from each sequence's state, chunked
    /// for prefill; then its output norm and gate where the model has them.
    pub(super) fn record_lightning(
        &self,
        rec: &mut Recorder,
        l: usize,
        layout: &Layout,
        state: &wgpu::Buffer,
    ) {
        let a = &self.arch;
        let n = layout.rows;
        let (heads, kv_heads, dk) = (
            a.lightning.heads as u32,
            a.lightning.kv_heads as u32,
            a.lightning.head_dim as u32,
        );
        let qw = heads * dk;
        let names = &self.names[l];
        self.record_heads(rec, l, Mixer::Lightning, layout);
        let eps = a.rms_norm_eps as f32;
        let shape = LightningShape {
            heads,
            kv_heads,
            dk,
            scale: a.lightning_scale.value(a.lightning.head_dim) as f32,
        };
        ops::lightning(
            rec,
            &shape,
            layout.segments(),
            [&self.s.q, &self.s.k, &self.s.v],
            &self.slopes,
            state,
            &self.s.o,
            self.spare(),
        );
        let mut o = &self.s.o;
        if a.lightning_use_output_norm {
            ops::rmsnorm(
                rec,
                Rows::new(o, qw),
                n,
                self.weight(&names.o_norm),
                eps,
                &self.s.o2,
            );
            o = &self.s.o2;
        }
        if a.lightning_use_output_gate {
            self.record_output_gate(rec, &names.z_proj, o, qw, n);
        }
        self.project_out(rec, l, o, qw, n);
    }
}
