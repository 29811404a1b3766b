//! The CPU engine's token mixers, one file each, and the one place that
//! maps a layer's `Mixer` to its state and its forward. Adding a mixer
//! here means: a file with its `FastModel` forward over its own state, a
//! `SeqLayer` variant, and an arm in each `match` below. A mixer of the
//! attention kind (q, k, v projections, heads normed and rotated as its
//! settings say) takes its heads prepared by `qkv_mixer` (`step.rs`) and
//! adds only its core to `attend`; any other mixer's arm in `mix` calls
//! its own forward.

pub(super) mod gated_delta;
pub(super) mod jet;
pub(super) mod lightning;
pub(super) mod softmax;

use std::ops::Range;

use super::model::{FastModel, Layer};
use super::pass::{Pass, Span};
use crate::config::{Arch, Mixer};
use crate::model::cpu::{Captured, LayerKeeps};
use gated_delta::GdnState;
use softmax::KvCache;

/// What one layer of one sequence keeps between steps.
#[derive(Clone)]
pub enum SeqLayer {
    Softmax(KvCache),
    /// S_h for every query head, `[nh, dl, dl]`.
    Lightning(Vec<f32>),
    GatedDelta(GdnState),
    /// A JetBlock: the gated delta rule's state and its dynamic
    /// convolution's last inputs.
    Jet(GdnState),
}

impl SeqLayer {
    /// Layer `l`'s state before any token.
    pub(super) fn new(arch: &Arch, l: usize, capture: bool) -> SeqLayer {
        match arch.mixers[l] {
            Mixer::Softmax => SeqLayer::Softmax(KvCache::new(arch.window(l), capture)),
            Mixer::Lightning => {
                let l = &arch.lightning;
                SeqLayer::Lightning(vec![0.0; (l.heads * l.head_dim * l.head_dim) as usize])
            }
            Mixer::GatedDelta => SeqLayer::GatedDelta(GdnState::new(arch, Mixer::GatedDelta)),
            Mixer::Jet => SeqLayer::Jet(GdnState::new(arch, Mixer::Jet)),
        }
    }
}

impl LayerKeeps for SeqLayer {
    fn captured(&self, pos: usize, dims: (usize, usize, usize)) -> Option<Captured<'_>> {
        let SeqLayer::Softmax(cache) = self else {
            return None;
        };
        cache.captured(pos, dims)
    }

    fn lightning_state(&self) -> Option<&[f32]> {
        let SeqLayer::Lightning(s) = self else {
            return None;
        };
        Some(s)
    }

    fn cached(&self, (_, kv_heads, head_dim): (usize, usize, usize)) -> Option<Range<usize>> {
        let SeqLayer::Softmax(cache) = self else {
            return None;
        };
        Some(cache.cached(kv_heads * head_dim))
    }
}

/// The states of one layer across a step's sequences, as `T` (one
/// mixer's own state). Every sequence's layer `l` was made by `SeqLayer::new`
/// for the same model, so all are of the layer's mixer.
fn states_of<'a, T>(
    states: &'a mut [&mut SeqLayer],
    of: impl Fn(&'a mut SeqLayer) -> Option<&'a mut T>,
) -> Vec<&'a mut T> {
    states
        .iter_mut()
        .map(|s| {
            of(s).expect("a layer's states are all of its mixer (made by new_seq for this model)")
        })
        .collect()
}

impl FastModel {
    /// x += a layer's mixer over every sequence's rows (normed in `h`).
    pub(super) fn mix(
        &self,
        layer: &Layer,
        h: &[f32],
        pass: &Pass,
        states: &mut [&mut SeqLayer],
        x: &mut [f32],
    ) {
        match layer.mixer {
            Mixer::Softmax | Mixer::Lightning => self.qkv_mixer(layer, h, pass, states, x),
            Mixer::GatedDelta => {
                let mut s = states_of(states, |s| match s {
                    SeqLayer::GatedDelta(st) => Some(st),
                    _ => None,
                });
                self.gated_delta(layer, h, pass.spans, &mut s, x)
            }
            Mixer::Jet => {
                let mut s = states_of(states, |s| match s {
                    SeqLayer::Jet(st) => Some(st),
                    _ => None,
                });
                self.jet_block(layer, h, pass.spans, &mut s, x)
            }
        }
    }

    /// The core of a mixer of the attention kind over prepared heads `q`,
    /// `k`, `v` of every sequence's rows, advancing their states; o
    /// `[rows, q width]`.
    pub(super) fn attend(
        &self,
        mixer: Mixer,
        [q, k, v]: [&[f32]; 3],
        spans: &[Span],
        states: &mut [&mut SeqLayer],
    ) -> Vec<f32> {
        match mixer {
            Mixer::Softmax => {
                let mut caches = states_of(states, |s| match s {
                    SeqLayer::Softmax(c) => Some(c),
                    _ => None,
                });
                self.softmax_attention(q, k, v, spans, &mut caches)
            }
            Mixer::Lightning => {
                let mut s = states_of(states, |s| match s {
                    SeqLayer::Lightning(st) => Some(st),
                    _ => None,
                });
                self.lightning(q, k, v, spans, &mut s)
            }
            Mixer::GatedDelta | Mixer::Jet => unreachable!("not a mixer of the attention kind"),
        }
    }
}
