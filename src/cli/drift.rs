//! `qklab drift`: how far fine-tuning moved every tensor, layer by layer
//! (per head for the softmax layers' q and k), as text or JSON.

use std::path::PathBuf;

use clap::Args;
use qklab::merge::drift::{drift, DriftReport};
use qklab::source::block_on;
use qklab::Result;

#[derive(Args)]
pub struct DriftArgs {
    /// The checkpoint from before SFT.
    #[arg(long)]
    pub pre: PathBuf,
    /// The fine-tuned checkpoint.
    #[arg(long)]
    pub sft: PathBuf,
    /// Print JSON (every tensor, per head for softmax q/k) instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: DriftArgs) -> Result<()> {
    let (pre, sft) = (
        super::open_checkpoint(&a.pre)?,
        super::open_checkpoint(&a.sft)?,
    );
    let mut progress = super::Progress::new("drift: tensors", false);
    let report = block_on(drift(&pre, &sft, |d, t| {
        progress.update(d as u64, t as u64)
    }));
    progress.finish();
    let report = report?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    } else {
        print_table(&report);
    }
    Ok(())
}

/// One row per layer, the softmax layers marked `*`; Qwen3.5's gate rows
/// of q_proj in a column of their own.
fn print_table(report: &DriftReport) {
    let gated = report.layers.iter().any(|l| l.q_gate.is_some());
    let extra = if gated { "  q gate" } else { "" };
    println!("layer  mixer            q       k       v       o       gate    mlp{extra}");
    for l in &report.layers {
        let q_gate = match (gated, l.q_gate) {
            (true, Some(g)) => format!("  {g:.4}"),
            (true, None) => "        ".into(),
            _ => String::new(),
        };
        println!(
            "{:>5}  {:<15}  {:.4}  {:.4}  {:.4}  {:.4}  {:.4}  {:.4}{q_gate}{}",
            l.index,
            l.mixer,
            l.q,
            l.k,
            l.v,
            l.o,
            l.gate,
            l.mlp,
            if l.softmax { " *" } else { "" }
        );
    }
    if gated {
        println!("q: the query rows of q_proj; q gate: its output gate's rows (Qwen3.5)");
    }
    println!("relative Frobenius drift ||W_sft - W_pre|| / ||W_pre||; * softmax layers");
}
