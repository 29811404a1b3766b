//! Can these two checkpoints be merged? Same tensor names, shapes and
//! dtypes, the same family and architecture. Every difference is listed in one
//! error, so a user fixes them all at once.

use std::collections::BTreeMap;

use crate::checkpoint::Checkpoint;
use crate::config::arch_of;
use crate::config::Arch;
use crate::error::{Error, Result};
use crate::names::Root;
use crate::source::ByteSource;

/// The architecture both checkpoints share (sft's config), or every reason
/// they cannot be merged.
pub fn check_pair<S: ByteSource>(pre: &Checkpoint<S>, sft: &Checkpoint<S>) -> Result<Arch> {
    if let (Ok(p), Ok(s)) = (arch_of(pre), arch_of(sft)) {
        let kind = |a: &Arch| match a.root {
            Root::Wrapped => format!("{} (vision-language wrapper)", a.family.name()),
            Root::Plain => a.family.name().to_string(),
        };
        // Two families (or Qwen3.5's wrapper and its text model) differ in
        // every tensor name; one line says why, where a list would bury it.
        if p.family != s.family || p.root != s.root {
            return Err(Error::Incompatible {
                problems: vec![format!(
                    "pre is {}, sft is {}: a merge needs two checkpoints of one model (the same family and layout)",
                    kind(&p),
                    kind(&s)
                )],
            });
        }
    }
    let mut problems = Vec::new();
    let pre_t: BTreeMap<&str, _> = pre.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let sft_t: BTreeMap<&str, _> = sft.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    for (name, s) in &sft_t {
        match pre_t.get(name) {
            None => problems.push(format!("{name} is in sft but missing from pre")),
            Some(p) if p.shape != s.shape => problems.push(format!(
                "{name}: shape {:?} in pre, {:?} in sft",
                p.shape, s.shape
            )),
            Some(p) if p.dtype != s.dtype => problems.push(format!(
                "{name}: dtype {} in pre, {} in sft",
                p.dtype, s.dtype
            )),
            _ => {}
        }
    }
    for name in pre_t.keys().filter(|n| !sft_t.contains_key(*n)) {
        problems.push(format!("{name} is in pre but missing from sft"));
    }

    let arch = |role: &str, ck: &Checkpoint<S>, problems: &mut Vec<String>| match arch_of(ck) {
        Ok(a) => Some(a),
        Err(e) => {
            problems.push(format!("{role}'s architecture cannot be read: {e}"));
            None
        }
    };
    let pre_arch = arch("pre", pre, &mut problems);
    let sft_arch = arch("sft", sft, &mut problems);
    if let (Some(p), Some(s)) = (&pre_arch, &sft_arch) {
        if p.mixers != s.mixers || p.windows != s.windows {
            problems.push(format!(
                "the layer maps differ: pre has softmax layers {:?} (full attention {:?}), sft {:?} (full attention {:?})",
                p.softmax_layers(),
                p.full_attention_layers(),
                s.softmax_layers(),
                s.full_attention_layers()
            ));
        }
        if (p.attn, p.lightning, p.gdn, p.hidden_size, p.vocab_size)
            != (s.attn, s.lightning, s.gdn, s.hidden_size, s.vocab_size)
        {
            problems.push("the head layouts or sizes of pre and sft differ".into());
        }
    }
    if let Some(s) = &sft_arch {
        // Differences between the two were listed above; here, sft against its own config.
        for p in s.check(&sft.tensors).0 {
            problems.push(format!("sft: {p}"));
        }
    }
    match sft_arch {
        Some(a) if problems.is_empty() => Ok(a),
        _ => Err(Error::Incompatible { problems }),
    }
}
