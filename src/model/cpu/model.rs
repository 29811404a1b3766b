//! The reference's weights, decoded to f32 by tensor name, and what every
//! layer does with them the same way: q/k/v projections and their heads'
//! preparation, the output gate and projection.

use std::collections::HashMap;

use super::math::{add, linear, norm_heads, rope};
use crate::checkpoint::Checkpoint;
use crate::config::gate::check_tensors;
use crate::config::{Arch, Mixer};
use crate::error::{Error, Result};
use crate::model::mixer::rope_on;
use crate::model::weights;
use crate::names::LayerNames;
use crate::source::ByteSource;

/// All weights decoded to f32, by tensor name.
pub struct CpuModel {
    pub arch: Arch,
    pub(super) w: HashMap<String, Vec<f32>>,
    /// Each layer's tensor names.
    pub(super) names: Vec<LayerNames>,
}

impl CpuModel {
    /// Decodes every tensor the architecture names (BF16/F16/F32), as the
    /// engines compute with them ([`weights`]).
    pub async fn load<S: ByteSource>(ck: &Checkpoint<S>, arch: Arch) -> Result<CpuModel> {
        check_tensors(&arch, &ck.tensors)?;
        let mut w = HashMap::new();
        for name in weights::engine_tensors(&arch) {
            let values = weights::read(ck, &arch, &name, "the CPU model").await?;
            w.insert(name, values);
        }
        let names = (0..arch.num_layers())
            .map(|l| arch.layer_names(l))
            .collect();
        Ok(CpuModel { arch, w, names })
    }

    /// Swaps one weight for another of the same size, e.g. to build a merged
    /// model (QK-Restore) from a second checkpoint without writing it out.
    pub fn replace_tensor(&mut self, name: &str, values: Vec<f32>) -> Result<()> {
        let w = self.w.get_mut(name).ok_or_else(|| Error::NoSuchTensor {
            tensor: name.into(),
        })?;
        if w.len() != values.len() {
            return Err(Error::Usage(format!(
                "tensor {name:?} holds {} values, the replacement {}",
                w.len(),
                values.len()
            )));
        }
        *w = values;
        Ok(())
    }

    pub(super) fn t(&self, name: &str) -> &[f32] {
        &self.w[name]
    }

    pub(super) fn opt(&self, name: &str) -> Option<&[f32]> {
        self.w.get(name).map(Vec::as_slice)
    }

    /// Layer `l`'s q, k, v (+ biases) for a `mixer` layer, with the
    /// per-head q/k RMSNorm and RoPE its settings turn on: every mixer
    /// prepares its heads this one way. Rows of `h` sit at `pos0..`.
    pub(super) fn heads_qkv(
        &self,
        l: usize,
        h: &[f32],
        pos0: usize,
        mixer: Mixer,
    ) -> [Vec<f32>; 3] {
        let a = &self.arch;
        let (d, heads) = (a.hidden_size as usize, a.heads(mixer));
        let (nq, nkv, dh) = (
            heads.heads as usize,
            heads.kv_heads as usize,
            heads.head_dim as usize,
        );
        let proj = |p: &crate::names::Linear, width: usize| {
            let mut y = linear(h, self.t(&p.weight), d, width);
            if let Some(b) = self.opt(&p.bias) {
                y.chunks_mut(width).for_each(|row| add(row, b));
            }
            y
        };
        let n = &self.names[l];
        let (mut q, mut k, v) = (
            proj(&n.q, nq * dh),
            proj(&n.k, nkv * dh),
            proj(&n.v, nkv * dh),
        );
        if a.qk_norm(mixer) {
            norm_heads(&mut q, self.t(&n.q_norm), dh, a.rms_norm_eps);
            norm_heads(&mut k, self.t(&n.k_norm), dh, a.rms_norm_eps);
        }
        if rope_on(a, mixer) {
            let inv_freq = a.rope_inv_freq(dh as u64);
            rope(&mut q, nq * dh, dh, &inv_freq, pos0);
            rope(&mut k, nkv * dh, dh, &inv_freq, pos0);
        }
        [q, k, v]
    }

    /// o_proj(o), with its bias when the model has one.
    pub(super) fn out_proj(&self, l: usize, o: &[f32], width: usize) -> Vec<f32> {
        let d = self.arch.hidden_size as usize;
        let p = &self.names[l].o;
        let mut y = linear(o, self.t(&p.weight), width, d);
        if let Some(b) = self.opt(&p.bias) {
            y.chunks_mut(d).for_each(|row| add(row, b));
        }
        y
    }

    /// o *= sigmoid(gate(h)) for the named gate projection.
    pub(super) fn gate(&self, o: &mut [f32], h: &[f32], name: &str, width: usize) {
        let g = linear(h, self.t(name), self.arch.hidden_size as usize, width);
        o.iter_mut()
            .zip(&g)
            .for_each(|(o, g)| *o /= 1.0 + (-g).exp());
    }
}
