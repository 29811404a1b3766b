//! `qklab synth`: a HypeNet-, Qwen3.5- or Jet-Nemotron-shaped checkpoint with random weights, for
//! tests and benchmarks that need a model of a real shape and no download.

use std::path::PathBuf;

use clap::Args;
use qklab::safetensors::Dtype;
use qklab::units::human_bytes;
use qklab::{Error, Result};

#[derive(Args)]
pub struct SynthArgs {
    /// tiny, demo, 2b (HypeNet-2B's shapes), qwen3.5-0.8b (Qwen3.5-0.8B's text model) or jet-nemotron-2b (NVlabs' Jet-Nemotron-2B config).
    #[arg(long, default_value = "tiny")]
    pub preset: String,
    /// Weight files to split the tensors over.
    #[arg(long, default_value_t = 1)]
    pub shards: usize,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// bf16, f16 or f32.
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// Write headers only; tensor data is a hole of zeros (sparse files).
    #[arg(long)]
    pub sparse: bool,
    /// The folder to write the checkpoint into.
    #[arg(long)]
    pub out: PathBuf,
}

fn parse_dtype(s: &str) -> Result<Dtype> {
    match s.to_ascii_lowercase().as_str() {
        "bf16" => Ok(Dtype::BF16),
        "f16" => Ok(Dtype::F16),
        "f32" => Ok(Dtype::F32),
        _ => Err(Error::Usage(format!(
            "unknown dtype {s:?}: expected bf16, f16 or f32"
        ))),
    }
}

pub fn run(a: SynthArgs) -> Result<()> {
    let layout = qklab::synth::write_dir(
        &a.out,
        &a.preset,
        a.shards,
        parse_dtype(&a.dtype)?,
        a.seed,
        a.sparse,
    )?;
    let size: u64 = layout.shards.iter().map(|s| s.size()).sum();
    println!(
        "wrote {} ({} shard(s), {})",
        a.out.display(),
        layout.shards.len(),
        human_bytes(size)
    );
    Ok(())
}
