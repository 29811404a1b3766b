//! `qklab niah`: NIAH sweeps over several checkpoints side by side, scored
//! as RULER does, with every sample in the JSON (which also lets an
//! interrupted sweep resume: samples already in it are not run again).

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use qklab::app::sweep::{run_sweep, table_cell, Event, SweepReport, SweepSpec};
use qklab::prompts::TaskKind;
use qklab::source::block_on;
use qklab::sweep::SampleResult;
use qklab::{Error, Result};

#[derive(Args)]
pub struct NiahArgs {
    #[arg(required = true)]
    pub ckpts: Vec<PathBuf>,
    /// s1, s2, s3 or mk (text: needs tokenizer.json), or ids (token ids: needs none).
    #[arg(long)]
    pub task: TaskKind,
    /// Distractor needles (mk: default 8).
    #[arg(long)]
    pub distractors: Option<u32>,
    /// Prompt lengths in tokens.
    #[arg(long, value_delimiter = ',', default_value = "512,1024,2048,4096")]
    pub lengths: Vec<u32>,
    /// Needle depths, from 0 (the start of the context) to 1 (its end).
    #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,0.75,1")]
    pub depths: Vec<f64>,
    /// Prompts per length and depth.
    #[arg(long, default_value_t = 20)]
    pub samples: u32,
    /// Sample s at depth index d and length L uses seed + 1000 s + 17 d + L (the reference's scheme).
    #[arg(long, default_value_t = 12345)]
    pub seed: u64,
    /// Evaluate with attn_logits_scaling "hype A" ...
    #[arg(long)]
    pub hype: Option<f64>,
    /// ... at lengths above this (0: all).
    #[arg(long, default_value_t = 0)]
    pub hype_above: u32,
    /// auto, gpu, cpu or reference (see `run`).
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Prompts run together at most (default: as many as fit); results do not depend on it.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Results and every sample; an existing file is resumed.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn load_previous(path: &Option<PathBuf>) -> Vec<SampleResult> {
    let Some(path) = path else { return Vec::new() };
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice::<SweepReport>(&b).ok()).map_or(Vec::new(), |r| r.samples)
}

/// Writes the report beside its path first, so an interrupted write never
/// destroys the previous one.
fn save(path: &Option<PathBuf>, samples: &[SampleResult]) -> Result<()> {
    if let Some(path) = path {
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&SweepReport::of(samples)).expect("json")).map_err(|e| Error::io(tmp.display(), e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path.display(), e))?;
    }
    Ok(())
}

pub fn run(a: NiahArgs) -> Result<()> {
    let spec = SweepSpec {
        task: a.task,
        lengths: a.lengths.clone(),
        depths: a.depths.clone(),
        samples: a.samples,
        seed: a.seed,
        distractors: a.distractors,
        hype: a.hype,
        hype_above: a.hype_above,
    };
    let backend = super::backend(&a.backend)?;
    let mut all = load_previous(&a.json);
    if !all.is_empty() {
        eprintln!("resuming: {} samples already in the JSON", all.len());
    }
    let models = a.ckpts.iter().map(|p| super::open_model(p)).collect::<Result<Vec<_>>>()?;
    let started = Instant::now();
    let mut shown = started;
    let mut saved = Ok(());
    block_on(run_sweep(&backend, &models, &spec, a.batch, &mut all, &mut |event| {
        match event {
            Event::Loading { .. } => {}
            Event::Prompt(p) if p.model_prompts.0 == 0 => eprintln!("{}: on {}", p.model, p.engine),
            // A batch's prompts start together: one line a quarter second at most.
            Event::Prompt(p) if shown.elapsed().as_millis() >= 250 || p.cell.0 == 0 => {
                shown = Instant::now();
                let (i, n) = p.cell;
                eprint!("\r{}: {} @{}: {i}/{n} samples ({:.1} s)   ", p.model, spec.task, p.length, started.elapsed().as_secs_f64());
            }
            Event::Prompt(_) => {}
            Event::Finished(results) => saved = save(&a.json, results),
        }
        saved.is_ok()
    }))?;
    eprintln!("\r{} prompts in {:.1} s", spec.per_model() * a.ckpts.len(), started.elapsed().as_secs_f64());
    saved?;
    print_table(&a, spec.task, &all);
    Ok(())
}

/// One row per model, one column per length (accuracy over depths, %).
fn print_table(a: &NiahArgs, task: TaskKind, all: &[SampleResult]) {
    print!("{:<40}", "model");
    for l in &a.lengths {
        print!("  {:>8}", format!("{task}@{l}"));
    }
    println!();
    for ckpt in &a.ckpts {
        let name = ckpt.display().to_string();
        print!("{:<40}", shorten(Path::new(&name)));
        for &l in &a.lengths {
            print!("  {:>8.1}", table_cell(all, &name, task, l).unwrap_or(0.0));
        }
        println!();
    }
}

fn shorten(p: &Path) -> String {
    let s = p.display().to_string();
    if s.len() <= 40 {
        s
    } else {
        format!("…{}", &s[s.len() - 39..])
    }
}
