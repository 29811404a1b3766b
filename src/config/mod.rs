//! The model's configuration, by job: [`mirror`] reads `config.json` as
//! upstream writes it (`SPEC-hypenet.md`), [`arch`] resolves it per family
//! into the [`Arch`] the engines run and checks tensors against it,
//! [`infer`] reads an `Arch` off tensor names and shapes when no config is
//! given, and [`arch_of`] picks between the two for a checkpoint.

mod arch;
mod infer;
mod mirror;

pub use arch::{Arch, Heads, Mixer};
pub use mirror::{Family, HypeNetConfig, LightningScale, LogitsScaling, RopeScaling};

use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::names;
use crate::source::ByteSource;

/// Resolves a checkpoint's architecture: from its config.json when it has
/// one, else inferred from its tensors.
pub fn arch_of<S: ByteSource>(ckpt: &Checkpoint<S>) -> Result<Arch> {
    let has_lm_head = ckpt.tensor(names::LM_HEAD).is_some();
    match &ckpt.config_json {
        Some(text) => Arch::from_config_json(text, has_lm_head),
        None => Arch::infer(&ckpt.tensors),
    }
}
