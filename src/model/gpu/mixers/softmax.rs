//! Softmax attention on the GPU (shaders/attention.wgsl): the recorded
//! layer over each sequence's caches.

use crate::config::Mixer;
use crate::gpu::ops::{self, AttnShape};
use crate::gpu::recorder::Recorder;
use crate::model::gpu::model::GpuModel;
use crate::model::gpu::pass::Layout;

impl GpuModel {
    /// Causal softmax attention over each sequence's cache, which its new
    /// keys and values join first (a sliding-window layer's queries read
    /// only their window of it); with capture, the queries are kept too.
    pub(super) fn record_softmax(
        &self,
        rec: &mut Recorder,
        l: usize,
        layout: &Layout,
        [k, v, lse]: [&wgpu::Buffer; 3],
        q_cap: Option<&wgpu::Buffer>,
    ) {
        let a = &self.arch;
        let n = layout.rows;
        let (heads, kv_heads, dh) = (
            a.attn.heads as u32,
            a.attn.kv_heads as u32,
            a.attn.head_dim as u32,
        );
        let (qw, kw) = (heads * dh, kv_heads * dh);
        let names = &self.names[l];
        self.record_heads(rec, l, Mixer::Softmax, layout);
        // Each sequence's keys and values join its cache before it attends.
        ops::copy_rows(rec, (&layout.to_cache, 0), n, kw, &self.s.k, k);
        ops::copy_rows(rec, (&layout.to_cache, 0), n, kw, &self.s.v, v);
        let shape = AttnShape {
            heads,
            kv_heads,
            dh,
            ctx: self.opts.max_context,
            window: a.window(l).map_or(0, |w| w as u32),
        };
        ops::attend(
            rec,
            &shape,
            layout.segments(),
            [&self.s.q, k, v],
            &self.s.o,
            lse,
            self.spare(),
        );
        if let Some(cap) = q_cap {
            ops::copy_rows(rec, (&layout.to_cache, 0), n, qw, &self.s.q, cap);
        }
        if a.attn_use_output_gate {
            self.record_output_gate(rec, &names.o_gate, &self.s.o, qw, n);
        }
        self.project_out(rec, l, &self.s.o, qw, n);
    }
}
