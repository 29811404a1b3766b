//! The CPU engine's weights: every tensor in f32, each layer's q, k, v and
//! gate projections fused into one matrix, gate and up likewise, so that
//! one product serves them all (a gated-delta layer's in_proj_qkv, z, b
//! and a rows likewise; a JetBlock's q, k, v, g, b, a and kernel
//! generator's first rows).

use crate::checkpoint::Checkpoint;
use crate::config::gate::check_tensors;
use crate::config::{Arch, Mixer};
use crate::error::{Error, Result};
use crate::model::cpu::alibi_slopes;
use crate::model::mixer::{output_gate, output_norm};
use crate::names;
use crate::source::ByteSource;

/// One layer's weights, f32, projections fused so that one product serves all.
pub(super) struct Layer {
    pub(super) input_norm: Vec<f32>,
    pub(super) post_norm: Vec<f32>,
    /// q, k, v and the output gate (o_gate or z_proj) rows, `[q + 2 kv + gate, D]`.
    pub(super) qkvg: Vec<f32>,
    /// Biases of q, k, v (`[q + 2 kv]`), where the model has them.
    pub(super) qkv_bias: Option<Vec<f32>>,
    pub(super) q_norm: Option<Vec<f32>>,
    pub(super) k_norm: Option<Vec<f32>>,
    /// Lightning's output norm.
    pub(super) o_norm: Option<Vec<f32>>,
    pub(super) o: Vec<f32>,
    pub(super) o_bias: Option<Vec<f32>>,
    /// gate_proj then up_proj rows, `[2 I, D]`.
    pub(super) mlp_in: Vec<f32>,
    pub(super) mlp_down: Vec<f32>,
    pub(super) mixer: Mixer,
    /// Widths of q, of k (= v) and of the gate (0 without one).
    pub(super) q_width: usize,
    pub(super) kv_width: usize,
    pub(super) gate_width: usize,
    /// A gated-delta layer's own weights; its fused projection is `qkvg`
    /// (in_proj_qkv, in_proj_z, in_proj_b, in_proj_a rows; a JetBlock's
    /// q_proj, k_proj, v_proj, g_proj, b_proj, a_proj, then the kernel
    /// generator's w1), out_proj (o_proj) is `o`.
    pub(super) gdn: Option<GdnWeights>,
}

/// The weights of a gated-delta layer beside its fused projection.
pub(super) struct GdnWeights {
    pub(super) conv: Conv,
    /// -exp(A_log) per value head: the decay's rate, so that
    /// g = rate * softplus(a + dt_bias).
    pub(super) rate: Vec<f32>,
    pub(super) dt_bias: Vec<f32>,
    /// The gated RMSNorm's weight, `[dv]`.
    pub(super) norm: Vec<f32>,
}

/// A gated-delta layer's causal convolution, its taps tap-major so that a
/// tap runs over contiguous channels.
pub(super) enum Conv {
    /// Qwen3.5's depthwise convolution over q, k and v, `[K, C]` (stored
    /// `[C, 1, K]`).
    Static(Vec<f32>),
    /// A JetBlock's over v, its taps made per token as
    /// `w2 silu(w1 x) + b2`: `w2`'s rows and `b2` reordered tap-major,
    /// `[K C, G]` and `[K C]` (stored channel-major, row `c K + w`).
    Dynamic { w2: Vec<f32>, b2: Vec<f32> },
}

/// Rows `c K + w` of a matrix of `cols` columns (channel-major, K taps a
/// channel) reordered as rows `w C + c` (tap-major).
fn tap_major(m: &[f32], taps: usize, cols: usize) -> Vec<f32> {
    let channels = m.len() / cols / taps;
    (0..taps)
        .flat_map(|w| (0..channels).map(move |c| (c * taps + w) * cols))
        .flat_map(|r| &m[r..r + cols])
        .copied()
        .collect()
}

/// `[rows, cols]` from `[cols, rows]`, `cols` values per stored row.
fn transpose(m: &[f32], cols: usize) -> Vec<f32> {
    let rows = m.len() / cols;
    (0..cols)
        .flat_map(|j| (0..rows).map(move |i| m[i * cols + j]))
        .collect()
}

/// All weights of a model in f32, laid out for the batched products.
pub struct FastModel {
    pub arch: Arch,
    pub(super) embed: Vec<f32>,
    pub(super) final_norm: Vec<f32>,
    /// The untied LM head; None when it is the embedding.
    pub(super) lm_head: Option<Vec<f32>>,
    pub(super) layers: Vec<Layer>,
    /// Lightning's per-head decay gamma_h = exp(-slope_h).
    pub(super) gammas: Vec<f32>,
}

impl FastModel {
    pub async fn load<S: ByteSource>(ck: &Checkpoint<S>, arch: Arch) -> Result<FastModel> {
        check_tensors(&arch, &ck.tensors)?;
        let arch_ref = &arch;
        let read = |name: String| async move {
            crate::model::weights::read(ck, arch_ref, &name, "the CPU engine").await
        };
        let embed = read(arch.embed_name()).await?;
        let final_norm = read(arch.final_norm_name()).await?;
        let lm_head = if arch.tie_word_embeddings {
            None
        } else {
            Some(read(names::LM_HEAD.into()).await?)
        };
        let mut layers = Vec::with_capacity(arch.num_layers());
        for (l, &mixer) in arch.mixers.iter().enumerate() {
            let n = arch.layer_names(l);
            if matches!(mixer, Mixer::GatedDelta | Mixer::Jet) {
                let (t, j) = (&n.gdn, &n.jet);
                // The fused projection's rows, in the order Dims reads them:
                // q, k, v; z; b; a (then a JetBlock's generator's w1).
                let (fused, a_log, dt_bias, norm, out) = if mixer == Mixer::Jet {
                    (
                        vec![
                            &n.q.weight,
                            &n.k.weight,
                            &n.v.weight,
                            &j.g_proj,
                            &j.b_proj,
                            &j.a_proj,
                            &j.gen_w1,
                        ],
                        &j.a_log,
                        &j.dt_bias,
                        &n.o_norm,
                        &n.o.weight,
                    )
                } else {
                    (
                        vec![&t.in_qkv, &t.in_z, &t.in_b, &t.in_a],
                        &t.a_log,
                        &t.dt_bias,
                        &t.norm,
                        &t.out,
                    )
                };
                let mut qkvg = Vec::new();
                for name in fused {
                    qkvg.extend(read(name.clone()).await?);
                }
                let taps = arch.gdn.conv_kernel as usize;
                let conv = if mixer == Mixer::Jet {
                    let hidden = arch.gdn.generator as usize;
                    Conv::Dynamic {
                        w2: tap_major(&read(j.gen_w2.clone()).await?, taps, hidden),
                        b2: tap_major(&read(j.gen_b2.clone()).await?, taps, 1),
                    }
                } else {
                    Conv::Static(transpose(&read(t.conv.clone()).await?, taps))
                };
                let mut mlp_in = read(n.mlp_gate.clone()).await?;
                mlp_in.extend(read(n.mlp_up.clone()).await?);
                let rate = read(a_log.clone()).await?;
                layers.push(Layer {
                    input_norm: read(n.input_norm.clone()).await?,
                    post_norm: read(n.post_norm.clone()).await?,
                    qkvg,
                    qkv_bias: None,
                    q_norm: None,
                    k_norm: None,
                    o_norm: None,
                    o: read(out.clone()).await?,
                    o_bias: None,
                    mlp_in,
                    mlp_down: read(n.mlp_down.clone()).await?,
                    mixer,
                    q_width: 0,
                    kv_width: 0,
                    gate_width: 0,
                    gdn: Some(GdnWeights {
                        conv,
                        rate: rate.iter().map(|a| -a.exp()).collect(),
                        dt_bias: read(dt_bias.clone()).await?,
                        norm: read(norm.clone()).await?,
                    }),
                });
                continue;
            }
            let h = arch.heads(mixer);
            let (q_width, kv_width) = (
                (h.heads * h.head_dim) as usize,
                (h.kv_heads * h.head_dim) as usize,
            );
            let gate = output_gate(&arch, mixer, &n);
            let mut qkvg = read(n.q.weight.clone()).await?;
            qkvg.extend(read(n.k.weight.clone()).await?);
            qkvg.extend(read(n.v.weight.clone()).await?);
            if let Some(g) = &gate {
                qkvg.extend(read(g.clone()).await?);
            }
            let qkv_bias = if arch.attention_bias {
                let mut b = read(n.q.bias.clone()).await?;
                b.extend(read(n.k.bias.clone()).await?);
                b.extend(read(n.v.bias.clone()).await?);
                Some(b)
            } else {
                None
            };
            let qk_norm = arch.qk_norm(mixer);
            let mut mlp_in = read(n.mlp_gate.clone()).await?;
            mlp_in.extend(read(n.mlp_up.clone()).await?);
            layers.push(Layer {
                input_norm: read(n.input_norm.clone()).await?,
                post_norm: read(n.post_norm.clone()).await?,
                qkvg,
                qkv_bias,
                q_norm: if qk_norm {
                    Some(read(n.q_norm.clone()).await?)
                } else {
                    None
                },
                k_norm: if qk_norm {
                    Some(read(n.k_norm.clone()).await?)
                } else {
                    None
                },
                o_norm: match output_norm(&arch, mixer, &n) {
                    Some(name) => Some(read(name).await?),
                    None => None,
                },
                o: read(n.o.weight.clone()).await?,
                o_bias: if arch.o_bias {
                    Some(read(n.o.bias.clone()).await?)
                } else {
                    None
                },
                mlp_in,
                mlp_down: read(n.mlp_down.clone()).await?,
                mixer,
                q_width,
                kv_width,
                gate_width: if gate.is_some() { q_width } else { 0 },
                gdn: None,
            });
        }
        let gammas = alibi_slopes(arch.lightning.heads as usize)
            .into_iter()
            .map(|s| (-s).exp() as f32)
            .collect();
        Ok(FastModel {
            arch,
            embed,
            final_norm,
            lm_head,
            layers,
            gammas,
        })
    }

    /// Puts `values` in place of the engine's weight `name` (an attention
    /// projection's weight or bias, a q/k norm, Qwen3.5's `o_gate` rows:
    /// what a merge replaces), in the form the engine computes with:
    /// `Engine::set_tensor` turns stored tensors into that form first
    /// ([`crate::model::weights::source`]).
    pub fn set_tensor(&mut self, name: &str, values: &[f32]) -> Result<()> {
        use names::{Proj, Role};
        let d = self.arch.hidden_size as usize;
        let unknown = || {
            Error::Usage(format!(
                "the CPU engine cannot swap {name:?}: only attention projections and q/k norms"
            ))
        };
        let (l, role) = names::role_of(name)
            .filter(|(l, _)| self.layers.get(*l).is_some_and(|x| x.gdn.is_none()))
            .ok_or_else(unknown)?;
        let (q, kv, gw) = {
            let layer = &self.layers[l];
            (layer.q_width, layer.kv_width, layer.gate_width)
        };
        let layer = &mut self.layers[l];
        // Where each projection's rows sit in the fused qkvg (and its bias).
        let rows = |p: Proj| match p {
            Proj::Q => Some(0..q),
            Proj::K => Some(q..q + kv),
            Proj::V => Some(q + kv..q + 2 * kv),
            Proj::O => None,
        };
        let slot: &mut [f32] = match role {
            Role::ProjWeight(Proj::O) => &mut layer.o,
            Role::ProjBias(Proj::O) => layer.o_bias.as_deref_mut().ok_or_else(unknown)?,
            Role::ProjWeight(p) => {
                let r = rows(p).ok_or_else(unknown)?;
                &mut layer.qkvg[r.start * d..r.end * d]
            }
            Role::ProjBias(p) => {
                &mut layer.qkv_bias.as_mut().ok_or_else(unknown)?[rows(p).ok_or_else(unknown)?]
            }
            Role::QNorm => layer.q_norm.as_deref_mut().ok_or_else(unknown)?,
            Role::KNorm => layer.k_norm.as_deref_mut().ok_or_else(unknown)?,
            // Qwen3.5's gate rows, which the engine keeps beside q, k and v.
            Role::OGate if gw > 0 => &mut layer.qkvg[(q + 2 * kv) * d..(q + 2 * kv + gw) * d],
            _ => return Err(unknown()),
        };
        if slot.len() != values.len() {
            return Err(Error::Usage(format!(
                "{name}: the engine holds {} values, the replacement {}",
                slot.len(),
                values.len()
            )));
        }
        slot.copy_from_slice(values);
        Ok(())
    }
}
