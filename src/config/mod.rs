//! The model's configuration, by job: [`mirror`] reads `config.json` as
//! upstream writes it (`SPEC-hypenet.md`), [`arch`] resolves it per family
//! into the [`Arch`] the engines run and checks tensors against it,
//! [`infer`] reads an `Arch` off tensor names and shapes when no config is
//! given, and [`arch_of`] picks between the two for a checkpoint.

mod arch;
pub mod gate;
mod infer;
mod jet;
mod mirror;
mod resolve;

pub use arch::{Arch, GdnShape, Heads, Mixer};
pub use mirror::{Family, HypeNetConfig, LightningScale, LogitsScaling, RopeScaling};

use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::names;
use crate::source::ByteSource;

/// Resolves a checkpoint's architecture: from its config.json when it has
/// one (its sizes bounded by the tensors first, its numbers and token ids
/// checked after: see [`gate`]), else inferred from its tensors. What it
/// returns may still disagree with the tensors; [`gate::check_tensors`]
/// says how, and every engine runs it before loading.
pub fn arch_of<S: ByteSource>(ckpt: &Checkpoint<S>) -> Result<Arch> {
    let has_lm_head = ckpt.tensor(names::LM_HEAD).is_some();
    let Some(text) = &ckpt.config_json else {
        return Arch::infer(&ckpt.tensors);
    };
    let (raw, config, root) = mirror::parse(text)?;
    gate::sizes_within(&config, gate::Bounds::of(&ckpt.tensors))?;
    let arch = Arch {
        root,
        ..Arch::from_config(&config, has_lm_head)?
    };
    gate::numbers_make_sense(&arch)?;
    gate::token_ids(&raw, arch.vocab_size)?;
    Ok(arch)
}
