//! The reference's token mixers, one file each, and the one place that
//! maps a layer's `Mixer` to its state and its forward. Adding a mixer
//! here means: a file with its state and `CpuModel::<mixer>` forward
//! (written as the spec's formulas), a `LayerState` variant, and an arm in
//! each `match` below. Nothing in the driver (`step.rs`) names a mixer.

pub(super) mod gated_delta;
pub(super) mod jet;
pub(super) mod lightning;
pub(super) mod softmax;

use std::ops::Range;

use super::model::CpuModel;
use super::sequence::LayerKeeps;
use crate::config::{Arch, Mixer};
use gated_delta::GdnState;
use softmax::{Captured, KvCache};

#[derive(Clone)]
pub enum LayerState {
    Softmax(KvCache),
    /// S_h for every query head, `[nh, dl, dl]`; `S_h[i][j]`: i over the key
    /// dim, j over the value dim. Per query head, not per kv head, because
    /// the decay gamma_h belongs to the query head.
    Lightning(Vec<f32>),
    GatedDelta(GdnState),
    /// A JetBlock: the gated delta rule's state and its dynamic
    /// convolution's last inputs.
    Jet(GdnState),
}

impl LayerState {
    /// Layer `l`'s state before any token: an empty cache, a zero state.
    pub(super) fn new(arch: &Arch, l: usize, capture: bool) -> LayerState {
        match arch.mixers[l] {
            Mixer::Softmax => LayerState::Softmax(KvCache::new(arch.window(l), capture)),
            Mixer::Lightning => {
                let (nh, dl) = (
                    arch.lightning.heads as usize,
                    arch.lightning.head_dim as usize,
                );
                LayerState::Lightning(vec![0.0; nh * dl * dl])
            }
            Mixer::GatedDelta => LayerState::GatedDelta(GdnState::new(arch, Mixer::GatedDelta)),
            Mixer::Jet => LayerState::Jet(GdnState::new(arch, Mixer::Jet)),
        }
    }

    /// Whether this state belongs to a `mixer` layer of `arch` after `pos` tokens.
    pub(super) fn fits(&self, arch: &Arch, mixer: Mixer, pos: usize) -> bool {
        match (self, mixer) {
            (LayerState::Softmax(c), Mixer::Softmax) => {
                c.fits((arch.attn.kv_heads * arch.attn.head_dim) as usize, pos)
            }
            (LayerState::Lightning(s), Mixer::Lightning) => {
                s.len()
                    == (arch.lightning.heads * arch.lightning.head_dim * arch.lightning.head_dim)
                        as usize
            }
            (LayerState::GatedDelta(st), Mixer::GatedDelta) | (LayerState::Jet(st), Mixer::Jet) => {
                st.fits(arch, mixer)
            }
            _ => false,
        }
    }
}

impl LayerKeeps for LayerState {
    fn captured(&self, pos: usize, dims: (usize, usize, usize)) -> Option<Captured<'_>> {
        let LayerState::Softmax(cache) = self else {
            return None;
        };
        cache.captured(pos, dims)
    }

    fn lightning_state(&self) -> Option<&[f32]> {
        let LayerState::Lightning(s) = self else {
            return None;
        };
        Some(s)
    }

    fn cached(&self, (_, kv_heads, head_dim): (usize, usize, usize)) -> Option<Range<usize>> {
        let LayerState::Softmax(cache) = self else {
            return None;
        };
        Some(cache.cached(kv_heads * head_dim))
    }
}

impl CpuModel {
    /// Layer `l`'s mixer over the normed rows `h` at positions `pos0..`,
    /// advancing its state; the output `[n, D]`, already projected.
    pub(super) fn mix(&self, l: usize, h: &[f32], pos0: usize, state: &mut LayerState) -> Vec<f32> {
        match state {
            LayerState::Softmax(cache) => self.softmax_attention(l, h, pos0, cache),
            LayerState::Lightning(s) => self.lightning_attention(l, h, pos0, s),
            LayerState::GatedDelta(s) => self.gated_delta(l, h, s),
            LayerState::Jet(s) => self.jet_block(l, h, s),
        }
    }
}
