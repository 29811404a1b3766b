//! Running NIAH samples through a model and scoring them as RULER does:
//! greedy decoding that stops at EOS, once the value is out, or after the
//! sample's token allowance; a sample scores 1 when the value appears in
//! the generated text, case-insensitively. Results accumulate sample by
//! sample, so a sweep can be cancelled and resumed where it stopped.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::engine::Engine;
use crate::niah::{id_prompt, ids_text, niah_prompt, NiahPrompt, Task, ID_TASK};
use crate::tokenizer::{Tokenizer, TOKENIZER_FILE};
pub use crate::niah::score;

/// One prompt to run.
#[derive(Debug, Clone)]
pub struct Sample {
    pub task: String,
    pub length: u32,
    pub depth: f64,
    pub seed: u64,
    pub ids: Vec<u32>,
    pub value: String,
    pub max_new: usize,
}

/// The reference evaluation's seeds (reference/train.py `niah_suite`):
/// sample s of depth index d at `length` uses seed + 1000 s + 17 d + length,
/// so seed 12345 gives the prompts behind docs/demo-reproduction.md.
pub fn sample_seed(seed: u64, sample: u32, depth_index: usize, length: u32) -> u64 {
    seed + 1000 * sample as u64 + 17 * depth_index as u64 + length as u64
}

/// Every (length, depth, sample) prompt of a sweep, tokenized by `tok`.
pub fn niah_samples(
    task: Task,
    lengths: &[u32],
    depths: &[f64],
    samples: u32,
    seed: u64,
    distractors: Option<u32>,
    tok: &Tokenizer,
) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    for &length in lengths {
        for (d, &depth) in depths.iter().enumerate() {
            for s in 0..samples {
                let seed = sample_seed(seed, s, d, length);
                let (p, ids) = fitted_prompt(task, length, depth, seed, distractors, tok)?;
                out.push(Sample {
                    task: task.name().into(),
                    length,
                    depth,
                    seed,
                    ids,
                    value: p.value,
                    max_new: p.max_new_tokens as usize,
                });
            }
        }
    }
    Ok(out)
}

/// A prompt of `length` tokens under `tok`, and its ids. The generator
/// counts bytes (the demo's tokens, where this is exact at once); for other
/// tokenizers the byte budget is rescaled until the token count, answer
/// allowance included, is within 1% of `length` (at most 8 tries; the
/// closest is kept).
pub fn fitted_prompt(task: Task, length: u32, depth: f64, seed: u64, distractors: Option<u32>, tok: &Tokenizer) -> Result<(NiahPrompt, Vec<u32>)> {
    let mut budget = length;
    let mut best: Option<(u32, NiahPrompt, Vec<u32>)> = None;
    for _ in 0..8 {
        let p = match niah_prompt(task, budget, depth, seed, distractors) {
            Ok(p) => p,
            // A budget rescaled below the template's size: keep the closest so far.
            Err(_) if best.is_some() => break,
            Err(e) => return Err(e),
        };
        let ids = tok.encode(&p.prompt)?;
        let tokens = ids.len() as u32 + p.max_new_tokens;
        let miss = tokens.abs_diff(length);
        let next = (budget as f64 * length as f64 / tokens.max(1) as f64).round() as u32;
        if best.as_ref().is_none_or(|b| miss < b.0) {
            best = Some((miss, p, ids));
        }
        if miss as f64 <= 0.01 * length as f64 || next == budget {
            break;
        }
        budget = next;
    }
    let (_, p, ids) = best.expect("the first try either succeeds or returns");
    Ok((p, ids))
}

/// What a checkpoint offers for making prompts: its tokenizer, if it has
/// one, and its vocabulary for the token-id task.
pub struct PromptMaker<'a> {
    pub tokenizer: Option<&'a Tokenizer>,
    pub vocab: u32,
    /// Special ids (BOS, EOS, PAD) the token-id task must not use.
    pub special: Vec<u32>,
}

impl<'a> PromptMaker<'a> {
    /// What `ck` offers, with `tokenizer` (its tokenizer.json, if any).
    pub fn of<S: crate::source::ByteSource>(ck: &crate::checkpoint::Checkpoint<S>, tokenizer: Option<&'a Tokenizer>) -> Result<PromptMaker<'a>> {
        let vocab = crate::summary::arch_of(ck)?.vocab_size as u32;
        Ok(PromptMaker { tokenizer, vocab, special: ck.special_ids() })
    }

    /// Every sample of a sweep of `task`: a text task ("s1", "s2", "s3",
    /// "mk") needs the tokenizer; the token-id task ("ids") does not.
    #[allow(clippy::too_many_arguments)]
    pub fn samples(&self, task: &str, lengths: &[u32], depths: &[f64], samples: u32, seed: u64, distractors: Option<u32>) -> Result<Vec<Sample>> {
        if task != ID_TASK {
            let tok = self.tokenizer.ok_or_else(|| {
                Error::Usage(format!("no {TOKENIZER_FILE}: text tasks cannot be tokenized; without one only the token-id task ({ID_TASK}) runs"))
            })?;
            return niah_samples(Task::parse(task)?, lengths, depths, samples, seed, distractors, tok);
        }
        let mut out = Vec::new();
        for &length in lengths {
            for (d, &depth) in depths.iter().enumerate() {
                for s in 0..samples {
                    let seed = sample_seed(seed, s, d, length);
                    let p = id_prompt(self.vocab, &self.special, length, depth, seed)?;
                    out.push(Sample { task: ID_TASK.into(), length, depth, seed, ids: p.ids, value: ids_text(&p.value), max_new: p.max_new });
                }
            }
        }
        Ok(out)
    }

    /// Generated ids as the text a sample of `task` is scored on.
    pub fn text(&self, task: &str, ids: &[u32]) -> Result<String> {
        match (task, self.tokenizer) {
            (ID_TASK, _) | (_, None) => Ok(ids_text(ids)),
            (_, Some(tok)) => tok.decode(ids),
        }
    }
}

/// What one sample gave.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SampleResult {
    pub model: String,
    pub task: String,
    pub length: u32,
    pub depth: f64,
    pub seed: u64,
    pub value: String,
    pub generated: String,
    pub score: f64,
}

impl SampleResult {
    /// Identifies the sample for resuming: a finished one is not run again.
    pub fn key(&self) -> (String, String, u32, u64, u64) {
        (self.model.clone(), self.task.clone(), self.length, self.depth.to_bits(), self.seed)
    }
}

/// Accuracy of one (model, task, length, depth) cell.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CellResult {
    pub model: String,
    pub task: String,
    pub length: u32,
    pub depth: f64,
    pub samples: usize,
    pub accuracy: f64,
}

/// Runs `samples` through `engine`, skipping those already in `done`, and
/// appends each result to `out` as it comes. `detok` turns generated ids
/// into text; `progress(done, total)` returns false to cancel (the results
/// so far stay in `out`).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    engine: &Engine,
    model: &str,
    samples: &[Sample],
    stop: &[u32],
    detok: &dyn Fn(&[u32]) -> Result<String>,
    done: &HashSet<(String, String, u32, u64, u64)>,
    out: &mut Vec<SampleResult>,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<bool> {
    for (i, s) in samples.iter().enumerate() {
        if !progress(i, samples.len()) {
            return Ok(false);
        }
        let key = (model.to_string(), s.task.clone(), s.length, s.depth.to_bits(), s.seed);
        if done.contains(&key) {
            continue;
        }
        let generated = greedy_until_value(engine, s, stop, detok).await?;
        out.push(SampleResult {
            model: model.to_string(),
            task: s.task.clone(),
            length: s.length,
            depth: s.depth,
            seed: s.seed,
            value: s.value.clone(),
            score: score(&generated, &s.value),
            generated,
        });
    }
    progress(samples.len(), samples.len());
    Ok(true)
}

async fn greedy_until_value(engine: &Engine, s: &Sample, stop: &[u32], detok: &dyn Fn(&[u32]) -> Result<String>) -> Result<String> {
    let mut session = engine.session(false);
    let mut ids = Vec::with_capacity(s.max_new);
    let mut text = String::new();
    let mut next = engine.next_token(&mut session, &s.ids).await?;
    while ids.len() < s.max_new {
        ids.push(next);
        text = detok(&ids)?;
        if stop.contains(&next) || score(&text, &s.value) == 1.0 || ids.len() == s.max_new {
            break;
        }
        next = engine.next_token(&mut session, &[next]).await?;
    }
    Ok(text)
}

/// Cells of the results, in the order they first appear.
pub fn cells(results: &[SampleResult]) -> Vec<CellResult> {
    let mut out: Vec<CellResult> = Vec::new();
    for r in results {
        match out.iter_mut().find(|c| c.model == r.model && c.task == r.task && c.length == r.length && c.depth == r.depth) {
            Some(c) => {
                c.accuracy += r.score;
                c.samples += 1;
            }
            None => out.push(CellResult {
                model: r.model.clone(),
                task: r.task.clone(),
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
