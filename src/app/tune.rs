//! `qklab tune` and the page's Tune step: every candidate of a grid scored
//! for recall (NIAH sweeps, the same prompts for all) and retention (what
//! the fine-tune taught), then the Pareto front and the recommended point.
//!
//! sft is loaded once; a candidate differs from it only in the tensors its
//! merge restores, so those (a few MB of a 2B model) are swapped into the
//! loaded engine between candidates instead of loading each merge. The
//! swapped bytes are the ones a merged checkpoint holds, so each
//! candidate's logits are exactly the merged checkpoint's
//! (tests/tune.rs checks it on the CPU engine and the GPU).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::model::{Backend, OpenModel};
use super::sweep::{mean_recall, samples_of, sweep_all, SweepSpec};
use crate::error::{Error, Result};
use crate::merge::plan::replacements;
use crate::merge::MergeSpec;
use crate::merge::PRE;
use crate::model::engine::Engine;
use crate::safetensors::Dtype;
use crate::source::ByteSource;
use crate::sweep::{cells, percent_true, CellResult, SampleResult};
use crate::tune::front::{pareto_front, recommend, Measure, Point, Tolerance};
use crate::tune::grid::{Candidate, Grid};
use crate::tune::retention::{
    exact_matches, forced_answer, id_prompts, Answer, Forced, SftReference, CONTINUATION,
    GENERIC_PROMPTS, TOP,
};
use crate::writer::{Part, TensorData};

/// What to tune.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneSpec {
    /// The recall sweeps, one per task (lengths, depths, samples, seed as `qklab niah`).
    pub sweeps: Vec<SweepSpec>,
    pub grid: Grid,
    pub tolerance: Tolerance,
    /// Prompts with answers: task retention (exact match).
    pub answers: Option<Vec<Answer>>,
    /// Prompts sft continues for the agreement (None: built-in ones).
    pub prompts: Option<Vec<String>>,
}

impl TuneSpec {
    pub fn check(&self) -> Result<()> {
        if self.sweeps.is_empty() {
            return Err(Error::Usage("a tune needs at least one NIAH task".into()));
        }
        self.sweeps.iter().try_for_each(SweepSpec::check)?;
        self.grid.check()
    }

    /// Which score the front's retention axis is.
    pub fn measure(&self) -> Measure {
        if self.answers.is_some() {
            Measure::Answers
        } else {
            Measure::Agreement
        }
    }
}

/// One candidate's scores, with the details they are means of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// "sft" (no merge) or the merge method.
    pub method: String,
    /// QK-Pro's beta.
    pub beta: Option<f32>,
    /// Softmax layers restored.
    pub layers: Vec<usize>,
    pub label: String,
    /// The merge, as `qklab merge` and recipes take it (None: sft).
    pub spec: Option<MergeSpec>,
    /// Mean NIAH accuracy over every sample, %.
    pub recall: f64,
    /// Exact match on the answers where given, else agreement, %.
    pub retention: f64,
    /// Exact match on the answers, %.
    pub exact: Option<f64>,
    /// Tokens of sft's continuations where this candidate's argmax is sft's, %.
    pub agreement: f64,
    /// Mean per-token KL(sft || candidate) on sft's continuations.
    pub kl: f64,
    pub cells: Vec<CellResult>,
    pub samples: Vec<SampleResult>,
    /// Per answer, whether it matched.
    pub answers: Option<Vec<bool>>,
    /// Tensors that differ from sft's.
    pub changed: Vec<String>,
    pub notes: Vec<String>,
}

impl Scored {
    pub fn point(&self) -> Point {
        Point {
            recall: self.recall,
            retention: self.retention,
            kl: self.kl,
        }
    }
}

/// A finished tune, as `qklab tune --json` writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TuneReport {
    pub spec: TuneSpec,
    /// What the retention axis is.
    pub measure: Measure,
    pub engine: String,
    pub candidates: Vec<Scored>,
    /// Indices into `candidates`, most recall first.
    pub front: Vec<usize>,
    pub recommended: usize,
    /// How the KL was taken.
    pub kl_note: String,
    pub seconds: f64,
}

impl TuneReport {
    /// The front and the recommendation of `candidates` (sft first).
    pub fn of(
        spec: TuneSpec,
        engine: String,
        candidates: Vec<Scored>,
        vocab: u64,
        seconds: f64,
    ) -> TuneReport {
        let points: Vec<Point> = candidates.iter().map(Scored::point).collect();
        let measure = spec.measure();
        let front = pareto_front(&points);
        let recommended = recommend(&points, 0, measure, spec.tolerance);
        let kl_note = if vocab as usize <= TOP + 1 {
            "exact".to_string()
        } else {
            format!("sft's top {TOP} tokens apart, the rest lumped: a lower bound of the full KL")
        };
        TuneReport {
            spec,
            measure,
            engine,
            candidates,
            front,
            recommended,
            kl_note,
            seconds,
        }
    }
}

/// What a tune tells its face as it goes.
pub enum Event<'a> {
    /// sft's weights are loading and its reference continuations being made.
    Loading,
    /// Candidate `index` of `total` starts.
    Candidate {
        index: usize,
        total: usize,
        label: &'a str,
    },
    /// Prompts of the candidate's sweeps done, of how many, on which engine;
    /// return false to cancel.
    Prompt {
        done: usize,
        total: usize,
        engine: &'a str,
    },
    /// A candidate is scored.
    Scored(&'a Scored),
}

/// Swaps candidates into an engine loaded with sft: each swap writes the
/// candidate's tensors, and sft's back where the previous candidate
/// changed a tensor this one does not. Tensor bytes are read once.
pub struct Swapper<'a, S: ByteSource> {
    pre: &'a OpenModel<S>,
    sft: &'a OpenModel<S>,
    sft_bytes: HashMap<String, (Dtype, Vec<u8>)>,
    pre_bytes: HashMap<String, Vec<u8>>,
    /// What the engine holds now in place of sft's tensors.
    swapped: Vec<String>,
}

impl<'a, S: ByteSource> Swapper<'a, S> {
    /// For an engine that holds sft's weights as loaded.
    pub fn new(pre: &'a OpenModel<S>, sft: &'a OpenModel<S>) -> Swapper<'a, S> {
        Swapper {
            pre,
            sft,
            sft_bytes: HashMap::new(),
            pre_bytes: HashMap::new(),
            swapped: Vec::new(),
        }
    }

    async fn sft(&mut self, name: &str) -> Result<(Dtype, Vec<u8>)> {
        if !self.sft_bytes.contains_key(name) {
            let dtype = self
                .sft
                .ck
                .tensor(name)
                .ok_or_else(|| Error::NoSuchTensor {
                    tensor: name.into(),
                })?
                .dtype;
            self.sft_bytes.insert(
                name.into(),
                (dtype, self.sft.ck.read_tensor_bytes(name).await?),
            );
        }
        Ok(self.sft_bytes[name].clone())
    }

    /// The bytes a merge puts in place of `name`.
    async fn merged(&mut self, name: &str, data: &TensorData) -> Result<(Dtype, Vec<u8>)> {
        let dtype = self.sft(name).await?.0;
        match data {
            TensorData::Bytes(b) => Ok((dtype, b.to_vec())),
            TensorData::Copy { .. } => {
                if !self.pre_bytes.contains_key(name) {
                    self.pre_bytes
                        .insert(name.into(), self.pre.ck.read_tensor_bytes(name).await?);
                }
                Ok((dtype, self.pre_bytes[name].clone()))
            }
            TensorData::Parts(parts) => {
                let mut bytes = Vec::new();
                for part in parts {
                    match part {
                        Part::Bytes(b) => bytes.extend_from_slice(b),
                        Part::Range {
                            source,
                            file,
                            start,
                            end,
                        } => {
                            let ck = if *source == PRE {
                                &self.pre.ck
                            } else {
                                &self.sft.ck
                            };
                            bytes.extend(ck.read_raw(file, *start..*end).await?);
                        }
                    }
                }
                Ok((dtype, bytes))
            }
        }
    }

    /// Makes `engine` compute `candidate`; returns the tensors that now
    /// differ from sft's and the merge's notes.
    pub async fn swap(
        &mut self,
        engine: &mut Engine,
        candidate: &Candidate,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let (tensors, notes) = match &candidate.spec {
            None => (Vec::new(), Vec::new()),
            Some(spec) => {
                let r = replacements(&self.pre.ck, &self.sft.ck, spec).await?;
                (r.tensors, r.notes)
            }
        };
        let changed: Vec<String> = tensors.iter().map(|(n, _)| n.clone()).collect();
        for name in std::mem::take(&mut self.swapped)
            .iter()
            .filter(|n| !changed.contains(n))
        {
            let (dtype, bytes) = self.sft(name).await?;
            engine.set_tensor(name, dtype, &bytes)?;
        }
        for (name, data) in &tensors {
            let (dtype, bytes) = self.merged(name, data).await?;
            engine.set_tensor(name, dtype, &bytes)?;
        }
        self.swapped = changed.clone();
        Ok((changed, notes))
    }
}

/// What retention is scored on, as token ids.
struct RetentionInputs {
    /// The answers' prompts and targets.
    answers: Option<Vec<Forced>>,
    /// The prompts sft continues for the agreement.
    prompts: Vec<Vec<u32>>,
}

fn retention_inputs<S: ByteSource>(sft: &OpenModel<S>, spec: &TuneSpec) -> Result<RetentionInputs> {
    let tok = sft.tokenizer.as_ref();
    let answers = match &spec.answers {
        None => None,
        Some(a) => {
            let tok = tok.ok_or_else(|| {
                Error::Usage("answers need the checkpoint's tokenizer.json, which sft lacks".into())
            })?;
            Some(
                a.iter()
                    .map(|a| forced_answer(tok, a))
                    .collect::<Result<Vec<_>>>()?,
            )
        }
    };
    let prompts = match (&spec.prompts, tok) {
        (Some(p), Some(tok)) => p
            .iter()
            .map(|p| tok.encode(p))
            .collect::<Result<Vec<_>>>()?,
        (Some(_), None) => {
            return Err(Error::Usage(
                "prompts need the checkpoint's tokenizer.json, which sft lacks".into(),
            ))
        }
        (None, Some(tok)) => GENERIC_PROMPTS
            .iter()
            .map(|p| tok.encode(p))
            .collect::<Result<Vec<_>>>()?,
        (None, None) => id_prompts(sft.arch.vocab_size as u32, &sft.ck.special_ids()),
    };
    Ok(RetentionInputs { answers, prompts })
}

/// Runs the tune of `spec` over the pair; None if cancelled.
pub async fn run_tune<S: ByteSource>(
    backend: &Backend,
    pre: &OpenModel<S>,
    sft: &OpenModel<S>,
    spec: &TuneSpec,
    on: &mut dyn FnMut(Event) -> bool,
) -> Result<Option<TuneReport>> {
    spec.check()?;
    let started = crate::clock::now_ms();
    crate::merge::compat::check_pair(&pre.ck, &sft.ck)?;
    let candidates = spec.grid.candidates(&sft.arch.softmax_layers())?;
    let samples = samples_of(sft, &spec.sweeps)?;
    let RetentionInputs { answers, prompts } = retention_inputs(sft, spec)?;
    let longest = samples.iter().flatten().map(|s| s.ids.len() + s.max_new);
    let longest = longest
        .chain(
            answers
                .iter()
                .flatten()
                .map(|f| f.prompt.len() + f.target.len()),
        )
        .chain(prompts.iter().map(|p| p.len() + CONTINUATION))
        .max()
        .unwrap_or(1);

    on(Event::Loading);
    let mut engine = backend.load(sft, longest as u32, false).await?;
    let described = format!("{}{}", engine.backend(), backend.note);
    let reference = SftReference::make(&engine, &prompts, &sft.stop_ids()).await?;
    let mut swapper = Swapper::new(pre, sft);
    let mut scored = Vec::with_capacity(candidates.len());
    for (index, candidate) in candidates.iter().enumerate() {
        let label = candidate.label();
        if !on(Event::Candidate {
            index,
            total: candidates.len(),
            label: &label,
        }) {
            return Ok(None);
        }
        let (changed, notes) = swapper.swap(&mut engine, candidate).await?;
        let on_prompt = &mut |done, total| {
            on(Event::Prompt {
                done,
                total,
                engine: &described,
            })
        };
        let Some(results) =
            sweep_all(&mut engine, sft, &label, &spec.sweeps, &samples, on_prompt).await?
        else {
            return Ok(None);
        };
        let recall = mean_recall(&results);
        let matched = match &answers {
            Some(items) => Some(exact_matches(&engine, items).await?),
            None => None,
        };
        let exact = matched.as_deref().map(percent_true);
        let (kl, agreement) = reference.agreement(&engine).await?;
        let s = Scored {
            method: candidate.method().into(),
            beta: candidate
                .spec
                .as_ref()
                .filter(|s| s.method == crate::merge::Method::QkPro)
                .map(|s| s.beta),
            layers: candidate
                .spec
                .as_ref()
                .and_then(|s| s.layers.clone())
                .unwrap_or_default(),
            label,
            spec: candidate.spec.clone(),
            recall,
            retention: exact.unwrap_or(agreement),
            exact,
            agreement,
            kl,
            cells: cells(&results),
            samples: results,
            answers: matched,
            changed,
            notes,
        };
        on(Event::Scored(&s));
        scored.push(s);
    }
    let seconds = (crate::clock::now_ms() - started) / 1000.0;
    Ok(Some(TuneReport::of(
        spec.clone(),
        described,
        scored,
        sft.arch.vocab_size,
        seconds,
    )))
}
