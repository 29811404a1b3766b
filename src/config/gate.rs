//! The gate between a checkpoint and anything that computes with it. A
//! config can lie: a size no tensor has, a layer count of 10^12, a
//! negative epsilon, a token id of "x". Every engine, the merge and the
//! page take their `Arch` from [`super::arch_of`], which runs the first
//! two checks below, and check the tensors with [`check_tensors`] before
//! they allocate or index anything:
//!
//! 1. [`sizes_within`]: every size in config.json is at most what the
//!    tensors could hold, before any list is made from one;
//! 2. [`numbers_make_sense`]: epsilons, RoPE's theta and the scales are
//!    finite and positive, token ids are ids inside the vocabulary;
//! 3. [`check_tensors`]: every tensor the architecture uses is there, with
//!    its shape and a dtype the engines decode; all mismatches at once.

use super::arch::Arch;
use super::mirror::{cfg_err, HypeNetConfig, LogitsScaling, RopeScaling};
use crate::checkpoint::TensorEntry;
use crate::error::{Error, Result};
use crate::names;
use crate::safetensors::Dtype;

/// What the tensors could hold: the layers their names number and their
/// largest dimension. A config that asks for more describes other tensors.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub layers: u64,
    pub dim: u64,
}

impl Bounds {
    pub fn of(tensors: &[TensorEntry]) -> Bounds {
        let layers = tensors
            .iter()
            .filter_map(|t| names::layer_of(&t.name))
            .map(|l| l as u64 + 1)
            .max()
            .unwrap_or(0);
        let dim = tensors
            .iter()
            .flat_map(|t| t.shape.iter().copied())
            .max()
            .unwrap_or(0);
        Bounds { layers, dim }
    }
}

/// Refuses a config whose sizes no tensor could hold, before anything is
/// sized from them: a layer count past the layers the tensors number, or
/// a width (or heads x head size) past their largest dimension.
pub fn sizes_within(c: &HypeNetConfig, b: Bounds) -> Result<()> {
    if c.num_hidden_layers > b.layers {
        return Err(cfg_err(format!(
            "num_hidden_layers is {}, but the tensors hold {} layers: the config does not describe these tensors",
            c.num_hidden_layers, b.layers
        )));
    }
    let head_dim = c
        .head_dim
        .or_else(|| c.hidden_size.checked_div(c.num_attention_heads));
    let widths = [
        ("vocab_size", Some(c.vocab_size)),
        ("hidden_size", Some(c.hidden_size)),
        ("intermediate_size", Some(c.intermediate_size)),
        (
            "num_attention_heads x head_dim",
            c.num_attention_heads.checked_mul(head_dim.unwrap_or(0)),
        ),
        (
            "num_key_value_heads x head_dim",
            c.num_key_value_heads
                .unwrap_or(0)
                .checked_mul(head_dim.unwrap_or(0)),
        ),
        (
            "lightning_nh x lightning_head_dim",
            c.lightning_nh
                .unwrap_or(0)
                .checked_mul(c.lightning_head_dim.unwrap_or(0)),
        ),
        (
            "lightning_nkv x lightning_head_dim",
            c.lightning_nkv
                .unwrap_or(0)
                .checked_mul(c.lightning_head_dim.unwrap_or(0)),
        ),
    ];
    let mut problems = Vec::new();
    for (what, size) in widths {
        match size {
            None => problems.push(format!("{what} overflows 64 bits")),
            Some(n) if n > b.dim => problems.push(format!(
                "{what} is {n}, larger than any tensor dimension (the largest is {})",
                b.dim
            )),
            _ => {}
        }
    }
    // Single factors too: a product can hide a huge one times zero.
    let factors = [
        ("num_attention_heads", Some(c.num_attention_heads)),
        ("num_key_value_heads", c.num_key_value_heads),
        ("head_dim", c.head_dim),
        ("lightning_nh", c.lightning_nh),
        ("lightning_nkv", c.lightning_nkv),
        ("lightning_head_dim", c.lightning_head_dim),
    ];
    for (what, n) in factors {
        if let Some(n) = n.filter(|n| *n > b.dim) {
            problems.push(format!(
                "{what} is {n}, larger than any tensor dimension (the largest is {})",
                b.dim
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(cfg_err(format!(
            "the config does not describe these tensors: {}",
            problems.join("; ")
        )))
    }
}

/// Refuses by name the numbers no model can run with: they would turn
/// every activation into NaN or infinity, silently.
pub fn numbers_make_sense(a: &Arch) -> Result<()> {
    let mut problems = Vec::new();
    let positive = |what: &str, v: f64, problems: &mut Vec<String>| {
        if !(v.is_finite() && v > 0.0) {
            problems.push(format!("{what} is {v}; it must be a finite number above 0"));
        }
    };
    positive("rms_norm_eps", a.rms_norm_eps, &mut problems);
    positive("rope_theta", a.rope_theta, &mut problems);
    match a.logits_scaling {
        LogitsScaling::None => {}
        LogitsScaling::Constant(s) => positive("attn_logits_scaling", s, &mut problems),
        // ln(t + A) / ln(A): A must be above 1 for a positive, finite scale.
        LogitsScaling::Hype(big_a) => {
            if !(big_a.is_finite() && big_a > 1.0) {
                problems.push(format!(
                    "attn_logits_scaling \"hype {big_a}\": A must be a finite number above 1"
                ));
            }
        }
    }
    // Its factors were checked positive when parsed; equal ones divide by zero.
    if let RopeScaling::Llama3 {
        low_freq_factor,
        high_freq_factor,
        ..
    } = a.rope_scaling
    {
        if low_freq_factor == high_freq_factor {
            problems.push(
                "rope_scaling: low_freq_factor equals high_freq_factor, which divides by zero"
                    .into(),
            );
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(cfg_err(problems.join("; ")))
    }
}

/// The special token ids config.json names must be ids: a whole number
/// inside the vocabulary, a list of them, or null.
pub fn token_ids(config: &serde_json::Value, vocab_size: u64) -> Result<()> {
    let mut problems = Vec::new();
    for key in ["bos_token_id", "eos_token_id", "pad_token_id"] {
        let Some(v) = config.get(key) else { continue };
        let ids: Vec<&serde_json::Value> = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::Array(list) => list.iter().collect(),
            one => vec![one],
        };
        for id in ids {
            match id.as_u64() {
                Some(n) if n < vocab_size => {}
                Some(n) => problems.push(format!(
                    "{key} {n} is outside the vocabulary ({vocab_size} tokens)"
                )),
                None => problems.push(format!(
                    "{key} {id} is not a token id (a whole number, a list of them, or null)"
                )),
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(cfg_err(problems.join("; ")))
    }
}

/// Every tensor `arch` uses, checked against the checkpoint: present, of
/// the shape the config implies and of a dtype the engines decode (byte
/// lengths were checked against shape x dtype when the header was read).
/// Every engine calls this before it reads or sizes anything, so no
/// engine ever indexes with a size the tensors do not have.
pub fn check_tensors(arch: &Arch, tensors: &[TensorEntry]) -> Result<()> {
    let (mut problems, _) = arch.check(tensors);
    let by_name: std::collections::HashMap<&str, &TensorEntry> =
        tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    for (name, _) in arch.expected_tensors() {
        if let Some(t) = by_name.get(name.as_str()) {
            if !matches!(t.dtype, Dtype::BF16 | Dtype::F16 | Dtype::F32) {
                problems.push(format!(
                    "tensor {name} is {}, which the engines cannot use (only BF16, F16 and F32)",
                    t.dtype
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::ConfigMismatch { problems })
    }
}
