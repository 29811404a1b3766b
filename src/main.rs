//! `qklab`, the command-line face of the crate: the same core the page runs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

mod cli;

use qklab::checkpoint::Checkpoint;
use qklab::merge::drift::drift;
use qklab::app::merge::spec_of_recipe;
use qklab::merge::{MergeSpec, Method};
use qklab::safetensors::Dtype;
use qklab::source::{block_on, FsSource};
use qklab::config::arch_of;
use qklab::summary::summarize;
use qklab::units::human_bytes;
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
    /// A checkpoint's fingerprint (names, sizes, header and data-sample
    /// SHA-256s) as JSON: what recipes and recorded results name it by.
    Fingerprint {
        ckpt: PathBuf,
        #[arg(long, default_value = "model")]
        role: String,
    },
    /// Read every tensor of a checkpoint and check its values are finite.
    Verify {
        ckpt: PathBuf,
    },
    /// Merge pre-SFT projections into the SFT checkpoint (QK-Restore and friends).
    Merge {
        #[arg(long)]
        pre: PathBuf,
        #[arg(long)]
        sft: PathBuf,
        /// qk-restore (default), q-restore, k-restore, v-restore or qk-pro.
        #[arg(long, conflicts_with = "recipe")]
        method: Option<String>,
        /// Blend: W = W_sft + alpha (W_pre - W_sft); 1 restores.
        #[arg(long, conflicts_with = "recipe")]
        alpha: Option<f32>,
        /// QK-Pro strength.
        #[arg(long, conflicts_with = "recipe")]
        beta: Option<f32>,
        /// Softmax layers to touch, e.g. 2,3,6 (default: all of a hybrid's;
        /// a pure softmax model needs them named, or --ranking).
        #[arg(long, value_delimiter = ',', conflicts_with = "recipe")]
        layers: Option<Vec<usize>>,
        /// Touch the top layers of a `qklab layers --json` ranking.
        #[arg(long, conflicts_with_all = ["recipe", "layers"])]
        ranking: Option<PathBuf>,
        /// Also take q_norm / k_norm from pre.
        #[arg(long, conflicts_with = "recipe")]
        include_norms: bool,
        /// Re-run the merge a recipe describes (the sources must match its fingerprints).
        #[arg(long)]
        recipe: Option<PathBuf>,
        /// Write the recipe of this merge here (it is also in the output's metadata and folder).
        #[arg(long)]
        recipe_out: Option<PathBuf>,
        /// Write an equivalent mergekit YAML here (copy-only methods and blends).
        #[arg(long)]
        mergekit_out: Option<PathBuf>,
        /// A new or empty folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Relative drift of every tensor from pre to sft (per head for softmax q/k).
    Drift {
        #[arg(long)]
        pre: PathBuf,
        #[arg(long)]
        sft: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Run a prompt through the model: greedy continuation, optional logits.
    Run {
        ckpt: PathBuf,
        /// Token ids, e.g. 256,72,105.
        #[arg(long, value_delimiter = ',', conflicts_with = "text")]
        ids: Option<Vec<u32>>,
        /// Text, tokenized with the checkpoint's tokenizer.json.
        #[arg(long)]
        text: Option<String>,
        #[arg(long, default_value_t = 32)]
        max_new: usize,
        /// auto (the faster here), gpu (wgpu), cpu (the CPU engine) or reference (the plain f32 oracle).
        #[arg(long, default_value = "auto")]
        backend: String,
        /// Set attn_logits_scaling to "hype A".
        #[arg(long)]
        hype: Option<f64>,
        /// Write the prompt's logits here: safetensors, one F32 tensor `logits` [T, V].
        #[arg(long)]
        logits_out: Option<PathBuf>,
        /// Do not stop at the config's eos_token_id.
        #[arg(long)]
        no_stop: bool,
    },
    /// Speed: prefill, decode and each kernel, for a checkpoint or a preset
    /// shape (tiny, demo, 2b: random weights, no file); `bench matmul --shapes`.
    Bench {
        /// A checkpoint, a preset (tiny, demo, 2b) or `matmul`.
        target: String,
        #[arg(long, value_delimiter = ',', default_value = "1024,4096")]
        tokens: Vec<u32>,
        /// For `matmul`: MxNxK,... with y[M,N] = x[M,K] W[N,K]^T.
        #[arg(long, value_delimiter = ',', default_value = "4096x2048x2048")]
        shapes: Vec<String>,
        #[arg(long, default_value = "auto")]
        backend: String,
        /// Greedy decode steps to time after the longest prefill.
        #[arg(long, default_value_t = 32)]
        decode: u32,
        #[arg(long, default_value_t = 3)]
        reps: usize,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// NIAH sweep (RULER scoring) over several checkpoints side by side.
    Niah {
        #[arg(required = true)]
        ckpts: Vec<PathBuf>,
        /// s1, s2, s3 or mk (text: needs tokenizer.json), or ids (token ids: needs none).
        #[arg(long)]
        task: String,
        /// Distractor needles (mk: default 8).
        #[arg(long)]
        distractors: Option<u32>,
        #[arg(long, value_delimiter = ',', default_value = "512,1024,2048,4096")]
        lengths: Vec<u32>,
        #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,0.75,1")]
        depths: Vec<f64>,
        #[arg(long, default_value_t = 20)]
        samples: u32,
        /// Sample s at depth index d and length L uses seed + 1000 s + 17 d + L (the reference's scheme).
        #[arg(long, default_value_t = 12345)]
        seed: u64,
        /// Evaluate with attn_logits_scaling "hype A" ...
        #[arg(long)]
        hype: Option<f64>,
        /// ... at lengths above this (0: all).
        #[arg(long, default_value_t = 0)]
        hype_above: u32,
        /// auto, gpu, cpu or reference (see `run`).
        #[arg(long, default_value = "auto")]
        backend: String,
        /// Prompts run together at most (default: as many as fit); results do not depend on it.
        #[arg(long)]
        batch: Option<usize>,
        /// Results and every sample; an existing file is resumed.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Attention routing on one NIAH prompt: distances, needle mass, pooled maps.
    Routing {
        #[arg(required = true)]
        ckpts: Vec<PathBuf>,
        /// s1, s2, s3, mk (text), or ids (token ids, for checkpoints without a tokenizer).
        #[arg(long, default_value = "s2")]
        task: String,
        #[arg(long)]
        layer: usize,
        #[arg(long, default_value_t = 0)]
        head: usize,
        #[arg(long, default_value_t = 0)]
        prompt_seed: u64,
        #[arg(long, default_value_t = 1024)]
        length: u32,
        #[arg(long, default_value_t = 0.5)]
        depth: f64,
        #[arg(long, default_value_t = 32)]
        block: u32,
        #[arg(long, default_value = "auto")]
        backend: String,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The recall and retention front of a pair: every merge of a grid
    /// (method, QK-Pro beta, softmax layers) scored for NIAH recall and
    /// for what it keeps of the fine-tune; the recommended one with --out.
    Tune {
        #[arg(long)]
        pre: PathBuf,
        #[arg(long)]
        sft: PathBuf,
        #[command(flatten)]
        recall: cli::recall::RecallArgs,
        /// Merge methods to try.
        #[arg(long, value_delimiter = ',', default_value = "qk-restore,qk-pro,q-restore,k-restore")]
        methods: Vec<String>,
        /// QK-Pro strengths to try.
        #[arg(long, value_delimiter = ',', default_value = "0.25,0.5,0.75,1")]
        betas: Vec<f32>,
        /// all, each (each softmax layer alone), leave-one-out, or layers like 3+6.
        #[arg(long, value_delimiter = ',', default_value = "all,each,leave-one-out")]
        layer_sets: Vec<String>,
        /// JSONL of {"prompt", "answer"}: retention is exact match on them.
        #[arg(long)]
        answers: Option<PathBuf>,
        /// Prompts (one a line) sft continues for the agreement score (default: built-in ones).
        #[arg(long)]
        prompts: Option<PathBuf>,
        /// With answers: points of exact match below sft's a recommended merge may lose.
        #[arg(long, default_value_t = 1.0)]
        tolerance: f64,
        /// Without answers: the largest mean KL(sft || merge) a recommended merge may have.
        #[arg(long, default_value_t = 0.01)]
        kl_tolerance: f64,
        #[arg(long, default_value = "auto")]
        backend: String,
        /// Every candidate with its cells and samples, the front and the recommendation.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write the recommended merge (with its recipe) into this new or empty folder.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The softmax layers ranked by the drop in NIAH recall when each is
    /// ablated in turn (leave-one-out); the top K are the layers a pure
    /// softmax model's merge restores. With --sft, also what restoring them does.
    Layers {
        /// The model to rank: the checkpoint from before SFT.
        #[arg(long)]
        pre: PathBuf,
        /// The fine-tuned checkpoint: also score it and QK-Restore of the top layers.
        #[arg(long)]
        sft: Option<PathBuf>,
        #[command(flatten)]
        recall: cli::recall::RecallArgs,
        /// zero-query (W_Q zeroed: uniform attention, the paper's reading) or zero-output (W_O zeroed).
        #[arg(long, default_value = "zero-query")]
        ablation: String,
        /// Layers to hand to the merge (default: a quarter of the layers for a pure softmax model, every softmax layer of a hybrid).
        #[arg(long)]
        top: Option<usize>,
        #[arg(long, default_value = "auto")]
        backend: String,
        /// The ranking with every layer's cells.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Exact match of a checkpoint's greedy answers to prompts with answers (JSONL).
    Answers {
        ckpt: PathBuf,
        #[arg(long)]
        answers: PathBuf,
        #[arg(long, default_value = "auto")]
        backend: String,
        #[arg(long)]
        json: Option<PathBuf>,
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
        Command::Fingerprint { ckpt, role } => {
            let fp = block_on(qklab::writer::SourceFingerprint::of(&role, &open(&ckpt)?))?;
            println!("{}", serde_json::to_string_pretty(&fp).expect("fingerprints serialize"));
        }
        Command::Verify { ckpt } => {
            let ck = open(&ckpt)?;
            let mut progress = cli::Progress::new("checking values", true);
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
        Command::Merge { pre, sft, method, alpha, beta, layers, ranking, include_norms, recipe, recipe_out, mergekit_out, out } => {
            let (pre_ck, sft_ck) = (open(&pre)?, open(&sft)?);
            let spec = match recipe {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
                    block_on(spec_of_recipe(&text, &pre_ck, &sft_ck))?
                }
                None => MergeSpec {
                    method: Method::parse(method.as_deref().unwrap_or("qk-restore"))?,
                    alpha: alpha.unwrap_or(1.0),
                    beta: beta.unwrap_or(1.0),
                    layers: match ranking {
                        Some(path) => Some(cli::layers::top_of_report(&path, &arch_of(&pre_ck)?)?),
                        None => layers,
                    },
                    include_norms,
                },
            };
            let started = Instant::now();
            let merge = cli::merge_to_dir(&pre_ck, &sft_ck, &spec, &out)?;
            let plan = &merge.plan;
            if let Some(path) = recipe_out {
                std::fs::write(&path, merge.recipe.to_json()).map_err(|e| Error::io(path.display(), e))?;
            }
            if let Some(path) = mergekit_out {
                let dtype = match sft_ck.tensors.first().map(|t| t.dtype) {
                    Some(Dtype::F16) => "float16",
                    Some(Dtype::F32) => "float32",
                    _ => "bfloat16",
                };
                let yaml = merge.recipe.to_mergekit_yaml(&pre.display().to_string(), &sft.display().to_string(), dtype)?;
                std::fs::write(&path, yaml).map_err(|e| Error::io(path.display(), e))?;
            }
            // Headers, fingerprint samples and decoded tensors, plus every copied range.
            let read = pre_ck.bytes_read() + sft_ck.bytes_read() + plan.copied_bytes();
            println!(
                "{}: {} tensors from pre ({}), wrote {} ({} copied), read {} in {:.2} s -> {}",
                merge.recipe.spec.method.name(),
                merge.changed.len(),
                if spec.is_copy_only() { "byte ranges, nothing decoded" } else { "recomputed" },
                human_bytes(plan.total_bytes()),
                human_bytes(plan.copied_bytes()),
                human_bytes(read),
                started.elapsed().as_secs_f64(),
                out.display()
            );
        }
        Command::Drift { pre, sft, json } => {
            let (pre_ck, sft_ck) = (open(&pre)?, open(&sft)?);
            let mut progress = cli::Progress::new("drift: tensors", false);
            let report = block_on(drift(&pre_ck, &sft_ck, |d, t| progress.update(d as u64, t as u64)));
            progress.finish();
            let report = report?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report).expect("report serializes"));
            } else {
                println!("layer  mixer            q       k       v       o       gate    mlp");
                for l in &report.layers {
                    println!(
                        "{:>5}  {:<15}  {:.4}  {:.4}  {:.4}  {:.4}  {:.4}  {:.4}{}",
                        l.index, l.mixer, l.q, l.k, l.v, l.o, l.gate, l.mlp, if l.softmax { " *" } else { "" }
                    );
                }
                println!("relative Frobenius drift ||W_sft - W_pre|| / ||W_pre||; * softmax layers");
            }
        }
        Command::Run { ckpt, ids, text, max_new, backend, hype, logits_out, no_stop } => {
            cli::run::run(cli::run::RunArgs { ckpt, ids, text, max_new, backend, hype, logits_out, no_stop })?;
        }
        Command::Bench { target, tokens, shapes, backend, decode, reps, json } => {
            cli::bench::run(cli::bench::BenchArgs { target, tokens, shapes, backend, decode, reps, json })?;
        }
        Command::Niah { ckpts, task, distractors, lengths, depths, samples, seed, hype, hype_above, backend, batch, json } => {
            let args = cli::niah::NiahArgs { ckpts, task, distractors, lengths, depths, samples, seed, hype, hype_above, backend, batch, json };
            cli::niah::run(args)?;
        }
        Command::Routing { ckpts, task, layer, head, prompt_seed, length, depth, block, backend, json } => {
            cli::routing::run(cli::routing::RoutingArgs { ckpts, task, layer, head, prompt_seed, length, depth, block, backend, json })?;
        }
        Command::Tune { pre, sft, recall, methods, betas, layer_sets, answers, prompts, tolerance, kl_tolerance, backend, json, out } => {
            cli::tune::run(cli::tune::TuneArgs { pre, sft, recall, methods, betas, layer_sets, answers, prompts, tolerance, kl_tolerance, backend, json, out })?;
        }
        Command::Layers { pre, sft, recall, ablation, top, backend, json } => {
            cli::layers::run(cli::layers::LayersArgs { pre, sft, recall, ablation, top, backend, json })?;
        }
        Command::Answers { ckpt, answers, backend, json } => cli::tune::answers(cli::tune::AnswersArgs { ckpt, answers, backend, json })?,
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
