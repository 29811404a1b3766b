//! `qklab`, the command-line face of the crate: the same core the page runs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use qklab::checkpoint::Checkpoint;
use qklab::safetensors::Dtype;
use qklab::source::{block_on, FsSource};
use qklab::summary::{arch_of, human_bytes, summarize};
use qklab::{Error, Result};

#[derive(Parser)]
#[command(name = "qklab", version, about = "Repair and inspect long-context routing in hybrid linear-attention LLMs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a checkpoint's architecture summary, reading only headers.
    Inspect {
        /// A .safetensors file or a Hugging Face checkpoint folder.
        ckpt: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Read every tensor of a checkpoint and check its values are finite.
    Verify {
        ckpt: PathBuf,
    },
    /// Write a HypeNet-shaped checkpoint with random weights.
    Synth {
        /// tiny, demo, or 2b (HypeNet-2B's shapes).
        #[arg(long, default_value = "tiny")]
        preset: String,
        #[arg(long, default_value_t = 1)]
        shards: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// bf16, f16 or f32.
        #[arg(long, default_value = "bf16")]
        dtype: String,
        /// Write headers only; tensor data is a hole of zeros (sparse files).
        #[arg(long)]
        sparse: bool,
        #[arg(long)]
        out: PathBuf,
    },
}

/// Progress on stderr, at most twice a second, only for work that lasts.
struct Progress {
    what: &'static str,
    start: Instant,
    last: Instant,
    shown: bool,
}

impl Progress {
    fn new(what: &'static str) -> Self {
        let now = Instant::now();
        Progress { what, start: now, last: now, shown: false }
    }

    fn update(&mut self, done: u64, total: u64) {
        let now = Instant::now();
        if now.duration_since(self.start) < Duration::from_secs(1) || now.duration_since(self.last) < Duration::from_millis(500) {
            return;
        }
        self.last = now;
        self.shown = true;
        let pct = if total == 0 { 100.0 } else { done as f64 * 100.0 / total as f64 };
        eprint!("\r{}: {} of {} ({pct:.0}%)   ", self.what, human_bytes(done), human_bytes(total));
    }

    fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

fn open(path: &std::path::Path) -> Result<Checkpoint<FsSource>> {
    block_on(Checkpoint::open(FsSource::open(path)?))
}

fn parse_dtype(s: &str) -> Result<Dtype> {
    match s.to_ascii_lowercase().as_str() {
        "bf16" => Ok(Dtype::BF16),
        "f16" => Ok(Dtype::F16),
        "f32" => Ok(Dtype::F32),
        _ => Err(Error::Usage(format!("unknown dtype {s:?}: expected bf16, f16 or f32"))),
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Inspect { ckpt, json } => {
            let ck = open(&ckpt)?;
            let arch = arch_of(&ck)?;
            let summary = summarize(&ck, &arch);
            if json {
                println!("{}", serde_json::to_string_pretty(&summary).expect("summary serializes"));
            } else {
                print!("{}", summary.to_text());
            }
            if !summary.problems.is_empty() {
                return Err(Error::ConfigMismatch { problems: summary.problems });
            }
        }
        Command::Verify { ckpt } => {
            let ck = open(&ckpt)?;
            let mut progress = Progress::new("checking values");
            let checked = block_on(ck.check_values(|d, t| progress.update(d, t)));
            progress.finish();
            checked?;
            println!(
                "ok: {} tensors in {} file(s), {} read, every header valid and every float finite",
                ck.tensors.len(),
                ck.shards.len(),
                human_bytes(ck.bytes_read())
            );
        }
        Command::Synth { preset, shards, seed, dtype, sparse, out } => {
            let layout = qklab::synth::write_dir(&out, &preset, shards, parse_dtype(&dtype)?, seed, sparse)?;
            let size: u64 = layout.shards.iter().map(|s| s.size()).sum();
            println!("wrote {} ({} shard(s), {})", out.display(), layout.shards.len(), human_bytes(size));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("qklab: error: {e}");
            ExitCode::FAILURE
        }
    }
}
