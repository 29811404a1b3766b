//! `qklab layers` and the page's Layers step: which softmax layers carry
//! long-context retrieval, by the paper's leave-one-out ablation (its
//! Appendix M). Each softmax layer of the model is ablated in turn, the
//! NIAH sweeps run on the ablated model, and the layer's importance is the
//! drop in mean accuracy from the unablated model. The top K of the
//! ranking are the layers a pure softmax model's merge restores.
//!
//! The model is loaded once; an ablation swaps a layer's few tensors for
//! zeros in the loaded engine and puts them back afterwards, so each
//! ablated model computes exactly what a checkpoint with those tensors
//! zeroed does (tests/layers.rs checks it against such a checkpoint).

use serde::{Deserialize, Serialize};

use super::model::{Backend, OpenModel};
use super::sweep::{mean_recall, samples_of, sweep_all, SweepSpec};
use super::tune::Swapper;
use crate::config::Arch;
use crate::error::{Error, Result};
use crate::merge::{MergeSpec, Method};
use crate::model::engine::Engine;
use crate::names::Proj;
use crate::prompts::Sample;
use crate::source::ByteSource;
use crate::sweep::{cells, CellResult, SampleResult};
use crate::tune::grid::Candidate;

/// How a layer is taken out. The paper's formula is lost in our copy;
/// each reading is named so that others can be added beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ablation {
    /// W_Q (and its bias) zeroed: every query is zero, so the layer's
    /// attention is uniform over the causal prefix. Values and the output
    /// still flow; only the routing is gone. Our reading of Appendix M.
    ZeroQuery,
    /// W_O (and its bias) zeroed: the layer's attention adds nothing to
    /// the residual stream.
    ZeroOutput,
}

impl Ablation {
    pub const ALL: [Ablation; 2] = [Ablation::ZeroQuery, Ablation::ZeroOutput];

    pub fn parse(s: &str) -> Result<Ablation> {
        Ablation::ALL
            .into_iter()
            .find(|a| a.name() == s.trim())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "ablation {s:?}: expected zero-query or zero-output"
                ))
            })
    }

    pub fn name(self) -> &'static str {
        match self {
            Ablation::ZeroQuery => "zero-query",
            Ablation::ZeroOutput => "zero-output",
        }
    }

    /// What the ablation does, in a sentence for reports and the page.
    pub fn describe(self) -> &'static str {
        match self {
            Ablation::ZeroQuery => {
                "W_Q (and its bias) set to zero, so the layer attends uniformly over the prefix"
            }
            Ablation::ZeroOutput => {
                "W_O (and its bias) set to zero, so the layer's attention adds nothing"
            }
        }
    }

    /// The tensors of `layer` it zeroes: of the projection's weight and
    /// bias, those `arch` uses (a checkpoint may hold others the engine
    /// never loaded).
    pub fn tensors(self, arch: &Arch, layer: usize) -> Vec<String> {
        let names = arch.layer_names(layer);
        let proj = names.proj(match self {
            Ablation::ZeroQuery => Proj::Q,
            Ablation::ZeroOutput => Proj::O,
        });
        let used = arch.layer_tensors(layer);
        [&proj.weight, &proj.bias]
            .into_iter()
            .filter(|n| used.iter().any(|(u, _)| u == *n))
            .cloned()
            .collect()
    }
}

/// What to rank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayersSpec {
    /// The recall sweeps, one per task; importance is the drop in their mean.
    pub sweeps: Vec<SweepSpec>,
    pub ablation: Ablation,
    /// Layers to hand to the merge (None: [`default_top`]).
    pub top: Option<usize>,
}

impl LayersSpec {
    pub fn check(&self) -> Result<()> {
        if self.sweeps.is_empty() {
            return Err(Error::Usage(
                "ranking layers needs at least one NIAH task".into(),
            ));
        }
        if self.top == Some(0) {
            return Err(Error::Usage("top must be at least 1".into()));
        }
        self.sweeps.iter().try_for_each(SweepSpec::check)
    }
}

/// How many layers a pure softmax model restores when none are given: a
/// quarter of its layers, the share of softmax layers HypeNet-2B keeps
/// (the paper keeps k "as in HypeNet"). A hybrid restores all of its
/// softmax layers.
pub fn default_top(arch: &Arch) -> usize {
    let softmax = arch.softmax_layers().len();
    if arch.is_pure_softmax() {
        ((arch.num_layers() + 2) / 4).clamp(1, softmax.max(1))
    } else {
        softmax
    }
}

/// One ablated layer's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerScore {
    pub layer: usize,
    /// Mean NIAH accuracy with the layer ablated, %.
    pub recall: f64,
    /// The unablated model's recall minus this one's, in points: the importance.
    pub drop: f64,
    pub cells: Vec<CellResult>,
}

/// What restoring the top layers does to the fine-tuned model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repair {
    pub spec: MergeSpec,
    /// sft's recall, and the merge's, %.
    pub sft: f64,
    pub merged: f64,
}

/// A finished ranking, as `qklab layers --json` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayersReport {
    pub spec: LayersSpec,
    pub model: String,
    pub engine: String,
    /// The unablated model's recall, %.
    pub baseline: f64,
    /// In layer order.
    pub layers: Vec<LayerScore>,
    /// Layers, most important first.
    pub ranking: Vec<usize>,
    /// The first K of the ranking, in layer order: the merge's layers.
    pub top: Vec<usize>,
    /// With sft: QK-Restore on the top layers against sft.
    pub repair: Option<Repair>,
    pub seconds: f64,
}

/// Layers by drop, largest first; equal drops in layer order, so the
/// ranking depends only on the scores.
pub fn ranking(scores: &[LayerScore]) -> Vec<usize> {
    let mut order: Vec<&LayerScore> = scores.iter().collect();
    order.sort_by(|a, b| b.drop.total_cmp(&a.drop).then(a.layer.cmp(&b.layer)));
    order.iter().map(|s| s.layer).collect()
}

/// Layers as the merge form and `--layers` take them: `3,6`.
pub fn join(layers: &[usize]) -> String {
    layers
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The first `k` layers of `ranking`, in layer order.
pub fn top_of(ranking: &[usize], k: usize) -> Vec<usize> {
    let mut top: Vec<usize> = ranking.iter().take(k).copied().collect();
    top.sort_unstable();
    top
}

impl LayersReport {
    /// The top layers, for a merge of a model with `arch`: refused when the
    /// ranking is of a model with other softmax layers, or has no top.
    pub fn top_for(&self, arch: &Arch) -> Result<Vec<usize>> {
        let ranked: Vec<usize> = self.layers.iter().map(|s| s.layer).collect();
        if ranked != arch.softmax_layers() {
            return Err(Error::Usage(format!(
                "the ranking of {} covers layers {ranked:?}, but this model's softmax layers are {:?}: rank this model's layers",
                self.model,
                arch.softmax_layers()
            )));
        }
        if self.top.is_empty() || self.top.iter().any(|l| !ranked.contains(l)) {
            return Err(Error::Usage(format!(
                "the ranking of {} has no usable top layers ({:?})",
                self.model, self.top
            )));
        }
        Ok(self.top.clone())
    }
}

/// What a ranking tells its face as it goes.
pub enum Event<'a> {
    /// A model's weights are loading.
    Loading { model: &'a str },
    /// Step `index` of `total` starts: the unablated model, a layer, sft, the repair.
    Step {
        index: usize,
        total: usize,
        label: &'a str,
    },
    /// Prompts of the step done, of how many; return false to cancel.
    Prompt {
        done: usize,
        total: usize,
        engine: &'a str,
    },
    /// A layer is scored.
    Scored(&'a LayerScore),
}

/// Zeroes a layer's tensors in a loaded engine and puts the model's own
/// bytes back afterwards.
pub struct Ablator<'a, S: ByteSource> {
    model: &'a OpenModel<S>,
    ablation: Ablation,
}

impl<'a, S: ByteSource> Ablator<'a, S> {
    /// For an engine that holds `model`'s weights.
    pub fn new(model: &'a OpenModel<S>, ablation: Ablation) -> Self {
        Ablator { model, ablation }
    }

    /// The tensors of `layer` it zeroes.
    pub fn tensors(&self, layer: usize) -> Vec<String> {
        self.ablation.tensors(&self.model.arch, layer)
    }

    /// Ablates `layer` in `engine`, or (`ablated` false) puts it back.
    pub async fn set(&self, engine: &mut Engine, layer: usize, ablated: bool) -> Result<()> {
        for name in self.tensors(layer) {
            let t = self
                .model
                .ck
                .tensor(&name)
                .ok_or_else(|| Error::NoSuchTensor {
                    tensor: name.clone(),
                })?;
            let dtype = t.dtype;
            // Zero is all-zero bits in every float dtype.
            let bytes = if ablated {
                vec![0u8; (t.end - t.start) as usize]
            } else {
                self.model.ck.read_tensor_bytes(&name).await?
            };
            engine.set_tensor(&name, dtype, &bytes)?;
        }
        Ok(())
    }
}

/// The sweeps every step of a ranking runs, with one progress count.
struct Steps<'a> {
    sweeps: &'a [SweepSpec],
    samples: &'a [Vec<Sample>],
    engine: String,
    total: usize,
}

impl Steps<'_> {
    /// Step `index`'s results on `engine` (which computes `model`, or a
    /// variant of it); None if cancelled.
    async fn run<S: ByteSource>(
        &self,
        engine: &mut Engine,
        model: &OpenModel<S>,
        index: usize,
        label: &str,
        on: &mut dyn FnMut(Event) -> bool,
    ) -> Result<Option<Vec<SampleResult>>> {
        if !on(Event::Step {
            index,
            total: self.total,
            label,
        }) {
            return Ok(None);
        }
        sweep_all(
            engine,
            model,
            label,
            self.sweeps,
            self.samples,
            &mut |done, total| {
                on(Event::Prompt {
                    done,
                    total,
                    engine: &self.engine,
                })
            },
        )
        .await
    }
}

/// Ranks the softmax layers of `model` (the pre-SFT checkpoint); with
/// `sft`, also scores sft and QK-Restore of the top layers on it. None if
/// cancelled.
pub async fn run_layers<S: ByteSource>(
    backend: &Backend,
    model: &OpenModel<S>,
    sft: Option<&OpenModel<S>>,
    spec: &LayersSpec,
    on: &mut dyn FnMut(Event) -> bool,
) -> Result<Option<LayersReport>> {
    spec.check()?;
    let started = crate::clock::now_ms();
    if let Some(sft) = sft {
        crate::merge::compat::check_pair(&model.ck, &sft.ck)?;
    }
    let softmax = model.arch.softmax_layers();
    if softmax.is_empty() {
        return Err(Error::Usage(format!(
            "{} has no softmax layers to rank",
            model.name
        )));
    }
    if let Some(k) = spec.top.filter(|&k| k > softmax.len()) {
        return Err(Error::Usage(format!(
            "top {k}: {} has only {} softmax layers",
            model.name,
            softmax.len()
        )));
    }
    let samples = samples_of(model, &spec.sweeps)?;
    let longest = samples
        .iter()
        .flatten()
        .map(|s| s.ids.len() + s.max_new)
        .max()
        .unwrap_or(1) as u32;

    on(Event::Loading { model: &model.name });
    let mut engine = backend.load(model, longest, false).await?;
    let total = 1 + softmax.len() + if sft.is_some() { 2 } else { 0 };
    let steps = Steps {
        sweeps: &spec.sweeps,
        samples: &samples,
        engine: format!("{}{}", engine.backend(), backend.note),
        total,
    };
    let Some(results) = steps.run(&mut engine, model, 0, "unablated", on).await? else {
        return Ok(None);
    };
    let baseline = mean_recall(&results);
    let ablator = Ablator::new(model, spec.ablation);
    let mut layers = Vec::with_capacity(softmax.len());
    for (i, &layer) in softmax.iter().enumerate() {
        ablator.set(&mut engine, layer, true).await?;
        let results = steps
            .run(
                &mut engine,
                model,
                1 + i,
                &format!("layer {layer} ablated"),
                on,
            )
            .await;
        // The model's own bytes go back even when the step failed or was
        // cancelled; the step's own error is the one to report.
        let restored = ablator.set(&mut engine, layer, false).await;
        let Some(results) = results? else {
            return Ok(None);
        };
        restored?;
        let recall = mean_recall(&results);
        let score = LayerScore {
            layer,
            recall,
            drop: baseline - recall,
            cells: cells(&results),
        };
        on(Event::Scored(&score));
        layers.push(score);
    }
    drop(engine);
    let ranking = ranking(&layers);
    let top = top_of(
        &ranking,
        spec.top.unwrap_or_else(|| default_top(&model.arch)),
    );

    let mut repair = None;
    if let Some(sft) = sft {
        on(Event::Loading { model: &sft.name });
        let mut engine = backend.load(sft, longest, false).await?;
        let Some(plain) = steps.run(&mut engine, sft, total - 2, "sft", on).await? else {
            return Ok(None);
        };
        let merge = MergeSpec {
            layers: Some(top.clone()),
            ..MergeSpec::new(Method::QkRestore)
        };
        let candidate = Candidate {
            spec: Some(merge.clone()),
        };
        Swapper::new(model, sft)
            .swap(&mut engine, &candidate)
            .await?;
        let Some(merged) = steps
            .run(&mut engine, sft, total - 1, &candidate.label(), on)
            .await?
        else {
            return Ok(None);
        };
        repair = Some(Repair {
            spec: merge,
            sft: mean_recall(&plain),
            merged: mean_recall(&merged),
        });
    }
    let seconds = (crate::clock::now_ms() - started) / 1000.0;
    Ok(Some(LayersReport {
        spec: spec.clone(),
        model: model.name.clone(),
        engine: steps.engine,
        baseline,
        layers,
        ranking,
        top,
        repair,
        seconds,
    }))
}
