//! A parsed config to an [`Arch`], by family: the one dispatch over
//! `model_type` (each family's resolution lives with its own reading).

use super::arch::Arch;
use super::mirror::{cfg_err, Family, HypeNetConfig};
use crate::error::Result;

impl Arch {
    /// Resolves a parsed config; `has_lm_head` decides tying when the config is silent.
    pub fn from_config(c: &HypeNetConfig, has_lm_head: bool) -> Result<Arch> {
        match Family::of(c.model_type.as_deref()) {
            Some(Family::HypeNet) => Arch::from_hypenet_config(c, has_lm_head),
            Some(Family::Qwen35) => Arch::from_qwen35_config(c, has_lm_head),
            Some(Family::Jet) => super::jet::from_jet_config(c, has_lm_head),
            Some(family) => Arch::from_family_config(c, family, has_lm_head),
            None => Err(cfg_err(format!(
                "model_type {:?} is not supported: expected hypenet, qwen2, qwen3, qwen3_5, qwen3_5_text, jet_nemotron, llama or mistral",
                c.model_type.as_deref().unwrap_or("")
            ))),
        }
    }

    /// Parses `config.json` text and resolves it.
    pub fn from_config_json(text: &str, has_lm_head: bool) -> Result<Arch> {
        let (_, c, root) = super::mirror::parse(text)?;
        Ok(Arch {
            root,
            ..Arch::from_config(&c, has_lm_head)?
        })
    }
}
