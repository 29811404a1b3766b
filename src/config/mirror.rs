//! The serde mirror of `config.json`, field for field as upstream writes
//! it (`SPEC-hypenet.md`), with the families it may name and the parsing
//! of its fields whose values are not plain numbers or flags.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `config.json` as upstream writes it. Unknown fields are ignored.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct HypeNetConfig {
    #[serde(default)]
    pub model_type: Option<String>,
    pub vocab_size: u64,
    pub hidden_size: u64,
    pub intermediate_size: u64,
    pub num_hidden_layers: u64,
    #[serde(default)]
    pub mixer_types: Vec<String>,
    pub num_attention_heads: u64,
    #[serde(default)]
    pub num_key_value_heads: Option<u64>,
    #[serde(default)]
    pub head_dim: Option<u64>,
    #[serde(default)]
    pub lightning_nh: Option<u64>,
    #[serde(default)]
    pub lightning_nkv: Option<u64>,
    #[serde(default)]
    pub lightning_head_dim: Option<u64>,
    #[serde(default)]
    pub rms_norm_eps: Option<f64>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    pub attn_use_rope: Option<bool>,
    #[serde(default)]
    pub lightning_use_rope: Option<bool>,
    #[serde(default)]
    pub attn_use_output_gate: Option<bool>,
    #[serde(default)]
    pub attn_logits_scaling: Option<serde_json::Value>,
    #[serde(default)]
    pub lightning_use_qk_norm: Option<bool>,
    #[serde(default)]
    pub lightning_use_output_norm: Option<bool>,
    #[serde(default)]
    pub lightning_use_output_gate: Option<bool>,
    #[serde(default)]
    pub lightning_scale: Option<String>,
    #[serde(default)]
    pub lightning_use_short_conv: Option<bool>,
    #[serde(default)]
    pub attention_bias: Option<bool>,
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    #[serde(default)]
    pub bos_token_id: Option<serde_json::Value>,
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
    #[serde(default)]
    pub torch_dtype: Option<String>,
    // Fields of the pure softmax families (Qwen2/3, Llama, Mistral), read
    // to map them or to refuse what the engine lacks.
    #[serde(default)]
    pub rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    pub sliding_window: Option<serde_json::Value>,
    #[serde(default)]
    pub use_sliding_window: Option<bool>,
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    #[serde(default)]
    pub hidden_act: Option<String>,
    #[serde(default)]
    pub mlp_bias: Option<bool>,
    #[serde(default)]
    pub num_experts: Option<serde_json::Value>,
    #[serde(default)]
    pub num_local_experts: Option<serde_json::Value>,
    // Qwen3.5's gated-delta layers and its partial RoPE (SPEC-gdn).
    #[serde(default)]
    pub linear_num_key_heads: Option<u64>,
    #[serde(default)]
    pub linear_num_value_heads: Option<u64>,
    #[serde(default)]
    pub linear_key_head_dim: Option<u64>,
    #[serde(default)]
    pub linear_value_head_dim: Option<u64>,
    #[serde(default)]
    pub linear_conv_kernel_dim: Option<u64>,
    #[serde(default)]
    pub full_attention_interval: Option<u64>,
    #[serde(default)]
    pub partial_rotary_factor: Option<f64>,
    #[serde(default)]
    pub attn_output_gate: Option<bool>,
    // Jet-Nemotron's JetBlock sizes and sliding window (SPEC-gdn), read
    // and checked field by field in `Arch::from_jet_config`.
    #[serde(default)]
    pub efficient_attention_config: Option<serde_json::Value>,
}

/// The model family a checkpoint belongs to (`model_type`). HypeNet mixes
/// Lightning and softmax layers; the others are every layer softmax,
/// mapped onto the same engine (see [`super::Arch::from_family_config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    HypeNet,
    Qwen2,
    Qwen3,
    Llama,
    Mistral,
    /// Qwen3.5's dense models: gated-delta layers, every fourth softmax
    /// with an output gate (`qwen3_5_text`, or the `qwen3_5` wrapper).
    #[serde(rename = "qwen3_5")]
    Qwen35,
    /// Jet-Nemotron: JetBlocks (the gated delta rule behind a dynamic
    /// convolution), full and sliding-window softmax layers.
    #[serde(rename = "jet_nemotron")]
    Jet,
}

/// Families of the same lineage that the engines do not run, with why:
/// refused by name rather than as an unknown `model_type`.
const REFUSED: [(&str, &str); 3] = [
    ("qwen3_5_moe", "Qwen3.5's mixture-of-experts models are not supported (only the dense ones, qwen3_5 and qwen3_5_text)"),
    ("qwen3_next", "Qwen3-Next is a mixture of experts and is not supported (Qwen3.5's dense models are)"),
    ("qwen3_moe", "Qwen3's mixture-of-experts models are not supported (only the dense qwen3)"),
];

/// `config.json` text as the text model's config, and where the text
/// model's tensors live: the one reading of a config ([`text_config`]
/// unwraps Qwen3.5's wrapper).
pub fn parse(text: &str) -> Result<(serde_json::Value, HypeNetConfig, crate::names::Root)> {
    let raw: serde_json::Value = serde_json::from_str(text).map_err(|e| cfg_err(e.to_string()))?;
    let (text, wrapped) = text_config(&raw)?;
    let config = serde_json::from_value(text).map_err(|e| cfg_err(e.to_string()))?;
    let root = if wrapped {
        crate::names::Root::Wrapped
    } else {
        crate::names::Root::Plain
    };
    Ok((raw, config, root))
}

/// The config a family's text model is described by: itself, or the
/// `text_config` of Qwen3.5's vision-language wrapper (`qwen3_5`), whose
/// tensors then live under `model.language_model.` (`true` second).
/// Families refused by name are refused here, before any field is read.
pub fn text_config(raw: &serde_json::Value) -> Result<(serde_json::Value, bool)> {
    let model_type = raw.get("model_type").and_then(|t| t.as_str());
    if let Some((_, why)) = REFUSED.iter().find(|(name, _)| Some(*name) == model_type) {
        return Err(cfg_err(format!(
            "model_type {:?}: {why}",
            model_type.unwrap_or("")
        )));
    }
    if model_type != Some("qwen3_5") {
        return Ok((raw.clone(), false));
    }
    let Some(text) = raw.get("text_config").filter(|t| t.is_object()) else {
        return Err(cfg_err(
            "model_type \"qwen3_5\" (Qwen3.5's vision-language wrapper) has no text_config object: the text model's sizes are not given",
        ));
    };
    let mut text = text.clone();
    let obj = text.as_object_mut().expect("checked to be an object");
    match obj.get("model_type").and_then(|t| t.as_str()) {
        None | Some("qwen3_5_text") => {}
        Some(other) => {
            return Err(cfg_err(format!(
                "text_config.model_type is {other:?}; a qwen3_5 wrapper holds a qwen3_5_text model"
            )))
        }
    }
    obj.insert("model_type".into(), "qwen3_5_text".into());
    // transformers ties the wrapper's head by its top-level flag, whatever
    // text_config says.
    if let Some(tie) = raw.get("tie_word_embeddings") {
        obj.insert("tie_word_embeddings".into(), tie.clone());
    }
    Ok((text, true))
}

impl Family {
    pub(super) fn of(model_type: Option<&str>) -> Option<Family> {
        match model_type {
            None | Some("hypenet") => Some(Family::HypeNet),
            Some("qwen2") => Some(Family::Qwen2),
            Some("qwen3") => Some(Family::Qwen3),
            Some("llama") => Some(Family::Llama),
            Some("mistral") => Some(Family::Mistral),
            Some("qwen3_5_text") => Some(Family::Qwen35),
            Some("jet_nemotron") => Some(Family::Jet),
            Some(_) => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::HypeNet => "HypeNet",
            Family::Qwen2 => "Qwen2",
            Family::Qwen3 => "Qwen3",
            Family::Llama => "Llama",
            Family::Mistral => "Mistral",
            Family::Qwen35 => "Qwen3.5",
            Family::Jet => "Jet-Nemotron",
        }
    }
}

/// How RoPE's frequencies are scaled (`rope_scaling` / `rope_parameters`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RopeScaling {
    None,
    /// Llama 3.1 / 3.2: long wavelengths divided by `factor`, short ones
    /// kept, a smooth blend between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

impl RopeScaling {
    /// A config's scaling object; `None`/null and the type "default" are
    /// plain RoPE. Any other type is refused by name.
    pub(super) fn parse(v: Option<&serde_json::Value>) -> Result<RopeScaling> {
        let Some(obj) = v.filter(|v| !v.is_null()) else {
            return Ok(RopeScaling::None);
        };
        let kind = obj
            .get("rope_type")
            .or_else(|| obj.get("type"))
            .and_then(|t| t.as_str())
            .unwrap_or("default");
        let num = |key: &str| {
            obj.get(key)
                .and_then(|x| x.as_f64())
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| cfg_err(format!("rope scaling \"llama3\" needs a positive {key}")))
        };
        match kind {
            "default" => Ok(RopeScaling::None),
            "llama3" => Ok(RopeScaling::Llama3 {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max_position_embeddings: num("original_max_position_embeddings")?,
            }),
            other => Err(cfg_err(format!(
                "rope scaling type {other:?} is not supported (only the default and \"llama3\")"
            ))),
        }
    }
}

/// Query-side scaling of softmax logits (`attn_logits_scaling`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum LogitsScaling {
    None,
    /// q *= s
    Constant(f64),
    /// HyPE: q *= ln(t + A) / ln(A)
    Hype(f64),
}

impl LogitsScaling {
    /// `"hype"` alone means A = 362 (SPEC-hypenet).
    pub const DEFAULT_HYPE_A: f64 = 362.0;

    pub fn parse(v: &serde_json::Value) -> std::result::Result<Self, String> {
        match v {
            serde_json::Value::Null => Ok(LogitsScaling::None),
            serde_json::Value::Number(n) => Ok(LogitsScaling::Constant(n.as_f64().unwrap_or(1.0))),
            serde_json::Value::String(s) => {
                let mut words = s.split_whitespace();
                match (words.next(), words.next(), words.next()) {
                    (Some("hype"), None, None) => Ok(LogitsScaling::Hype(Self::DEFAULT_HYPE_A)),
                    (Some("hype"), Some(a), None) => match a.parse::<f64>() {
                        Ok(a) if a > 1.0 && a.is_finite() => Ok(LogitsScaling::Hype(a)),
                        _ => Err(format!(
                            "attn_logits_scaling {s:?}: A must be a number above 1"
                        )),
                    },
                    _ => Err(format!(
                        "attn_logits_scaling {s:?}: expected null, a number, or \"hype A\""
                    )),
                }
            }
            other => Err(format!(
                "attn_logits_scaling {other}: expected null, a number, or \"hype A\""
            )),
        }
    }
}

/// `lightning_scale`: "1/sqrt(d)" -> d^-1/2, "1/d" -> d^-1, anything else -> 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LightningScale {
    InvSqrtD,
    InvD,
    One,
}

impl LightningScale {
    pub fn parse(s: &str) -> Self {
        match s {
            "1/sqrt(d)" => LightningScale::InvSqrtD,
            "1/d" => LightningScale::InvD,
            _ => LightningScale::One,
        }
    }

    pub fn value(self, d: u64) -> f64 {
        match self {
            LightningScale::InvSqrtD => 1.0 / (d as f64).sqrt(),
            LightningScale::InvD => 1.0 / d as f64,
            LightningScale::One => 1.0,
        }
    }
}

/// A `config.json` error; every reason is told as the config file's.
pub(super) fn cfg_err(reason: impl Into<String>) -> Error {
    Error::Config {
        file: crate::checkpoint::CONFIG_FILE.into(),
        reason: reason.into(),
    }
}
