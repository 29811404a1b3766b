//! Jet-Nemotron's JetBlock in the reference (SPEC-gdn, "JetBlock" and
//! "Dynamic short convolution"), as NVlabs' `jet_block.py` and the naive
//! path of `dynamic_conv.py` compute it: its front end (SiLU q and k, v
//! through a causal convolution whose kernel each token generates from
//! its own normed row), then the gated delta rule that every gated-delta
//! layer shares (`gated_delta.rs`).

use super::gated_delta::{causal_conv, DeltaTensors, GdnState};
use crate::model::cpu::math::{add, linear, silu};
use crate::model::cpu::model::CpuModel;

impl CpuModel {
    /// Layer `l`'s JetBlock over the normed rows `h`, continued from
    /// `state` (S, and the last K-1 rows of v before the convolution); the
    /// output `[n, D]`, projected by `o_proj`.
    pub(super) fn jet_block(&self, l: usize, h: &[f32], state: &mut GdnState) -> Vec<f32> {
        let a = &self.arch;
        let g = &a.gdn;
        let d = a.hidden_size as usize;
        let (kw, vw) = (g.key_width() as usize, g.value_width() as usize);
        let (taps, hidden) = (g.conv_kernel as usize, g.generator as usize);
        let n = h.len() / d;
        let names = &self.names[l];
        let t = &names.jet;
        // q = silu(q_proj x), k = silu(k_proj x): no convolution on either.
        let mut q = linear(h, self.t(&names.q.weight), d, kw);
        let mut k = linear(h, self.t(&names.k.weight), d, kw);
        q.iter_mut().chain(k.iter_mut()).for_each(|x| *x = silu(*x));
        let v_in = linear(h, self.t(&names.v.weight), d, vw);
        // Each token's kernel [C, K], channel-major: W2 silu(W1 x) + b2.
        let mut gen = linear(h, self.t(&t.gen_w1), d, hidden);
        gen.iter_mut().for_each(|x| *x = silu(*x));
        let mut kernels = linear(&gen, self.t(&t.gen_w2), hidden, vw * taps);
        let b2 = self.t(&t.gen_b2);
        kernels.chunks_mut(vw * taps).for_each(|row| add(row, b2));
        let v = causal_conv(
            &v_in,
            |i| &kernels[i * vw * taps..][..vw * taps],
            vw,
            taps,
            &mut state.conv,
        );
        let mut qkv = Vec::with_capacity(n * (2 * kw + vw));
        for i in 0..n {
            qkv.extend_from_slice(&q[i * kw..][..kw]);
            qkv.extend_from_slice(&k[i * kw..][..kw]);
            qkv.extend_from_slice(&v[i * vw..][..vw]);
        }
        let tensors = DeltaTensors {
            b: &t.b_proj,
            a: &t.a_proj,
            a_log: &t.a_log,
            dt_bias: &t.dt_bias,
            z: &t.g_proj,
            norm: &names.o_norm,
            out: &names.o.weight,
        };
        self.delta_rule_layer(h, qkv, &tensors, &mut state.s)
    }
}
