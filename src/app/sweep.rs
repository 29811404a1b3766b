//! A NIAH sweep over several models side by side: the same prompts (as
//! each model's tokenizer makes them) for every model, HyPE switched per
//! length as the reference evaluates, results appended sample by sample so
//! that a cancelled or failed sweep keeps what it finished and a second
//! run continues where the first stopped.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::model::{Backend, OpenModel};
use crate::config::LogitsScaling;
use crate::error::{Error, Result};
use crate::model::engine::Engine;
use crate::prompts::{sample_seed, Sample, TaskKind};
use crate::source::ByteSource;
use crate::sweep::{self, SampleKey, SampleResult};

/// What to sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSpec {
    pub task: TaskKind,
    pub lengths: Vec<u32>,
    pub depths: Vec<f64>,
    pub samples: u32,
    pub seed: u64,
    /// Distractor needles of the multi-key task (None: its default).
    pub distractors: Option<u32>,
    /// HyPE's A for lengths above `hype_above` (None: the config's scaling).
    pub hype: Option<f64>,
    pub hype_above: u32,
    /// Run only this share of each model's prompts (None: all of them):
    /// how the page spreads one sweep over several engine workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

/// Every `count`-th prompt of a model's sweep, from the `index`-th: the
/// prompts are interleaved so that each share holds every length alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Whether the model's `i`-th prompt (in sweep order) is in this share.
    pub fn holds(&self, i: usize) -> bool {
        i % self.count as usize == self.index as usize
    }

    /// How many of `n` prompts are in this share.
    pub fn size_of(&self, n: usize) -> usize {
        (0..n).filter(|&i| self.holds(i)).count()
    }
}

impl SweepSpec {
    /// A sweep of `task` with the reference's defaults for the rest.
    pub fn new(
        task: TaskKind,
        lengths: Vec<u32>,
        depths: Vec<f64>,
        samples: u32,
        seed: u64,
    ) -> SweepSpec {
        SweepSpec {
            task,
            lengths,
            depths,
            samples,
            seed,
            distractors: None,
            hype: None,
            hype_above: 0,
            shard: None,
        }
    }

    pub fn check(&self) -> Result<()> {
        if self.lengths.is_empty() || self.depths.is_empty() {
            return Err(Error::Usage(
                "give at least one length and one depth".into(),
            ));
        }
        if let Some(d) = self.depths.iter().find(|d| !(0.0..=1.0).contains(*d)) {
            return Err(Error::Usage(format!("depth {d} is outside [0, 1]")));
        }
        if self.samples == 0 {
            return Err(Error::Usage(
                "samples must be a whole number of at least 1".into(),
            ));
        }
        if let Some(s) = self.shard {
            if s.index >= s.count {
                return Err(Error::Usage(format!(
                    "share {} of {} does not exist",
                    s.index, s.count
                )));
            }
        }
        Ok(())
    }

    /// Prompts per model.
    pub fn per_model(&self) -> usize {
        self.lengths.len() * self.depths.len() * self.samples as usize
    }

    /// Prompts per model that this spec's share runs.
    pub fn per_model_here(&self) -> usize {
        self.shard
            .map_or(self.per_model(), |s| s.size_of(self.per_model()))
    }

    /// Where `r`'s prompt is in a model's sweep (length, then depth, then
    /// sample, as the prompt maker makes them); None if not of this sweep.
    pub fn index_of(&self, r: &SampleResult) -> Option<usize> {
        let l = self.lengths.iter().position(|&l| l == r.length)?;
        let d = self.depths.iter().position(|&d| d == r.depth)?;
        let s = (0..self.samples).find(|&s| sample_seed(self.seed, s, d, r.length) == r.seed)?;
        Some((l * self.depths.len() + d) * self.samples as usize + s as usize)
    }

    /// Puts `results` in the order one run of this sweep over `models`
    /// gives them (model by model, each in sweep order), however they were
    /// run and merged.
    pub fn sort_in_sweep_order(&self, models: &[&str], results: &mut [SampleResult]) {
        results.sort_by_key(|r| (models.iter().position(|m| *m == r.model), self.index_of(r)));
    }
}

/// Where a sweep is, for a progress line or bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub model: &'a str,
    /// The engine, with the backend's note.
    pub engine: &'a str,
    pub length: u32,
    /// Prompts of this (model, length) done, of how many.
    pub cell: (usize, usize),
    /// Prompts of this model done, of how many.
    pub model_prompts: (usize, usize),
    /// Prompts of the whole sweep done, of how many.
    pub all: (usize, usize),
}

/// What a sweep tells its face as it goes.
pub enum Event<'a> {
    /// A model's prompts are being made and its weights loaded.
    Loading { model: &'a str },
    /// Before each prompt (and once at the end of each length): return
    /// false to cancel.
    Prompt(Progress<'a>),
    /// A length of a model is finished: every result so far, to save or draw.
    Finished(&'a [SampleResult]),
}

/// Runs `spec` over `models` in order, appending each sample's result to
/// `results` as it comes and skipping samples already there; at most
/// `batch` prompts run together (None: as many as the engine takes; the
/// results do not depend on it). Returns whether it completed (false:
/// cancelled from `on`).
pub async fn run_sweep<S: ByteSource>(
    backend: &Backend,
    models: &[OpenModel<S>],
    spec: &SweepSpec,
    batch: Option<usize>,
    results: &mut Vec<SampleResult>,
    on: &mut dyn FnMut(Event) -> bool,
) -> Result<bool> {
    // The one check of the spec: the faces leave it to this.
    spec.check()?;
    let per_model = spec.per_model();
    let total = per_model * models.len();
    for (m, model) in models.iter().enumerate() {
        let name = model.name.as_str();
        if results.iter().filter(|r| r.model == name).count() == spec.per_model_here() {
            continue;
        }
        on(Event::Loading { model: name });
        let maker = model.prompts()?;
        let named = |e: Error| Error::Usage(format!("{name}: {e}"));
        let samples = maker
            .samples(
                spec.task,
                &spec.lengths,
                &spec.depths,
                spec.samples,
                spec.seed,
                spec.distractors,
            )
            .map_err(named)?;
        let mut engine = backend
            .load(model, sweep::tokens_needed(&samples) as u32, false)
            .await?;
        let described = format!("{}{}", engine.backend(), backend.note);
        let first = m * per_model;
        let complete = sweep_loaded(
            &mut engine,
            model,
            name,
            &samples,
            spec,
            batch,
            results,
            &mut |event| match event {
                Event::Prompt(p) => on(Event::Prompt(Progress {
                    engine: &described,
                    all: (first + p.model_prompts.0, total),
                    ..p
                })),
                other => on(other),
            },
        )
        .await?;
        if !complete {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Runs `samples` (made from `spec` by `model`'s prompt maker, so in the
/// sweep's order: length by length) on an engine already loaded with
/// `model`'s weights, or with weights swapped into them, labelling results
/// `name`; samples of `name` already in `results` are skipped. Progress
/// counts this model's prompts only.
#[allow(clippy::too_many_arguments)]
pub async fn sweep_loaded<S: ByteSource>(
    engine: &mut Engine,
    model: &OpenModel<S>,
    name: &str,
    samples: &[Sample],
    spec: &SweepSpec,
    batch: Option<usize>,
    results: &mut Vec<SampleResult>,
    on: &mut dyn FnMut(Event) -> bool,
) -> Result<bool> {
    let maker = model.prompts()?;
    let per_model = samples.len();
    if per_model != spec.per_model() {
        return Err(Error::Usage(format!(
            "{name}: {per_model} prompts for a sweep of {}",
            spec.per_model()
        )));
    }
    let mut done: HashSet<SampleKey> = results.iter().map(|r| r.key()).collect();
    // Another share's prompts count as done here.
    if let Some(shard) = spec.shard {
        let others = samples.iter().enumerate().filter(|(i, _)| !shard.holds(*i));
        done.extend(others.map(|(_, s)| SampleKey::of(name, s)));
    }
    let stop = model.stop_ids();
    let detok = |ids: &[u32]| maker.text(spec.task, ids);
    let base = model.arch.logits_scaling;
    let mut model_done = 0;
    // The grid runs length by length: each length's prompts are the next
    // depths x samples of them.
    let per_length = spec.depths.len() * spec.samples as usize;
    for (&length, cell) in spec.lengths.iter().zip(samples.chunks(per_length)) {
        // HyPE only past hype_above tokens, as the reference evaluates.
        let hype = spec.hype.filter(|_| length > spec.hype_above);
        engine.set_logits_scaling(hype.map_or(base, LogitsScaling::Hype));
        let mut out = Vec::new();
        // Each batch's results are reported as it ends: a face can save
        // or draw them before the cell is complete.
        let mut finished_so_far: Vec<SampleResult> = Vec::new();
        let mut report = |batch: &[SampleResult], on: &mut dyn FnMut(Event) -> bool| {
            finished_so_far.extend_from_slice(batch);
            let all: Vec<SampleResult> = results.iter().chain(&finished_so_far).cloned().collect();
            on(Event::Finished(&all));
        };
        let on_cell = std::cell::RefCell::new(&mut *on);
        let complete = sweep::run(
            engine,
            name,
            cell,
            &stop,
            &detok,
            &done,
            &mut out,
            &mut |i, n| {
                (on_cell.borrow_mut())(Event::Prompt(Progress {
                    model: name,
                    engine: "",
                    length,
                    cell: (i, n),
                    model_prompts: (model_done + i, per_model),
                    all: (model_done + i, per_model),
                }))
            },
            &mut |finished| report(finished, &mut **on_cell.borrow_mut()),
            batch,
        )
        .await;
        results.extend(out);
        let complete = complete?;
        model_done += cell.len();
        if !complete {
            return Ok(false);
        }
    }
    engine.set_logits_scaling(base);
    Ok(true)
}

/// Each sweep's samples as `model`'s prompt maker makes them.
pub fn samples_of<S: ByteSource>(
    model: &OpenModel<S>,
    sweeps: &[SweepSpec],
) -> Result<Vec<Vec<Sample>>> {
    let maker = model.prompts()?;
    sweeps
        .iter()
        .map(|s| {
            maker.samples(
                s.task,
                &s.lengths,
                &s.depths,
                s.samples,
                s.seed,
                s.distractors,
            )
        })
        .collect()
}

/// Runs each sweep's samples (from [`samples_of`]) on a loaded engine
/// under one label, `on(done, total)` counting prompts across all of
/// them; None if cancelled.
pub async fn sweep_all<S: ByteSource>(
    engine: &mut Engine,
    model: &OpenModel<S>,
    label: &str,
    sweeps: &[SweepSpec],
    samples: &[Vec<Sample>],
    on: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Option<Vec<SampleResult>>> {
    let total: usize = samples.iter().map(Vec::len).sum();
    let mut results = Vec::new();
    let mut before = 0;
    for (sweep, cell) in sweeps.iter().zip(samples) {
        let complete = sweep_loaded(
            engine,
            model,
            label,
            cell,
            sweep,
            None,
            &mut results,
            &mut |e| match e {
                Event::Prompt(p) => on(before + p.model_prompts.0, total),
                _ => true,
            },
        )
        .await?;
        if !complete {
            return Ok(None);
        }
        before += cell.len();
    }
    Ok(Some(results))
}

/// Mean NIAH accuracy over every sample, % (0 for none).
pub fn mean_recall(results: &[SampleResult]) -> f64 {
    sweep::percent(results.iter().map(|r| r.score))
}

/// A sweep's results as saved: the cells and every sample (`qklab niah
/// --json`, the page's report). Reading one back resumes the sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepReport {
    pub results: Vec<sweep::CellResult>,
    pub samples: Vec<SampleResult>,
}

impl SweepReport {
    pub fn of(samples: &[SampleResult]) -> SweepReport {
        SweepReport {
            results: sweep::cells(samples),
            samples: samples.to_vec(),
        }
    }
}

/// Accuracy in % of `model` at `length` over every depth and sample, as
/// the paper's Table 1 gives it; None before any sample is done.
pub fn table_cell(
    results: &[SampleResult],
    model: &str,
    task: TaskKind,
    length: u32,
) -> Option<f64> {
    let scores: Vec<f64> = results
        .iter()
        .filter(|r| r.model == model && r.length == length && r.task == task)
        .map(|r| r.score)
        .collect();
    (!scores.is_empty()).then(|| sweep::percent(scores))
}

/// The models of `results` in the order they first appear.
pub fn models_of(results: &[SampleResult]) -> Vec<&str> {
    let mut models: Vec<&str> = Vec::new();
    for r in results {
        if !models.contains(&r.model.as_str()) {
            models.push(&r.model);
        }
    }
    models
}
