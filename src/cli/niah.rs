//! `qklab niah`: NIAH sweeps over several checkpoints side by side, scored
//! as RULER does, with every sample in the JSON (which also lets an
//! interrupted sweep resume: samples already in it are not run again).

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use super::recall::SweepFlags;
use qklab::app::sweep::{run_sweep, table_cell, Event, SweepReport};
use qklab::prompts::TaskKind;
use qklab::source::block_on;
use qklab::sweep::SampleResult;
use qklab::{Error, Result};

/// `niah` draws the whole picture by default: four lengths, 20 prompts a cell.
#[derive(Args)]
#[command(mut_arg("lengths", |a| a.default_value("512,1024,2048,4096")), mut_arg("samples", |a| a.default_value("20")))]
pub struct NiahArgs {
    #[arg(required = true)]
    pub ckpts: Vec<PathBuf>,
    /// s1, s2, s3 or mk (text: needs tokenizer.json), or ids (token ids: needs none).
    #[arg(long)]
    pub task: TaskKind,
    #[command(flatten)]
    pub sweep: SweepFlags,
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
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<SweepReport>(&b).ok())
        .map_or(Vec::new(), |r| r.samples)
}

/// Writes the report beside its path first, so an interrupted write never
/// destroys the previous one.
fn save(path: &Option<PathBuf>, samples: &[SampleResult]) -> Result<()> {
    if let Some(path) = path {
        let tmp = path.with_extension("partial");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(&SweepReport::of(samples)).expect("json"),
        )
        .map_err(|e| Error::io(tmp.display(), e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path.display(), e))?;
    }
    Ok(())
}

pub fn run(a: NiahArgs) -> Result<()> {
    let spec = a.sweep.spec(a.task);
    let backend = super::backend(&a.backend)?;
    let mut all = load_previous(&a.json);
    if !all.is_empty() {
        eprintln!("resuming: {} samples already in the JSON", all.len());
    }
    let models = a
        .ckpts
        .iter()
        .map(|p| super::open_model(p))
        .collect::<Result<Vec<_>>>()?;
    let started = Instant::now();
    let mut shown = started;
    let mut saved = Ok(());
    block_on(run_sweep(
        &backend,
        &models,
        &spec,
        a.batch,
        &mut all,
        &mut |event| {
            match event {
                Event::Loading { .. } => {}
                Event::Prompt(p) if p.model_prompts.0 == 0 => {
                    eprintln!("{}: on {}", p.model, p.engine)
                }
                // A batch's prompts start together: one line a quarter second at most.
                Event::Prompt(p) if shown.elapsed().as_millis() >= 250 || p.cell.0 == 0 => {
                    shown = Instant::now();
                    let (i, n) = p.cell;
                    eprint!(
                        "\r{}: {} @{}: {i}/{n} samples ({:.1} s)   ",
                        p.model,
                        spec.task,
                        p.length,
                        started.elapsed().as_secs_f64()
                    );
                }
                Event::Prompt(_) => {}
                Event::Finished(results) => saved = save(&a.json, results),
            }
            saved.is_ok()
        },
    ))?;
    eprintln!(
        "\r{} prompts in {:.1} s",
        spec.per_model() * a.ckpts.len(),
        started.elapsed().as_secs_f64()
    );
    saved?;
    print_table(&a, spec.task, &all);
    Ok(())
}

/// One row per model, one column per length (accuracy over depths, %).
fn print_table(a: &NiahArgs, task: TaskKind, all: &[SampleResult]) {
    print!("{:<40}", "model");
    for l in &a.sweep.lengths {
        print!("  {:>8}", format!("{task}@{l}"));
    }
    println!();
    for ckpt in &a.ckpts {
        let name = ckpt.display().to_string();
        print!("{:<40}", shorten(Path::new(&name)));
        for &l in &a.sweep.lengths {
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
