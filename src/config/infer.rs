//! The architecture inferred from tensor names and shapes alone, for a
//! checkpoint that ships no `config.json`.

use std::collections::BTreeMap;

use super::arch::{Arch, Heads, Mixer};
use super::mirror::{Family, LightningScale, LogitsScaling, RopeScaling};
use crate::checkpoint::TensorEntry;
use crate::error::{Error, Result};
use crate::names::{self, LayerNames};

impl Arch {
    /// Infers the architecture from tensor names and shapes alone. A softmax
    /// layer has `self_attn.o_gate`, a Lightning layer `z_proj` or `o_norm`;
    /// values no tensor can tell (eps, RoPE, HyPE, scale) are listed as guesses.
    pub fn infer(tensors: &[TensorEntry]) -> Result<Arch> {
        let shapes: BTreeMap<&str, &[u64]> = tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice()))
            .collect();
        let infer_err = |reason: String| Error::Infer { reason };
        let shape = |name: &str| shapes.get(name).copied();
        let embed = shape(names::EMBED)
            .filter(|s| s.len() == 2)
            .ok_or_else(|| infer_err(format!("no 2-D {}", names::EMBED)))?;
        let (vocab_size, hidden_size) = (embed[0], embed[1]);
        let layers = tensors
            .iter()
            .filter_map(|t| names::layer_of(&t.name))
            .max()
            .map(|m| m + 1)
            .ok_or_else(|| infer_err(format!("no tensor named {}N.*", names::LAYER_PREFIX)))?;
        if layers > 4096 {
            return Err(infer_err(format!(
                "layer index {} is implausible",
                layers - 1
            )));
        }
        // Every name below comes from LayerNames, the one schema of names.
        let layer_names: Vec<LayerNames> = (0..layers).map(LayerNames::of).collect();
        let has = |name: &str| shapes.contains_key(name);
        let mut guesses = vec![
            "no config.json: architecture inferred from tensor names and shapes".to_string(),
            "rms_norm_eps guessed as 1e-6".into(),
            "rope_theta guessed as 1e6, attn_use_rope as false, lightning_use_rope as true".into(),
            "attn_logits_scaling guessed as null (HyPE off; \"hype 500\" is recommended at inference)".into(),
            "lightning_scale guessed as \"1/sqrt(d)\"".into(),
        ];
        // A JetBlock or a gated-delta layer cannot be told from tensors
        // alone (a JetBlock has q_proj and o_norm, like a Lightning layer).
        if let Some(i) = layer_names
            .iter()
            .position(|n| has(&n.jet.gen_w1) || has(&n.gdn.in_qkv))
        {
            return Err(infer_err(format!(
                "layer {i} is a gated delta rule layer (a Jet-Nemotron JetBlock or a Qwen3.5 linear_attention layer): \
                 such a checkpoint is read by its config.json, which says what each layer is; put it beside the weights"
            )));
        }
        let mut mixers = Vec::with_capacity(layers);
        for (i, n) in layer_names.iter().enumerate() {
            let m = if has(&n.o_gate) {
                Mixer::Softmax
            } else if has(&n.z_proj) || has(&n.o_norm) {
                Mixer::Lightning
            } else {
                guesses.push(format!(
                    "layer {i}: neither o_gate nor z_proj/o_norm, taken as softmax"
                ));
                Mixer::Softmax
            };
            mixers.push(m);
        }
        let first = |m: Mixer| mixers.iter().position(|&x| x == m);
        let heads_of = |i: usize, what: &str| -> Result<Heads> {
            let n = &layer_names[i];
            let get = |name: &str| {
                shape(name).filter(|s| !s.is_empty()).ok_or_else(|| {
                    infer_err(format!(
                        "layer {i} ({what}) has no self_attn.{}",
                        names::attn_leaf(name)
                    ))
                })
            };
            let q = get(&n.q.weight)?[0];
            let k = get(&n.k.weight)?[0];
            let dh = match get(&n.q_norm) {
                Ok(s) => s[0],
                Err(_) => {
                    return Err(infer_err(format!(
                        "layer {i} ({what}) has no q_norm to read the head width from"
                    )))
                }
            };
            if dh == 0 || q % dh != 0 || k % dh != 0 {
                return Err(infer_err(format!("layer {i}: q_proj rows {q} / k_proj rows {k} are not multiples of head width {dh}")));
            }
            Ok(Heads {
                heads: q / dh,
                kv_heads: k / dh,
                head_dim: dh,
            })
        };
        let attn = match first(Mixer::Softmax) {
            Some(i) => heads_of(i, "softmax")?,
            None => {
                return Err(infer_err(
                    "no softmax layer (none has self_attn.o_gate)".into(),
                ))
            }
        };
        let lightning = match first(Mixer::Lightning) {
            Some(i) => heads_of(i, "lightning")?,
            None => attn,
        };
        let mlp_gate = &layer_names[0].mlp_gate;
        let intermediate_size = shape(mlp_gate)
            .filter(|s| s.len() == 2)
            .map(|s| s[0])
            .ok_or_else(|| infer_err(format!("no 2-D {mlp_gate}")))?;
        // Whether any layer (of mixer `m`, if given) has the tensor `pick` names.
        let any = |m: Option<Mixer>, pick: fn(&LayerNames) -> &String| {
            layer_names
                .iter()
                .zip(&mixers)
                .any(|(n, &x)| m.is_none_or(|m| m == x) && has(pick(n)))
        };
        Ok(Arch {
            vocab_size,
            hidden_size,
            intermediate_size,
            mixer_names: mixers.iter().map(|m| m.config_name().to_string()).collect(),
            attn_use_output_gate: any(Some(Mixer::Softmax), |n| &n.o_gate),
            lightning_use_qk_norm: any(Some(Mixer::Lightning), |n| &n.q_norm),
            lightning_use_output_norm: any(Some(Mixer::Lightning), |n| &n.o_norm),
            lightning_use_output_gate: any(Some(Mixer::Lightning), |n| &n.z_proj),
            attention_bias: any(None, |n| &n.q.bias),
            o_bias: any(None, |n| &n.o.bias),
            attn_use_qk_norm: true,
            rope_scaling: RopeScaling::None,
            rope_fraction: 1.0,
            norm_plus_one: false,
            attn_gate_in_q: false,
            gdn: Default::default(),
            gdn_norm_eps: 1e-6,
            windows: vec![None; layers],
            root: Default::default(),
            family: Family::HypeNet,
            tie_word_embeddings: !has(names::LM_HEAD),
            mixers,
            attn,
            lightning,
            rms_norm_eps: 1e-6,
            rope_theta: 1e6,
            attn_use_rope: false,
            lightning_use_rope: true,
            logits_scaling: LogitsScaling::None,
            lightning_scale: LightningScale::InvSqrtD,
            from_config: false,
            guesses,
        })
    }
}
