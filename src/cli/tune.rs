//! `qklab tune`: the recall and retention front of a pair, and `qklab
//! answers`: a checkpoint's exact match on prompts with answers, by
//! greedy decoding (the independent check of tune's teacher-forced score).

use std::path::{Path, PathBuf};
use std::time::Instant;

use qklab::app::tune::{run_tune, Event, TuneReport, TuneSpec};
use qklab::merge::Method;
use qklab::source::block_on;
use qklab::tune::front::Tolerance;
use qklab::tune::grid::{Grid, LayerSets};
use qklab::tune::retention::{forced_answer, parse_answers, parse_prompts};
use qklab::{Error, Result};

use super::recall::RecallArgs;

pub struct TuneArgs {
    pub pre: PathBuf,
    pub sft: PathBuf,
    pub recall: RecallArgs,
    pub methods: Vec<String>,
    pub betas: Vec<f32>,
    pub layer_sets: Vec<String>,
    pub answers: Option<PathBuf>,
    pub prompts: Option<PathBuf>,
    pub tolerance: f64,
    pub kl_tolerance: f64,
    pub backend: String,
    pub json: Option<PathBuf>,
    pub out: Option<PathBuf>,
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))
}

impl TuneArgs {
    fn spec(&self) -> Result<TuneSpec> {
        let sweeps = self.recall.sweeps()?;
        let grid = Grid {
            methods: self.methods.iter().map(|m| Method::parse(m)).collect::<Result<Vec<_>>>()?,
            betas: self.betas.clone(),
            layer_sets: self.layer_sets.iter().map(|l| LayerSets::parse(l)).collect::<Result<Vec<_>>>()?,
        };
        Ok(TuneSpec {
            sweeps,
            grid,
            tolerance: Tolerance { points: self.tolerance, kl: self.kl_tolerance },
            answers: self.answers.as_deref().map(|p| parse_answers(&read_text(p)?)).transpose()?,
            prompts: self.prompts.as_deref().map(|p| parse_prompts(&read_text(p)?)).transpose()?,
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
            Event::Candidate { index, total, label } => current = format!("[{}/{total}] {label}", index + 1),
            Event::Prompt { done, total, engine } if shown.elapsed().as_millis() >= 250 || done == 0 => {
                shown = Instant::now();
                eprint!("\r{current}: prompt {done}/{total} on {engine} ({:.0} s)   ", started.elapsed().as_secs_f64());
            }
            Event::Prompt { .. } => {}
            Event::Scored(s) => eprintln!("\r{current}: recall {:.1}, retention {:.1}, KL {:.4}                ", s.recall, s.retention, s.kl),
        }
        true
    }))?
    .ok_or_else(|| Error::Usage("the tune was cancelled".into()))?;
    print_table(&report);
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report).expect("reports serialize")).map_err(|e| Error::io(path.display(), e))?;
    }
    if let Some(out) = &a.out {
        let best = &report.candidates[report.recommended];
        match &best.spec {
            Some(spec) => {
                let merge = super::merge_to_dir(&pre.ck, &sft.ck, spec, out)?;
                println!("wrote the recommended merge ({}) with its recipe to {}", merge.recipe.spec.method.name(), out.display());
            }
            None => println!("the recommended point is sft itself (no repair keeps the skill within the tolerance): nothing written to {}", out.display()),
        }
    }
    Ok(())
}

/// Every candidate, the front marked `*` and the recommendation `<-`.
fn print_table(r: &TuneReport) {
    let what = if r.spec.answers.is_some() { "retention = exact match on the answers" } else { "retention = argmax agreement with sft" };
    println!("{:<24} {:>7} {:>9} {:>9} {:>8}", "candidate", "recall", "retention", "agreement", "KL");
    for (i, c) in r.candidates.iter().enumerate() {
        let mark = match (r.front.contains(&i), i == r.recommended) {
            (_, true) => " * <- recommended",
            (true, false) => " *",
            _ => "",
        };
        println!("{:<24} {:>7.1} {:>9.1} {:>9.1} {:>8.4}{mark}", c.label, c.recall, c.retention, c.agreement, c.kl);
    }
    println!("* the Pareto front on (recall, retention); {what}; KL(sft || candidate) per token ({}); {} candidates in {:.1} s on {}", r.kl_note, r.candidates.len(), r.seconds, r.engine);
}

pub struct AnswersArgs {
    pub ckpt: PathBuf,
    pub answers: PathBuf,
    pub backend: String,
    pub json: Option<PathBuf>,
}

/// Greedy answers of `ckpt` to each prompt, as many tokens as the answer
/// has, compared token for token.
pub fn answers(a: AnswersArgs) -> Result<()> {
    let m = super::open_model(&a.ckpt)?;
    let tok = m.tokenizer.as_ref().ok_or_else(|| Error::Usage("scoring answers needs the checkpoint's tokenizer.json".into()))?;
    let items = parse_answers(&read_text(&a.answers)?)?.iter().map(|x| forced_answer(tok, x)).collect::<Result<Vec<_>>>()?;
    // Each answer of a batch decodes as long as the batch's longest.
    let longest = items.iter().map(|f| f.prompt.len()).max().unwrap_or(1) + items.iter().map(|f| f.target.len()).max().unwrap_or(1);
    let backend = super::backend(&a.backend)?;
    let engine = block_on(backend.load(&m, longest as u32, false))?;
    let mut matched = Vec::with_capacity(items.len());
    // Batched greedy decoding, each answer cut to its own length.
    for group in items.chunks(engine.max_batch(longest).max(1)) {
        let mut b = block_on(engine.batch(group.len(), false))?;
        let prompts: Vec<&[u32]> = group.iter().map(|f| f.prompt.as_slice()).collect();
        let first = block_on(engine.next_tokens(&mut b, &prompts))?;
        let steps = group.iter().map(|f| f.target.len()).max().unwrap_or(1).saturating_sub(1);
        let seqs: Vec<usize> = (0..group.len()).collect();
        let rest = block_on(engine.decode(&mut b, &seqs, &first, steps))?;
        for ((f, t0), more) in group.iter().zip(first).zip(rest) {
            let got: Vec<u32> = std::iter::once(t0).chain(more).take(f.target.len()).collect();
            matched.push(got == f.target);
        }
    }
    let exact = qklab::sweep::percent_true(&matched);
    println!("exact match: {exact:.1}% of {} answers ({})", matched.len(), engine.backend());
    if let Some(path) = &a.json {
        let v = serde_json::json!({ "exact": exact, "answers": matched });
        std::fs::write(path, serde_json::to_vec_pretty(&v).expect("json")).map_err(|e| Error::io(path.display(), e))?;
    }
    Ok(())
}
