//! Running NIAH samples through a model and scoring them as RULER does:
//! greedy decoding that stops at EOS, once the value is out, or after the
//! sample's token allowance; a sample scores 1 when the value appears in
//! the generated text, case-insensitively. Results accumulate sample by
//! sample, so a sweep can be cancelled and resumed where it stopped.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::engine::Engine;
pub use crate::niah::score;
use crate::prompts::{Sample, TaskKind};

/// Tokens one sequence of `samples` needs: the longest prompt plus its
/// answer allowance (1 for none). What an engine is loaded for, and what
/// sizes a batch.
pub fn tokens_needed(samples: &[Sample]) -> usize {
    samples
        .iter()
        .map(|s| s.ids.len() + s.max_new)
        .max()
        .unwrap_or(1)
}

/// What one sample gave.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SampleResult {
    pub model: String,
    pub task: TaskKind,
    pub length: u32,
    pub depth: f64,
    pub seed: u64,
    pub value: String,
    pub generated: String,
    pub score: f64,
}

impl SampleResult {
    /// Identifies the sample for resuming: a finished one is not run again.
    pub fn key(&self) -> SampleKey {
        SampleKey {
            model: self.model.clone(),
            task: self.task,
            length: self.length,
            depth: self.depth.to_bits(),
            seed: self.seed,
        }
    }
}

/// What tells one sample of a model from every other, across runs: a
/// resumed sweep skips the samples whose key it already holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SampleKey {
    pub model: String,
    pub task: TaskKind,
    pub length: u32,
    /// The depth's bits: f64 is not `Eq`, and a depth always comes from
    /// the same spec literal, so equal depths have equal bits.
    pub depth: u64,
    pub seed: u64,
}

impl SampleKey {
    /// The key `s` gets when run under `model`'s name.
    pub fn of(model: &str, s: &Sample) -> SampleKey {
        SampleKey {
            model: model.to_string(),
            task: s.task,
            length: s.length,
            depth: s.depth.to_bits(),
            seed: s.seed,
        }
    }
}

/// Accuracy of one (model, task, length, depth) cell.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CellResult {
    pub model: String,
    pub task: TaskKind,
    pub length: u32,
    pub depth: f64,
    pub samples: usize,
    pub accuracy: f64,
}

/// Greedy steps between looks at the answers: the GPU keeps its tokens to
/// itself for this many steps, and a finished answer runs at most this
/// many steps too long (the extra tokens are dropped).
const CHECK_EVERY: usize = 4;

/// Runs `samples` through `engine`, skipping those already in `done`, and
/// appends each result to `out` as it comes. `detok` turns generated ids
/// into text; `progress(i, total)` is called before sample i starts and
/// returns false to cancel (the results so far stay in `out`);
/// `finished` gets each batch's results as it ends. At most `batch`
/// samples run together (None: as many as the engine takes); the results
/// do not depend on it.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    engine: &Engine,
    model: &str,
    samples: &[Sample],
    stop: &[u32],
    detok: &dyn Fn(&[u32]) -> Result<String>,
    done: &HashSet<SampleKey>,
    out: &mut Vec<SampleResult>,
    progress: &mut dyn FnMut(usize, usize) -> bool,
    finished: &mut dyn FnMut(&[SampleResult]),
    batch: Option<usize>,
) -> Result<bool> {
    let size = batch
        .unwrap_or(usize::MAX)
        .min(engine.max_batch(tokens_needed(samples)))
        .max(1);
    let mut i = 0;
    loop {
        let mut group: Vec<&Sample> = Vec::new();
        let mut cancelled = false;
        while group.len() < size && i < samples.len() {
            if !progress(i, samples.len()) {
                cancelled = true;
                break;
            }
            let s = &samples[i];
            i += 1;
            if !done.contains(&SampleKey::of(model, s)) {
                group.push(s);
            }
        }
        let answers = greedy_answers(engine, &group, stop, detok).await?;
        let first = out.len();
        for (s, generated) in group.iter().zip(answers) {
            out.push(SampleResult {
                model: model.to_string(),
                task: s.task,
                length: s.length,
                depth: s.depth,
                seed: s.seed,
                value: s.value.clone(),
                score: score(&generated, &s.value),
                generated,
            });
        }
        if out.len() > first {
            finished(&out[first..]);
        }
        if cancelled {
            return Ok(false);
        }
        if i == samples.len() {
            progress(samples.len(), samples.len());
            return Ok(true);
        }
    }
}

/// One answer being generated.
struct Answer<'a> {
    sample: &'a Sample,
    ids: Vec<u32>,
    text: String,
    finished: bool,
}

impl Answer<'_> {
    /// Takes the next greedy token: the answer ends after a stop token,
    /// once its value is out (RULER's early stop), or at its allowance.
    fn push(
        &mut self,
        token: u32,
        stop: &[u32],
        detok: &dyn Fn(&[u32]) -> Result<String>,
    ) -> Result<()> {
        self.ids.push(token);
        self.text = detok(&self.ids)?;
        self.finished = stop.contains(&token)
            || score(&self.text, &self.sample.value) == 1.0
            || self.ids.len() >= self.sample.max_new;
        Ok(())
    }
}

/// The greedy answers of `samples`, all in one batch: every prompt in one
/// prefill, then decode steps for the unfinished, looked at every
/// `CHECK_EVERY` steps. Each answer is the one its sample gets alone.
async fn greedy_answers(
    engine: &Engine,
    samples: &[&Sample],
    stop: &[u32],
    detok: &dyn Fn(&[u32]) -> Result<String>,
) -> Result<Vec<String>> {
    if samples.is_empty() {
        return Ok(Vec::new());
    }
    let mut batch = engine.batch(samples.len(), false).await?;
    let prompts: Vec<&[u32]> = samples.iter().map(|s| s.ids.as_slice()).collect();
    let first = engine.next_tokens(&mut batch, &prompts).await?;
    let mut answers: Vec<Answer> = samples
        .iter()
        .map(|&sample| Answer {
            sample,
            ids: Vec::new(),
            text: String::new(),
            finished: sample.max_new == 0,
        })
        .collect();
    for (a, &t) in answers.iter_mut().zip(&first) {
        if !a.finished {
            a.push(t, stop, detok)?;
        }
    }
    loop {
        let active: Vec<usize> = (0..answers.len())
            .filter(|&j| !answers[j].finished)
            .collect();
        // No answer runs past its own allowance, so no sequence outgrows its context.
        let Some(steps) = active
            .iter()
            .map(|&j| answers[j].sample.max_new - answers[j].ids.len())
            .min()
        else {
            break;
        };
        let last: Vec<u32> = active
            .iter()
            .map(|&j| {
                *answers[j]
                    .ids
                    .last()
                    .expect("an unfinished answer has a token")
            })
            .collect();
        let tokens = engine
            .decode(&mut batch, &active, &last, steps.min(CHECK_EVERY))
            .await?;
        for (&j, toks) in active.iter().zip(tokens) {
            for t in toks {
                if answers[j].finished {
                    break;
                }
                answers[j].push(t, stop, detok)?;
            }
        }
    }
    Ok(answers.into_iter().map(|a| a.text).collect())
}

/// The mean of scores in [0, 1] as a percentage (0 for none): a sweep's
/// accuracy, or with 0/1 scores the share that passed.
pub fn percent(scores: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = scores
        .into_iter()
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    100.0 * sum / n.max(1) as f64
}

/// The share of `flags` that hold, %.
pub fn percent_true(flags: &[bool]) -> f64 {
    percent(flags.iter().map(|&x| if x { 1.0 } else { 0.0 }))
}

/// Cells of the results, in the order they first appear.
pub fn cells(results: &[SampleResult]) -> Vec<CellResult> {
    let mut out: Vec<CellResult> = Vec::new();
    for r in results {
        match out.iter_mut().find(|c| {
            c.model == r.model && c.task == r.task && c.length == r.length && c.depth == r.depth
        }) {
            Some(c) => {
                c.accuracy += r.score;
                c.samples += 1;
            }
            None => out.push(CellResult {
                model: r.model.clone(),
                task: r.task,
                length: r.length,
                depth: r.depth,
                samples: 1,
                accuracy: r.score,
            }),
        }
    }
    for c in &mut out {
        c.accuracy /= c.samples as f64;
    }
    out
}
