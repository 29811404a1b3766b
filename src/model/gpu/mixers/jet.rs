//! Jet-Nemotron's JetBlock on the GPU (SPEC-gdn, "JetBlock"): its own
//! front end (shaders/dynamic_conv.wgsl: SiLU q and k, v through the
//! convolution whose taps each token generates), then the gated delta
//! rule, the gated norm and `o_proj` as Qwen3.5's layers run them
//! (shaders/gated_delta.wgsl from `prepare` on).

use crate::gpu::ops::{self, DynamicConvBuffers, DynamicConvShape, GatedDeltaShape, Rows};
use crate::gpu::recorder::Recorder;
use crate::model::gpu::model::GpuModel;
use crate::model::gpu::pass::Layout;

impl GpuModel {
    /// Layer `l` over the pass's rows (normed in `h`), adding its output
    /// to the residual stream; `hist` and `state` are its sequences' v
    /// histories and S.
    pub(super) fn record_jet(
        &self,
        rec: &mut Recorder,
        l: usize,
        layout: &Layout,
        [hist, state]: [&wgpu::Buffer; 2],
    ) {
        let a = &self.arch;
        let g = &a.gdn;
        let n = layout.rows;
        let (d, kw, vw, nh, taps, gen) = (
            a.hidden_size as u32,
            g.key_width() as u32,
            g.value_width() as u32,
            g.value_heads as u32,
            g.conv_kernel as u32,
            g.generator as u32,
        );
        let names = &self.names[l];
        let t = &names.jet;
        let s = &self.s;
        let h = Rows::new(&s.h, d);
        let mm = |rec: &mut Recorder, x: Rows, name: &str, y: Rows| {
            ops::matmul(rec, x, n, self.weight(name), y, false)
        };
        // q | k | v side by side in `q`, before SiLU and the convolution.
        let x = Rows::new(&s.q, 2 * kw + vw);
        mm(rec, h, &names.q.weight, x);
        mm(rec, h, &names.k.weight, x.col(kw));
        mm(rec, h, &names.v.weight, x.col(2 * kw));
        // Each row's taps, W2 silu(W1 h) + b2, in `o` (free until the rule
        // writes its output there), the generator's hidden units in `gate`.
        let hidden = Rows::new(&s.gate, gen);
        mm(rec, h, &t.gen_w1, hidden);
        ops::silu(rec, &s.gate, n * gen);
        let kernels = Rows::new(&s.o, vw * taps);
        mm(rec, hidden, &t.gen_w2, kernels);
        ops::bias(rec, self.weight(&t.gen_b2), kernels, n);
        let front = DynamicConvShape {
            key_heads: nh,
            key_dim: g.key_dim as u32,
            channels: vw,
            taps,
        };
        let conv = DynamicConvBuffers {
            x: &s.q,
            kernels: &s.o,
            hist,
            qkv: &s.k,
        };
        ops::dynamic_conv(rec, &front, layout.segments(), &conv);
        // z in `v`; b and a (then beta and g) in `gate` and `o2`.
        mm(rec, h, &t.g_proj, Rows::new(&s.v, vw));
        mm(rec, h, &t.b_proj, Rows::new(&s.gate, nh));
        mm(rec, h, &t.a_proj, Rows::new(&s.o2, nh));
        let shape = GatedDeltaShape {
            key_heads: nh,
            value_heads: nh,
            key_dim: g.key_dim as u32,
            value_dim: g.value_dim as u32,
            conv_kernel: taps,
            eps: a.gdn_norm_eps as f32,
        };
        let norm = &names.o_norm;
        self.record_delta_rule(
            rec,
            &shape,
            layout,
            state,
            [&t.a_log, &t.dt_bias, norm, &names.o.weight],
        );
    }
}
