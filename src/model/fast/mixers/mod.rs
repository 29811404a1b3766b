//! The CPU engine's token mixers, one file each, and the one place that
//! maps a layer's `Mixer` to its state, its extra tensors and its forward.
//! Adding a mixer here means: a file with its `FastModel` forward, a
//! `SeqLayer` variant, and an arm in each `match` below. A mixer of the
//! attention kind (q, k, v projections, heads normed and rotated as its
//! settings say) takes its heads prepared by `qkv_mixer` and adds only its
//! core to `attend`; any other mixer's arm in `mix` calls its own forward.

pub(super) mod lightning;
pub(super) mod softmax;

use super::{FastModel, FastSeq, Layer, Pass, Span};
use crate::config::{Arch, Mixer};
use crate::names::LayerNames;

/// What one layer of one sequence keeps between steps.
#[derive(Clone)]
pub(super) enum SeqLayer {
    /// Keys and values `[pos, kv_heads * dh]`, and with capture the queries
    /// and log-sum-exps.
    Softmax { k: Vec<f32>, v: Vec<f32>, capture: Option<(Vec<f32>, Vec<f32>)> },
    /// S_h for every query head, `[nh, dl, dl]`.
    Lightning(Vec<f32>),
}

impl SeqLayer {
    /// A layer's state before any token.
    pub(super) fn new(arch: &Arch, mixer: Mixer, capture: bool) -> SeqLayer {
        match mixer {
            Mixer::Softmax => SeqLayer::Softmax { k: Vec::new(), v: Vec::new(), capture: capture.then(Default::default) },
            Mixer::Lightning => {
                let l = &arch.lightning;
                SeqLayer::Lightning(vec![0.0; (l.heads * l.head_dim * l.head_dim) as usize])
            }
        }
    }
}

/// The projection whose sigmoid gates the mixer's output, when on.
pub(super) fn output_gate(arch: &Arch, mixer: Mixer, n: &LayerNames) -> Option<String> {
    match mixer {
        Mixer::Softmax if arch.attn_use_output_gate => Some(n.o_gate.clone()),
        Mixer::Lightning if arch.lightning_use_output_gate => Some(n.z_proj.clone()),
        _ => None,
    }
}

/// The RMSNorm over the mixer's whole output width, when on.
pub(super) fn output_norm(arch: &Arch, mixer: Mixer, n: &LayerNames) -> Option<String> {
    (mixer == Mixer::Lightning && arch.lightning_use_output_norm).then(|| n.o_norm.clone())
}

impl FastModel {
    /// x += layer `l`'s mixer over every sequence's rows (normed in `h`).
    pub(super) fn mix(&self, l: usize, layer: &Layer, h: &[f32], pass: &Pass, seqs: &mut [&mut FastSeq], x: &mut [f32]) {
        match layer.mixer {
            Mixer::Softmax | Mixer::Lightning => self.qkv_mixer(l, layer, h, pass, seqs, x),
        }
    }

    /// The core of a mixer of the attention kind (see `qkv_mixer`): layer `l`'s mixer over prepared heads `q`, `k`, `v` of every
    /// sequence's rows, advancing their states; o `[rows, q width]`.
    pub(super) fn attend(&self, l: usize, mixer: Mixer, [q, k, v]: [&[f32]; 3], spans: &[Span], seqs: &mut [&mut FastSeq]) -> Vec<f32> {
        match mixer {
            Mixer::Softmax => self.softmax_attention(l, q, k, v, spans, seqs),
            Mixer::Lightning => self.lightning(l, q, k, v, spans, seqs),
        }
    }
}
