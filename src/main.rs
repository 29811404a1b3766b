//! `qklab`, the command-line face of the crate: the same core the page runs.
//! This file only parses and dispatches; each command's flags and body live
//! in its file under `cli/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

use cli::{answers, bench, checkpoint, drift, layers, merge, niah, routing, run, synth, tune};

#[derive(Parser)]
#[command(
    name = "qklab",
    version,
    about = "Repair and inspect long-context routing in hybrid linear-attention LLMs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a checkpoint's architecture summary, reading only headers.
    Inspect(checkpoint::InspectArgs),
    /// A checkpoint's fingerprint (names, sizes, header and data-sample
    /// SHA-256s) as JSON: what recipes and recorded results name it by.
    Fingerprint(checkpoint::FingerprintArgs),
    /// Read every tensor of a checkpoint and check its values are finite.
    Verify(checkpoint::VerifyArgs),
    /// Merge pre-SFT projections into the SFT checkpoint (QK-Restore and friends).
    Merge(merge::MergeArgs),
    /// Relative drift of every tensor from pre to sft (per head for softmax q/k).
    Drift(drift::DriftArgs),
    /// Run a prompt through the model: greedy continuation, optional logits.
    Run(run::RunArgs),
    /// Speed: prefill, decode and each kernel, for a checkpoint or a preset
    /// shape (tiny, demo, 2b, qwen3.5-0.8b, jet-nemotron-2b: random weights, no file); `bench matmul --shapes`.
    Bench(bench::BenchArgs),
    /// NIAH sweep (RULER scoring) over several checkpoints side by side.
    Niah(niah::NiahArgs),
    /// Attention routing on one NIAH prompt: distances, needle mass, pooled maps.
    Routing(routing::RoutingArgs),
    /// The recall and retention front of a pair: every merge of a grid
    /// (method, QK-Pro beta, softmax layers) scored for NIAH recall and
    /// for what it keeps of the fine-tune; the recommended one with --out.
    Tune(tune::TuneArgs),
    /// The softmax layers ranked by the drop in NIAH recall when each is
    /// ablated in turn (leave-one-out); the top K are the layers a pure
    /// softmax model's merge restores. With --sft, also what restoring them does.
    Layers(layers::LayersArgs),
    /// Exact match of a checkpoint's greedy answers to prompts with answers (JSONL).
    Answers(answers::AnswersArgs),
    /// Write a HypeNet-, Qwen3.5- or Jet-Nemotron-shaped checkpoint with random weights.
    Synth(synth::SynthArgs),
}

fn dispatch(command: Command) -> qklab::Result<()> {
    match command {
        Command::Inspect(a) => checkpoint::inspect(a),
        Command::Fingerprint(a) => checkpoint::fingerprint(a),
        Command::Verify(a) => checkpoint::verify(a),
        Command::Merge(a) => merge::run(a),
        Command::Drift(a) => drift::run(a),
        Command::Run(a) => run::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Niah(a) => niah::run(a),
        Command::Routing(a) => routing::run(a),
        Command::Tune(a) => tune::run(a),
        Command::Layers(a) => layers::run(a),
        Command::Answers(a) => answers::run(a),
        Command::Synth(a) => synth::run(a),
    }
}

fn main() -> ExitCode {
    match dispatch(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qklab: error: {e}");
            ExitCode::FAILURE
        }
    }
}
