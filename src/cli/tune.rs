//! `qklab tune`: the recall and retention front of a pair's merges, the
//! table of every candidate, and with `--out` the recommended merge written.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use qklab::app::tune::{run_tune, Event, TuneReport, TuneSpec};
use qklab::merge::Method;
use qklab::source::block_on;
use qklab::tune::front::Tolerance;
use qklab::tune::grid::{Grid, LayerSets};
use qklab::tune::retention::{parse_answers, parse_prompts};
use qklab::{Error, Result};

use super::recall::RecallArgs;

#[derive(Args)]
pub struct TuneArgs {
    /// The checkpoint from before SFT.
    #[arg(long)]
    pub pre: PathBuf,
    /// The fine-tuned checkpoint.
    #[arg(long)]
    pub sft: PathBuf,
    #[command(flatten)]
    pub recall: RecallArgs,
    /// Merge methods to try.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "qk-restore,qk-pro,q-restore,k-restore"
    )]
    pub methods: Vec<String>,
    /// QK-Pro strengths to try.
    #[arg(long, value_delimiter = ',', default_value = "0.25,0.5,0.75,1")]
    pub betas: Vec<f32>,
    /// all, each (each softmax layer alone), leave-one-out, or layers like 3+6.
    #[arg(long, value_delimiter = ',', default_value = "all,each,leave-one-out")]
    pub layer_sets: Vec<String>,
    /// JSONL of {"prompt", "answer"}: retention is exact match on them.
    #[arg(long)]
    pub answers: Option<PathBuf>,
    /// Prompts (one a line) sft continues for the agreement score (default: built-in ones).
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    /// With answers: points of exact match below sft's a recommended merge may lose.
    #[arg(long, default_value_t = 1.0)]
    pub tolerance: f64,
    /// Without answers: the largest mean KL(sft || merge) a recommended merge may have.
    #[arg(long, default_value_t = 0.01)]
    pub kl_tolerance: f64,
    /// auto, gpu, cpu or reference (see `run`).
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Every candidate with its cells and samples, the front and the recommendation.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the recommended merge (with its recipe) into this new or empty folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))
}

impl TuneArgs {
    fn spec(&self) -> Result<TuneSpec> {
        let sweeps = self.recall.sweeps()?;
        let grid = Grid {
            methods: self
                .methods
                .iter()
                .map(|m| Method::parse(m))
                .collect::<Result<Vec<_>>>()?,
            betas: self.betas.clone(),
            layer_sets: self
                .layer_sets
                .iter()
                .map(|l| LayerSets::parse(l))
                .collect::<Result<Vec<_>>>()?,
        };
        Ok(TuneSpec {
            sweeps,
            grid,
            tolerance: Tolerance {
                points: self.tolerance,
                kl: self.kl_tolerance,
            },
            answers: self
                .answers
                .as_deref()
                .map(|p| parse_answers(&read_text(p)?))
                .transpose()?,
            prompts: self
                .prompts
                .as_deref()
                .map(|p| parse_prompts(&read_text(p)?))
                .transpose()?,
        })
    }
}

pub fn run(a: TuneArgs) -> Result<()> {
    let spec = a.spec()?;
    spec.check()?;
    let backend = super::backend(&a.backend)?;
    let (pre, sft) = (super::open_model(&a.pre)?, super::open_model(&a.sft)?);
    let started = Instant::now();
    let mut current = String::new();
    let mut shown = started;
    let report = block_on(run_tune(&backend, &pre, &sft, &spec, &mut |e| {
        match e {
            Event::Loading => eprintln!("loading sft and making its reference continuations…"),
            Event::Candidate {
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
                "\r{current}: recall {:.1}, retention {:.1}, KL {:.4}                ",
                s.recall, s.retention, s.kl
            ),
        }
        true
    }))?
    .ok_or_else(|| Error::Usage("the tune was cancelled".into()))?;
    print_table(&report);
    if let Some(path) = &a.json {
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&report).expect("reports serialize"),
        )
        .map_err(|e| Error::io(path.display(), e))?;
    }
    if let Some(out) = &a.out {
        let best = &report.candidates[report.recommended];
        match &best.spec {
            Some(spec) => {
                let merge = super::merge::merge_to_dir(&pre.ck, &sft.ck, spec, out)?;
                println!("wrote the recommended merge ({}) with its recipe to {}", merge.recipe.spec.method.name(), out.display());
            }
            None => println!("the recommended point is sft itself (no repair keeps the skill within the tolerance): nothing written to {}", out.display()),
        }
    }
    Ok(())
}

/// Every candidate, the front marked `*` and the recommendation `<-`.
fn print_table(r: &TuneReport) {
    let what = if r.spec.answers.is_some() {
        "retention = exact match on the answers"
    } else {
        "retention = argmax agreement with sft"
    };
    println!(
        "{:<24} {:>7} {:>9} {:>9} {:>8}",
        "candidate", "recall", "retention", "agreement", "KL"
    );
    for (i, c) in r.candidates.iter().enumerate() {
        let mark = match (r.front.contains(&i), i == r.recommended) {
            (_, true) => " * <- recommended",
            (true, false) => " *",
            _ => "",
        };
        println!(
            "{:<24} {:>7.1} {:>9.1} {:>9.1} {:>8.4}{mark}",
            c.label, c.recall, c.retention, c.agreement, c.kl
        );
    }
    println!("* the Pareto front on (recall, retention); {what}; KL(sft || candidate) per token ({}); {} candidates in {:.1} s on {}", r.kl_note, r.candidates.len(), r.seconds, r.engine);
}
