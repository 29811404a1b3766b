//! The reference's token mixers, one file each, and the one place that
//! maps a layer's `Mixer` to its state and its forward. Adding a mixer
//! here means: a file with its state and `CpuModel::<mixer>` forward
//! (written as the spec's formulas), a `LayerState` variant, and an arm in
//! each `match` below. Nothing in the driver (`step.rs`) names a mixer.

pub(super) mod gated_delta;
pub(super) mod lightning;
pub(super) mod softmax;

use super::model::CpuModel;
use super::sequence::LayerKeeps;
use crate::config::{Arch, Mixer};
use gated_delta::GdnState;
use softmax::{Capture, Captured, KvCache};

#[derive(Clone)]
pub enum LayerState {
    Softmax(KvCache),
    /// S_h for every query head, `[nh, dl, dl]`; `S_h[i][j]`: i over the key
    /// dim, j over the value dim. Per query head, not per kv head, because
    /// the decay gamma_h belongs to the query head.
    Lightning(Vec<f32>),
    GatedDelta(GdnState),
}

impl LayerState {
    /// A layer's state before any token: an empty cache, a zero state.
    pub(super) fn new(arch: &Arch, mixer: Mixer, capture: bool) -> LayerState {
        match mixer {
            Mixer::Softmax => LayerState::Softmax(KvCache {
                k: Vec::new(),
                v: Vec::new(),
                capture: capture.then(Capture::default),
            }),
            Mixer::Lightning => {
                let (nh, dl) = (
                    arch.lightning.heads as usize,
                    arch.lightning.head_dim as usize,
                );
                LayerState::Lightning(vec![0.0; nh * dl * dl])
            }
            Mixer::GatedDelta => {
                let g = &arch.gdn;
                LayerState::GatedDelta(GdnState {
                    s: vec![0.0; (g.value_heads * g.key_dim * g.value_dim) as usize],
                    conv: vec![0.0; ((g.conv_kernel - 1) * g.conv_channels()) as usize],
                })
            }
            Mixer::Jet => unreachable!("refused by Engine::load until the engines run JetBlocks"),
        }
    }

    /// Whether this state belongs to a `mixer` layer of `arch` after `pos` tokens.
    pub(super) fn fits(&self, arch: &Arch, mixer: Mixer, pos: usize) -> bool {
        match (self, mixer) {
            (LayerState::Softmax(c), Mixer::Softmax) => {
                c.k.len() == pos * (arch.attn.kv_heads * arch.attn.head_dim) as usize
            }
            (LayerState::Lightning(s), Mixer::Lightning) => {
                s.len()
                    == (arch.lightning.heads * arch.lightning.head_dim * arch.lightning.head_dim)
                        as usize
            }
            (LayerState::GatedDelta(st), Mixer::GatedDelta) => {
                let g = &arch.gdn;
                st.s.len() == (g.value_heads * g.key_dim * g.value_dim) as usize
                    && st.conv.len() == ((g.conv_kernel - 1) * g.conv_channels()) as usize
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
}

impl CpuModel {
    /// Layer `l`'s mixer over the normed rows `h` at positions `pos0..`,
    /// advancing its state; the output `[n, D]`, already projected.
    pub(super) fn mix(&self, l: usize, h: &[f32], pos0: usize, state: &mut LayerState) -> Vec<f32> {
        match state {
            LayerState::Softmax(cache) => self.softmax_attention(l, h, pos0, cache),
            LayerState::Lightning(s) => self.lightning_attention(l, h, pos0, s),
            LayerState::GatedDelta(s) => self.gated_delta(l, h, s),
        }
    }
}
