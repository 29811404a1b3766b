//! The commands that read one checkpoint and run no model: `inspect` (its
//! architecture, from headers alone), `fingerprint` (what recipes name it
//! by) and `verify` (every value read and checked finite).

use std::path::PathBuf;

use clap::Args;
use qklab::config::arch_of;
use qklab::source::block_on;
use qklab::summary::summarize;
use qklab::units::human_bytes;
use qklab::writer::SourceFingerprint;
use qklab::{Error, Result};

#[derive(Args)]
pub struct InspectArgs {
    /// A .safetensors file or a Hugging Face checkpoint folder.
    pub ckpt: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Prints the summary, then fails if the config and the tensors disagree.
pub fn inspect(a: InspectArgs) -> Result<()> {
    let ck = super::open_checkpoint(&a.ckpt)?;
    let arch = arch_of(&ck)?;
    let summary = summarize(&ck, &arch);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("summary serializes")
        );
    } else {
        print!("{}", summary.to_text());
    }
    if !summary.problems.is_empty() {
        return Err(Error::ConfigMismatch {
            problems: summary.problems,
        });
    }
    Ok(())
}

#[derive(Args)]
pub struct FingerprintArgs {
    /// A .safetensors file or a Hugging Face checkpoint folder.
    pub ckpt: PathBuf,
    /// The role the fingerprint names it by (a recipe's sources are pre and sft).
    #[arg(long, default_value = "model")]
    pub role: String,
}

pub fn fingerprint(a: FingerprintArgs) -> Result<()> {
    let fp = block_on(SourceFingerprint::of(
        &a.role,
        &super::open_checkpoint(&a.ckpt)?,
    ))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&fp).expect("fingerprints serialize")
    );
    Ok(())
}

#[derive(Args)]
pub struct VerifyArgs {
    /// A .safetensors file or a Hugging Face checkpoint folder.
    pub ckpt: PathBuf,
}

pub fn verify(a: VerifyArgs) -> Result<()> {
    let ck = super::open_checkpoint(&a.ckpt)?;
    let mut progress = super::Progress::new("checking values", true);
    let checked = block_on(ck.check_values(|d, t| progress.update(d, t)));
    progress.finish();
    checked?;
    println!(
        "ok: {} tensors in {} file(s), {} read, every header valid and every float finite",
        ck.tensors.len(),
        ck.shards.len(),
        human_bytes(ck.bytes_read())
    );
    Ok(())
}
