//! The gated delta rule in the reference (SPEC-gdn, "The gated delta
//! rule" and "GDN layer"): Qwen3.5's front end (the depthwise causal
//! convolution over q, k and v), then the part every gated-delta layer
//! shares (a JetBlock's front end is `jet.rs`): the literal recurrence,
//! token by token, over a state per value head, the gated RMSNorm and the
//! output projection. The oracle for the CPU engine's chunked form and the
//! GPU kernels.

use crate::config::{Arch, Mixer};
use crate::model::cpu::math::{inv_sqrt, l2norm_pieces, linear, sigmoid, silu, softplus};
use crate::model::cpu::model::CpuModel;
use crate::model::mixer::conv_channels;

/// What a gated-delta layer (Qwen3.5's or a JetBlock) carries from one
/// step to the next.
#[derive(Clone)]
pub struct GdnState {
    /// S of every value head, `[nv, dk, dv]`: `S_j[i][c]`, i over the key
    /// dim, c over the value dim.
    pub s: Vec<f32>,
    /// The convolution's last K-1 inputs (the projected rows before it:
    /// q, k and v in Qwen3.5, v in a JetBlock), oldest first, `[K-1, C]`;
    /// zeros before the first token.
    pub conv: Vec<f32>,
}

impl GdnState {
    /// A `mixer` layer's state before any token.
    pub(super) fn new(arch: &Arch, mixer: Mixer) -> GdnState {
        let (s, conv) = Self::sizes(arch, mixer);
        GdnState {
            s: vec![0.0; s],
            conv: vec![0.0; conv],
        }
    }

    /// Whether this state is of a `mixer` layer of `arch`.
    pub(super) fn fits(&self, arch: &Arch, mixer: Mixer) -> bool {
        (self.s.len(), self.conv.len()) == Self::sizes(arch, mixer)
    }

    fn sizes(arch: &Arch, mixer: Mixer) -> (usize, usize) {
        let g = &arch.gdn;
        (
            (g.value_heads * g.key_dim * g.value_dim) as usize,
            ((g.conv_kernel - 1) * conv_channels(arch, mixer)) as usize,
        )
    }
}

/// The tensors the shared part of a gated-delta layer reads, by name.
pub(super) struct DeltaTensors<'a> {
    /// beta's and the decay's projections, `[nv, D]`.
    pub(super) b: &'a str,
    pub(super) a: &'a str,
    pub(super) a_log: &'a str,
    pub(super) dt_bias: &'a str,
    /// The output gate z, `[nv dv, D]`.
    pub(super) z: &'a str,
    /// The gated RMSNorm's weight, `[dv]`.
    pub(super) norm: &'a str,
    /// The output projection, `[D, nv dv]`.
    pub(super) out: &'a str,
}

impl CpuModel {
    /// Layer `l`'s gated-delta mixer (Qwen3.5) over the normed rows `h`,
    /// continued from `state`; the output `[n, D]`, projected by `out_proj`.
    pub(super) fn gated_delta(&self, l: usize, h: &[f32], state: &mut GdnState) -> Vec<f32> {
        let a = &self.arch;
        let g = &a.gdn;
        let d = a.hidden_size as usize;
        let c = g.conv_channels() as usize;
        let t = &self.names[l].gdn;
        let qkv = linear(h, self.t(&t.in_qkv), d, c);
        let w = self.t(&t.conv);
        let qkv = causal_conv(&qkv, |_| w, c, g.conv_kernel as usize, &mut state.conv);
        let tensors = DeltaTensors {
            b: &t.in_b,
            a: &t.in_a,
            a_log: &t.a_log,
            dt_bias: &t.dt_bias,
            z: &t.in_z,
            norm: &t.norm,
            out: &t.out,
        };
        self.delta_rule_layer(h, qkv, &tensors, &mut state.s)
    }

    /// What every gated-delta layer does once its front end has made each
    /// row's q, k and v (`qkv`, `[n, 2 nk dk + nv dv]`, side by side): q
    /// and k L2-normed per key head and q scaled by dk^-1/2, beta and the
    /// decay from the normed rows `h`, the recurrence continued from `s`,
    /// the gated RMSNorm with z, and the output projection; `[n, D]`.
    pub(super) fn delta_rule_layer(
        &self,
        h: &[f32],
        mut qkv: Vec<f32>,
        t: &DeltaTensors,
        s: &mut [f32],
    ) -> Vec<f32> {
        let a = &self.arch;
        let g = &a.gdn;
        let d = a.hidden_size as usize;
        let (nk, nv, dk, dv) = (
            g.key_heads as usize,
            g.value_heads as usize,
            g.key_dim as usize,
            g.value_dim as usize,
        );
        let (c, width) = (g.conv_channels() as usize, g.value_width() as usize);
        let n = h.len() / d;
        let z = linear(h, self.t(t.z), d, width);
        let b = linear(h, self.t(t.b), d, nv);
        let alpha = linear(h, self.t(t.a), d, nv);
        let (a_log, dt_bias) = (self.t(t.a_log), self.t(t.dt_bias));

        // q and k: L2-normed per key head; q also scaled by dk^-1/2.
        let (qk_width, scale) = (nk * dk, inv_sqrt(dk));
        for row in qkv.chunks_mut(c) {
            l2norm_pieces(&mut row[..2 * qk_width], dk);
            row[..qk_width].iter_mut().for_each(|x| *x *= scale);
        }
        let group = nv / nk;
        let mut o = vec![0.0f32; n * width];
        for i in 0..n {
            let row = &qkv[i * c..][..c];
            for j in 0..nv {
                let kh = j / group;
                let q = &row[kh * dk..][..dk];
                let k = &row[qk_width + kh * dk..][..dk];
                let v = &row[2 * qk_width + j * dv..][..dv];
                let beta = sigmoid(b[i * nv + j]);
                let decay = (-a_log[j].exp() * softplus(alpha[i * nv + j] + dt_bias[j])).exp();
                let s = &mut s[j * dk * dv..][..dk * dv];
                delta_step(s, decay, beta, q, k, v, &mut o[(i * nv + j) * dv..][..dv]);
            }
        }
        gated_rmsnorm(&mut o, self.t(t.norm), &z, a.gdn_norm_eps);
        linear(&o, self.t(t.out), width, d)
    }
}

/// y_t[c] = silu(sum_w W_t[c, w] x_{t-K+1+w}[c]) over the inputs `x`
/// `[n, C]` preceded by the K-1 in `history`, which then holds the last
/// K-1 inputs. `kernel(t)` is token t's kernel `[C, K]` (channel-major):
/// the same for every token in Qwen3.5, generated per token in a JetBlock.
pub(super) fn causal_conv<'a>(
    x: &[f32],
    kernel: impl Fn(usize) -> &'a [f32],
    c: usize,
    k: usize,
    history: &mut Vec<f32>,
) -> Vec<f32> {
    let mut all = std::mem::take(history);
    all.extend_from_slice(x);
    let n = x.len() / c;
    let mut y = vec![0.0f32; n * c];
    for t in 0..n {
        let w = kernel(t);
        // input row t of x is row t + K-1 of `all`; its window starts at row t.
        for ch in 0..c {
            let sum: f32 = (0..k)
                .map(|tap| w[ch * k + tap] * all[(t + tap) * c + ch])
                .sum();
            y[t * c + ch] = silu(sum);
        }
    }
    *history = all.split_off(all.len() - (k - 1) * c);
    y
}

/// One token of one value head: S = S exp(g); u = beta (v - S^T k);
/// S = S + k u^T; o = S^T q.
fn delta_step(
    s: &mut [f32],
    decay: f32,
    beta: f32,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    o: &mut [f32],
) {
    let dv = v.len();
    s.iter_mut().for_each(|x| *x *= decay);
    let mut u = v.to_vec();
    for (row, ki) in s.chunks(dv).zip(k) {
        u.iter_mut().zip(row).for_each(|(u, s)| *u -= ki * s);
    }
    u.iter_mut().for_each(|u| *u *= beta);
    for (row, ki) in s.chunks_mut(dv).zip(k) {
        row.iter_mut().zip(&u).for_each(|(s, u)| *s += ki * u);
    }
    for (row, qi) in s.chunks(dv).zip(q) {
        o.iter_mut().zip(row).for_each(|(o, s)| *o += qi * s);
    }
}

/// Per value head (width `w.len()`): o / rms(o) * w * silu(z).
fn gated_rmsnorm(o: &mut [f32], w: &[f32], z: &[f32], eps: f64) {
    for (head, z) in o.chunks_mut(w.len()).zip(z.chunks(w.len())) {
        let ms = head.iter().map(|v| v * v).sum::<f32>() / head.len() as f32;
        let inv = 1.0 / (ms + eps as f32).sqrt();
        head.iter_mut()
            .zip(w)
            .zip(z)
            .for_each(|((o, w), z)| *o = w * (*o * inv) * silu(*z));
    }
}
