//! `qklab niah`: NIAH sweeps over several checkpoints side by side, scored
//! as RULER does, with every sample in the JSON (which also lets an
//! interrupted sweep resume: samples already in it are not run again).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use qklab::checkpoint::Checkpoint;
use qklab::config::LogitsScaling;
use qklab::model::engine::Engine;
use qklab::model::fit::EngineOptions;
use qklab::niah::{Task, ID_TASK};
use qklab::source::{block_on, FsSource};
use qklab::sweep::{self, PromptMaker, Sample, SampleResult};
use qklab::tokenizer::Tokenizer;
use qklab::{Error, Result};


pub struct NiahArgs {
    pub ckpts: Vec<PathBuf>,
    pub task: String,
    pub distractors: Option<u32>,
    pub lengths: Vec<u32>,
    pub depths: Vec<f64>,
    pub samples: u32,
    pub seed: u64,
    pub hype: Option<f64>,
    pub hype_above: u32,
    pub backend: String,
    pub json: Option<PathBuf>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Report {
    results: Vec<sweep::CellResult>,
    samples: Vec<SampleResult>,
}

fn load_previous(path: &Option<PathBuf>) -> Vec<SampleResult> {
    let Some(path) = path else { return Vec::new() };
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice::<Report>(&b).ok()).map_or(Vec::new(), |r| r.samples)
}

fn save(path: &Option<PathBuf>, samples: &[SampleResult]) -> Result<()> {
    if let Some(path) = path {
        let report = Report { results: sweep::cells(samples), samples: samples.to_vec() };
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&report).expect("json")).map_err(|e| Error::io(tmp.display(), e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path.display(), e))?;
    }
    Ok(())
}

pub fn run(a: NiahArgs) -> Result<()> {
    if a.task != ID_TASK {
        Task::parse(&a.task)?;
    }
    if a.depths.iter().any(|d| !(0.0..=1.0).contains(d)) {
        return Err(Error::Usage("depths must lie in [0, 1]".into()));
    }
    let gpu = super::gpu_for(&a.backend)?;
    let mut all = load_previous(&a.json);
    let done: HashSet<_> = all.iter().map(|r| r.key()).collect();
    if !done.is_empty() {
        eprintln!("resuming: {} samples already in the JSON", done.len());
    }
    for ckpt in &a.ckpts {
        let name = ckpt.display().to_string();
        let ck = block_on(Checkpoint::open(FsSource::open(ckpt)?))?;
        let tok = block_on(Tokenizer::of_checkpoint(&ck))?;
        let arch = super::arch_with_hype(&ck, None)?;
        let maker = PromptMaker::of(&ck, tok.as_ref())?;
        let samples = maker.samples(&a.task, &a.lengths, &a.depths, a.samples, a.seed, a.distractors).map_err(|e| Error::Usage(format!("{name}: {e}")))?;
        let longest = samples.iter().map(|s| s.ids.len() + s.max_new).max().unwrap_or(1) as u32;
        let base = arch.logits_scaling;
        let opts = EngineOptions { max_context: longest, ..Default::default() };
        let mut engine = block_on(Engine::load(gpu.as_ref(), &ck, arch, opts, &mut |_| {}))?;
        let stop: Vec<u32> = ck.config_u32("eos_token_id").into_iter().collect();
        let detok = |ids: &[u32]| maker.text(&a.task, ids);
        let started = std::time::Instant::now();
        for &length in &a.lengths {
            // HyPE only past --hype-above tokens, as the reference evaluates.
            let hype = a.hype.filter(|_| length > a.hype_above);
            engine.set_logits_scaling(hype.map_or(base, LogitsScaling::Hype));
            let cell: Vec<Sample> = samples.iter().filter(|s| s.length == length).cloned().collect();
            let total = cell.len();
            block_on(sweep::run(&engine, &name, &cell, &stop, &detok, &done, &mut all, &mut |i, _| {
                eprint!("\r{name}: {} @{length}: {i}/{total} samples ({:.0} s)", a.task, started.elapsed().as_secs_f64());
                true
            }))?;
            eprintln!();
            save(&a.json, &all)?;
        }
    }
    print_table(&a, &all);
    Ok(())
}

/// One row per model, one column per length (accuracy over depths, %).
fn print_table(a: &NiahArgs, all: &[SampleResult]) {
    print!("{:<40}", "model");
    for l in &a.lengths {
        print!("  {:>8}", format!("{}@{l}", a.task));
    }
    println!();
    for ckpt in &a.ckpts {
        let name = ckpt.display().to_string();
        print!("{:<40}", shorten(Path::new(&name)));
        for &l in &a.lengths {
            let rows: Vec<f64> = all.iter().filter(|r| r.model == name && r.length == l && r.task == a.task).map(|r| r.score).collect();
            let acc = 100.0 * rows.iter().sum::<f64>() / rows.len().max(1) as f64;
            print!("  {acc:>8.1}");
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
