//! `qklab layers`: the softmax layers ranked by how much NIAH recall
//! drops when each is ablated (the paper's Appendix M), the top K to
//! restore, and with `--sft` what restoring them does.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use qklab::app::layers::{join, run_layers, Ablation, Event, LayersReport, LayersSpec};
use qklab::source::block_on;
use qklab::{Error, Result};

use super::recall::RecallArgs;

#[derive(Args)]
pub struct LayersArgs {
    /// The model to rank: the checkpoint from before SFT.
    #[arg(long)]
    pub pre: PathBuf,
    /// The fine-tuned checkpoint: also score it and QK-Restore of the top layers.
    #[arg(long)]
    pub sft: Option<PathBuf>,
    #[command(flatten)]
    pub recall: RecallArgs,
    /// zero-query (W_Q zeroed: uniform attention, the paper's reading) or zero-output (W_O zeroed).
    #[arg(long, default_value = "zero-query")]
    pub ablation: String,
    /// Layers to hand to the merge (default: a quarter of the layers for a pure softmax model, every softmax layer of a hybrid).
    #[arg(long)]
    pub top: Option<usize>,
    /// auto, gpu, cpu or reference (see `run`).
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// The ranking with every layer's cells.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(a: LayersArgs) -> Result<()> {
    let spec = LayersSpec {
        sweeps: a.recall.sweeps()?,
        ablation: Ablation::parse(&a.ablation)?,
        top: a.top,
    };
    spec.check()?;
    let backend = super::backend(&a.backend)?;
    let pre = super::open_model(&a.pre)?;
    let sft = a.sft.as_deref().map(super::open_model).transpose()?;
    let started = Instant::now();
    let (mut current, mut shown) = (String::new(), started);
    let report = block_on(run_layers(&backend, &pre, sft.as_ref(), &spec, &mut |e| {
        match e {
            Event::Loading { model } => eprintln!("loading {model}…"),
            Event::Step {
                index,
                total,
                label,
            } => current = format!("[{}/{total}] {label}", index + 1),
            Event::Prompt {
                done,
                total,
                engine,
            } if shown.elapsed().as_millis() >= 250 || done == 0 => {
                shown = Instant::now();
                eprint!(
                    "\r{current}: prompt {done}/{total} on {engine} ({:.0} s)   ",
                    started.elapsed().as_secs_f64()
                );
            }
            Event::Prompt { .. } => {}
            Event::Scored(s) => eprintln!(
                "\r{current}: recall {:.1}, drop {:+.1}                ",
                s.recall, s.drop
            ),
        }
        true
    }))?
    .ok_or_else(|| Error::Usage("the ranking was cancelled".into()))?;
    eprintln!();
    print_report(&report);
    if let Some(path) = &a.json {
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&report).expect("reports serialize"),
        )
        .map_err(|e| Error::io(path.display(), e))?;
    }
    Ok(())
}

fn print_report(r: &LayersReport) {
    println!(
        "unablated recall {:.1}%  ({}: {})",
        r.baseline,
        r.spec.ablation.name(),
        r.spec.ablation.describe()
    );
    println!("{:>5} {:>8} {:>8}  rank", "layer", "recall", "drop");
    for s in &r.layers {
        let rank = r
            .ranking
            .iter()
            .position(|&l| l == s.layer)
            .map_or(0, |p| p + 1);
        let mark = if r.top.contains(&s.layer) { " *" } else { "" };
        println!(
            "{:>5} {:>8.1} {:>+8.1}  {rank}{mark}",
            s.layer, s.recall, s.drop
        );
    }
    let layers = join(&r.top);
    let steps = r.layers.len() + 1 + if r.repair.is_some() { 2 } else { 0 };
    println!(
        "* top {}: --layers {layers}   ({steps} sweeps in {:.1} s on {})",
        r.top.len(),
        r.seconds,
        r.engine
    );
    if let Some(rep) = &r.repair {
        println!(
            "QK-Restore of layers {layers}: recall {:.1}% (sft {:.1}%, pre {:.1}%)",
            rep.merged, rep.sft, r.baseline
        );
    }
}

/// The top layers of a ranking `qklab layers --json` wrote, for a merge
/// of `pre`; a ranking of another model is refused.
pub fn top_of_report(path: &std::path::Path, pre: &qklab::config::Arch) -> Result<Vec<usize>> {
    let text = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
    let report: LayersReport = serde_json::from_slice(&text).map_err(|e| {
        Error::Usage(format!(
            "{}: not a `qklab layers` report: {e}",
            path.display()
        ))
    })?;
    let top = report.top_for(pre)?;
    eprintln!(
        "restoring the top {} layers of {}'s ranking: {top:?}",
        top.len(),
        report.model
    );
    Ok(top)
}
