//! The reference's forward: a step of new tokens through every layer
//! against a state, and greedy decoding on top of it.

use super::math::{add, argmax, linear, rmsnorm_rows};
use super::mixers::LayerState;
use super::model::CpuModel;
use super::state::CpuState;
use crate::error::{Error, Result};
use crate::model::mixer::check_finite;

impl CpuModel {
    /// An empty state (position 0). `capture` keeps the softmax layers'
    /// queries and log-sum-exps for [`CpuState::captured`]; it costs
    /// `(heads * head_dim + heads)` floats per position and softmax layer.
    pub fn new_state(&self, capture: bool) -> CpuState {
        let a = &self.arch;
        let layers = (0..a.num_layers())
            .map(|l| LayerState::new(a, l, capture))
            .collect();
        let attn_dims = (
            a.attn.heads as usize,
            a.attn.kv_heads as usize,
            a.attn.head_dim as usize,
        );
        CpuState {
            pos: 0,
            layers,
            attn_dims,
        }
    }

    /// Logits `[T, V]` (row-major) for `ids` at positions 0..T.
    pub fn forward(&self, ids: &[u32]) -> Result<Vec<f32>> {
        self.step(&mut self.new_state(false), ids)
    }

    /// Runs `ids` at absolute positions `pos .. pos + n` of `state`, each
    /// token attending to everything before it (cache and new tokens), and
    /// returns their logits `[n, V]` (row-major). On error the state is left
    /// as it was, but for `Error::BrokeNumerically`, after which it is of no use.
    pub fn step(&self, state: &mut CpuState, ids: &[u32]) -> Result<Vec<f32>> {
        let a = &self.arch;
        let (d, v) = (a.hidden_size as usize, a.vocab_size as usize);
        // Every check comes before the first layer writes to the state, so a
        // failed step never leaves it half-advanced.
        self.check_state(state)?;
        let mut x = self.embed(ids)?; // (n, D)
        let pos0 = state.pos;
        for (l, layer) in state.layers.iter_mut().enumerate() {
            let n = &self.names[l];
            // x = x + mixer(rmsnorm(x, input_layernorm))
            let h = rmsnorm_rows(&x, self.t(&n.input_norm), a.rms_norm_eps);
            let y = self.mix(l, &h, pos0, layer);
            add(&mut x, &y);
            // x = x + mlp(rmsnorm(x, post_attention_layernorm))
            let h = rmsnorm_rows(&x, self.t(&n.post_norm), a.rms_norm_eps);
            add(&mut x, &self.mlp(l, &h));
            check_finite(a, Some(l), &x)?;
        }
        state.pos += ids.len();
        let h = rmsnorm_rows(&x, self.t(&a.final_norm_name()), a.rms_norm_eps);
        let head = self.t(&a.head_name());
        let logits = linear(&h, head, d, v);
        check_finite(a, None, &logits)?;
        Ok(logits)
    }

    /// Greedy decoding as `generate` in reference/hypenet.py: step the
    /// prompt, then feed back the argmax of the last row until `n` tokens
    /// or a token in `stop` (returned, last). Like upstream, the last token
    /// returned is not run through the model (its logits would go unused):
    /// afterwards `state.pos()` has grown by `prompt.len() + out.len() - 1`
    /// (by `prompt.len()` when `n == 0`), so continue by passing that last
    /// token as the next prompt.
    pub fn generate_greedy(
        &self,
        state: &mut CpuState,
        prompt: &[u32],
        n: usize,
        stop: &[u32],
    ) -> Result<Vec<u32>> {
        if prompt.is_empty() {
            return Err(Error::Usage(
                "greedy generation needs at least one prompt token".into(),
            ));
        }
        let v = self.arch.vocab_size as usize;
        let mut logits = self.step(state, prompt)?;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let tok = argmax(&logits[logits.len() - v..]);
            out.push(tok);
            if stop.contains(&tok) || out.len() == n {
                break;
            }
            logits = self.step(state, &[tok])?;
        }
        Ok(out)
    }

    /// A state from another model (other layer kinds or sizes) would index
    /// out of bounds or, worse, silently mix models.
    fn check_state(&self, state: &CpuState) -> Result<()> {
        let a = &self.arch;
        let fits = state.layers.len() == a.mixers.len()
            && state
                .layers
                .iter()
                .zip(&a.mixers)
                .all(|(layer, &mixer)| layer.fits(a, mixer, state.pos));
        if fits {
            Ok(())
        } else {
            Err(Error::Usage(
                "this decoding state was made for a different model".into(),
            ))
        }
    }

    /// x = embed[ids]                                   (n, D)
    fn embed(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let (d, v) = (
            self.arch.hidden_size as usize,
            self.arch.vocab_size as usize,
        );
        let embed = self.t(&self.arch.embed_name());
        let mut x = Vec::with_capacity(ids.len() * d);
        for &id in ids {
            let id = id as usize;
            if id >= v {
                return Err(Error::Usage(format!(
                    "token id {id} is outside the vocabulary ({v})"
                )));
            }
            x.extend_from_slice(&embed[id * d..(id + 1) * d]);
        }
        Ok(x)
    }

    /// down_proj(silu(gate_proj(x)) * up_proj(x))
    fn mlp(&self, l: usize, h: &[f32]) -> Vec<f32> {
        let (d, i) = (
            self.arch.hidden_size as usize,
            self.arch.intermediate_size as usize,
        );
        let n = &self.names[l];
        let gate = linear(h, self.t(&n.mlp_gate), d, i);
        let up = linear(h, self.t(&n.mlp_up), d, i);
        let act: Vec<f32> = gate
            .iter()
            .zip(&up)
            .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
            .collect();
        linear(&act, self.t(&n.mlp_down), i, d)
    }
}
