//! The gated delta rule on the GPU (shaders/gated_delta.wgsl), Qwen3.5's
//! linear layers: its own projections (no `record_heads`: q, k and v go
//! through the convolution before their norms), the rule continued from
//! each sequence's state, the gated norm and `out_proj`.

use crate::gpu::ops::{self, GatedDeltaBuffers, GatedDeltaShape, GdnConvBuffers, Rows};
use crate::gpu::recorder::Recorder;
use crate::model::gpu::model::GpuModel;
use crate::model::gpu::pass::Layout;

impl GpuModel {
    /// Layer `l` over the pass's rows (normed in `h`), adding its output
    /// to the residual stream; `hist` and `state` are its sequences'
    /// convolution histories and S.
    pub(super) fn record_gated_delta(
        &self,
        rec: &mut Recorder,
        l: usize,
        layout: &Layout,
        [hist, state]: [&wgpu::Buffer; 2],
    ) {
        let a = &self.arch;
        let g = &a.gdn;
        let n = layout.rows;
        let (d, c, width, nv) = (
            a.hidden_size as u32,
            g.conv_channels() as u32,
            g.value_width() as u32,
            g.value_heads as u32,
        );
        let t = &self.names[l].gdn;
        let h = Rows::new(&self.s.h, d);
        // q, k, v before the convolution in `q`, after it in `k`; z in
        // `v`; b and a (then beta and g) in `gate` and `o2`.
        let s = &self.s;
        for (name, out, w) in [
            (&t.in_qkv, &s.q, c),
            (&t.in_z, &s.v, width),
            (&t.in_b, &s.gate, nv),
            (&t.in_a, &s.o2, nv),
        ] {
            ops::matmul(rec, h, n, self.weight(name), Rows::new(out, w), false);
        }
        let shape = GatedDeltaShape {
            key_heads: g.key_heads as u32,
            value_heads: nv,
            key_dim: g.key_dim as u32,
            value_dim: g.value_dim as u32,
            conv_kernel: g.conv_kernel as u32,
            eps: a.gdn_norm_eps as f32,
        };
        let f32_weight = |name: &str| self.weight(name).single();
        let conv = GdnConvBuffers {
            x: &s.q,
            conv_w: f32_weight(&t.conv),
            hist,
            qkv: &s.k,
        };
        ops::gdn_conv(rec, &shape, layout.segments(), &conv);
        self.record_delta_rule(
            rec,
            &shape,
            layout,
            state,
            [&t.a_log, &t.dt_bias, &t.norm, &t.out],
        );
    }

    /// From q, k, v (after their front end) in `k`, z in `v`, b and a in
    /// `gate` and `o2`: the gated delta rule continued from `state`, the
    /// gated norm, and the output projection added to the residual
    /// stream. `names`: A_log, dt_bias, the norm's weight, the output
    /// projection. Every gated-delta mixer ends so.
    pub(super) fn record_delta_rule(
        &self,
        rec: &mut Recorder,
        shape: &GatedDeltaShape,
        layout: &Layout,
        state: &wgpu::Buffer,
        [a_log, dt_bias, norm, out]: [&str; 4],
    ) {
        let s = &self.s;
        let n = layout.rows;
        let f32_weight = |name: &str| self.weight(name).single();
        let buffers = GatedDeltaBuffers {
            qkv: &s.k,
            z: &s.v,
            beta: &s.gate,
            g: &s.o2,
            a_log: f32_weight(a_log),
            dt_bias: f32_weight(dt_bias),
            norm_w: f32_weight(norm),
            state,
            o: &s.o,
            scratch: self.spare(),
        };
        ops::gated_delta(rec, shape, layout.segments(), n, &buffers);
        ops::matmul(
            rec,
            Rows::new(&s.o, shape.value_heads * shape.value_dim),
            n,
            self.weight(out),
            Rows::new(&s.x, self.arch.hidden_size as u32),
            true,
        );
    }
}
