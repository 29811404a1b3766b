//! Jet-Nemotron's config (`jet_nemotron`, SPEC-gdn): which layers are
//! JetBlocks, full softmax layers or sliding-window ones
//! (`layer_types`), and the JetBlock's sizes and the window
//! (`efficient_attention_config`), read field by field. What the NVlabs
//! code would take and the engines do not run is refused by name.

use serde_json::{Map, Value};

use super::arch::{Arch, GdnShape, Mixer};
use super::mirror::{cfg_err, Family, HypeNetConfig};
use crate::error::Result;

/// The keys of NVlabs' `JetBlockConfig` (`jet_block.py`); any other is
/// refused rather than ignored.
const JET_KEYS: [&str; 8] = [
    "mode",
    "expand_v",
    "num_heads",
    "head_dim",
    "norm_eps",
    "conv_size",
    "dconv_generator_reduction",
    "dconv_implementation",
];

/// Sizes past this are no model's: refused before any product of them
/// is formed (the tensors' shapes are checked against the rest later).
const MAX_SIZE: u64 = 1 << 24;

/// Resolves a `jet_nemotron` config. Its softmax layers are Qwen2's
/// attention (q/k/v biases, RoPE), so they come from the Qwen2 mapping;
/// the layers' kinds, the window and the JetBlock are read here.
pub(super) fn from_jet_config(c: &HypeNetConfig, has_lm_head: bool) -> Result<Arch> {
    let layers = c.num_hidden_layers as usize;
    // NVlabs' default: every layer full attention.
    let types = c
        .layer_types
        .clone()
        .unwrap_or_else(|| vec!["attn".into(); layers]);
    if types.len() != layers {
        return Err(cfg_err(format!(
            "layer_types has {} entries but num_hidden_layers is {layers}",
            types.len()
        )));
    }
    let empty = Map::new();
    let blocks = match &c.efficient_attention_config {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(cfg_err(format!(
                "efficient_attention_config is {other}: expected an object"
            )))
        }
    };
    if let Some(key) = blocks.keys().find(|k| *k != "jet" && *k != "swa") {
        return Err(cfg_err(format!(
            "efficient_attention_config.{key} is not supported: Jet-Nemotron's layers are \"jet\" (JetBlock), \"attn\" and \"swa\""
        )));
    }
    let mut mixers = Vec::with_capacity(layers);
    let mut windows = Vec::with_capacity(layers);
    for (i, t) in types.iter().enumerate() {
        let (mixer, window) = match t.as_str() {
            "attn" => (Mixer::Softmax, None),
            "swa" => (Mixer::Softmax, Some(window(blocks)?)),
            "jet" => (Mixer::Jet, None),
            other => {
                return Err(cfg_err(format!(
                    "layer_types[{i}] is {other:?}: Jet-Nemotron layers are \"jet\", \"attn\" or \"swa\""
                )))
            }
        };
        mixers.push(mixer);
        windows.push(window);
    }
    let (gdn, gdn_norm_eps) = if mixers.contains(&Mixer::Jet) {
        jet_block(blocks)?
    } else {
        (GdnShape::default(), 0.0)
    };
    let qwen2 = HypeNetConfig {
        layer_types: None,
        efficient_attention_config: None,
        ..c.clone()
    };
    let mut arch = Arch::from_family_config(&qwen2, Family::Jet, has_lm_head)?;
    arch.mixer_names = types;
    arch.mixers = mixers;
    arch.windows = windows;
    arch.gdn = gdn;
    arch.gdn_norm_eps = gdn_norm_eps;
    Ok(arch)
}

/// `efficient_attention_config.swa.window_size`: a positive whole number.
fn window(blocks: &Map<String, Value>) -> Result<u64> {
    let swa = blocks.get("swa").ok_or_else(|| {
        cfg_err("a layer is \"swa\" but efficient_attention_config has no \"swa\" entry (its window_size)")
    })?;
    if let Some(key) = swa
        .as_object()
        .and_then(|m| m.keys().find(|k| *k != "window_size"))
    {
        return Err(cfg_err(format!(
            "efficient_attention_config.swa.{key} is not supported (only window_size)"
        )));
    }
    match swa.get("window_size").and_then(Value::as_u64) {
        Some(w) if (1..=MAX_SIZE).contains(&w) => Ok(w),
        _ => Err(cfg_err(format!(
            "efficient_attention_config.swa.window_size is {}: a sliding window must be a whole number of tokens from 1 to {MAX_SIZE}",
            swa.get("window_size").unwrap_or(&Value::Null)
        ))),
    }
}

/// A number as NVlabs' configs write them: JSON numbers, or strings of
/// them (the 2B config's `"norm_eps": "1e-5"`).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The JetBlock's sizes and its output norm's epsilon, with NVlabs'
/// `JetBlockConfig` defaults for fields a config leaves out.
fn jet_block(blocks: &Map<String, Value>) -> Result<(GdnShape, f64)> {
    let jet = blocks
        .get("jet")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            cfg_err("a layer is \"jet\" but efficient_attention_config has no \"jet\" object (the JetBlock's sizes)")
        })?;
    if let Some(key) = jet.keys().find(|k| !JET_KEYS.contains(&k.as_str())) {
        return Err(cfg_err(format!(
            "efficient_attention_config.jet.{key} is not supported (known: {})",
            JET_KEYS.join(", ")
        )));
    }
    if let Some(mode) = jet.get("mode") {
        if !matches!(mode.as_str(), Some("chunk" | "fused_recurrent")) {
            return Err(cfg_err(format!(
                "efficient_attention_config.jet.mode is {mode}: expected \"chunk\" or \"fused_recurrent\""
            )));
        }
    }
    let get = |key: &str, default: f64| -> Result<f64> {
        match jet.get(key) {
            None => Ok(default),
            Some(v) => number(v)
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| {
                    cfg_err(format!(
                        "efficient_attention_config.jet.{key} is {v}: expected a positive number"
                    ))
                }),
        }
    };
    let size = |key: &str, default: f64| -> Result<u64> {
        let x = get(key, default)?;
        if x.fract() != 0.0 || x > MAX_SIZE as f64 {
            return Err(cfg_err(format!(
                "efficient_attention_config.jet.{key} is {x}: expected a whole number from 1 to {MAX_SIZE}"
            )));
        }
        Ok(x as u64)
    };
    let heads = size("num_heads", 6.0)?;
    let head_dim = size("head_dim", 256.0)?;
    let conv = size("conv_size", 4.0)?;
    let reduction = size("dconv_generator_reduction", 8.0)?;
    let expand_v = get("expand_v", 2.0)?;
    let norm_eps = get("norm_eps", 1e-5)?;
    // As jet_block.py: int() of each product, which must agree.
    let value_dim = (head_dim as f64 * expand_v) as u64;
    let value_width = (heads as f64 * head_dim as f64 * expand_v) as u64;
    if value_dim == 0 || value_dim > MAX_SIZE || value_width != heads * value_dim {
        return Err(cfg_err(format!(
            "efficient_attention_config.jet.expand_v {expand_v} times head_dim {head_dim} is not a whole head size"
        )));
    }
    let generator = value_width / reduction;
    if generator == 0 {
        return Err(cfg_err(format!(
            "efficient_attention_config.jet.dconv_generator_reduction {reduction} leaves the kernel generator of {value_width} channels no hidden units"
        )));
    }
    let shape = GdnShape {
        key_heads: heads,
        value_heads: heads,
        key_dim: head_dim,
        value_dim,
        conv_kernel: conv,
        generator,
    };
    Ok((shape, norm_eps))
}
