//! What the page and its engine worker say to each other: one request a
//! worker, events back as JSON strings. The files travel beside the JSON
//! (a `File` is structured-cloned into the worker, not read).

use serde::{Deserialize, Serialize};

use crate::app::layers::{LayerScore, LayersReport, LayersSpec};
use crate::app::routing::{Profile, RoutingSpec};
use crate::app::sweep::SweepSpec;
use crate::app::tune::{Scored, TuneReport, TuneSpec};
use crate::sweep::SampleResult;

/// The work a worker is asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    /// A NIAH sweep; samples already in `done` are not run again.
    Sweep {
        spec: SweepSpec,
        done: Vec<SampleResult>,
    },
    /// Where the heads look, on one prompt, for every model.
    Routing { spec: RoutingSpec },
    /// The recall and retention front of the pair (models: pre, then sft).
    Tune { spec: TuneSpec },
    /// The leave-one-out ranking of pre's softmax layers (models: pre,
    /// then sft where given).
    Layers { spec: LayersSpec },
}

/// What a worker reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A model's prompts are being made and its weights loaded.
    Loading { model: String },
    /// Before each prompt.
    Progress {
        model: String,
        engine: String,
        model_done: usize,
        model_total: usize,
        done: usize,
        total: usize,
    },
    /// Samples finished since the last such event.
    Samples { samples: Vec<SampleResult> },
    /// One model's routing.
    Profile { profile: Profile },
    /// Where a tune or a ranking is: step `index` of `steps` (a tune's
    /// candidate, a ranking's sweep), its prompts done.
    StepProgress {
        index: usize,
        steps: usize,
        label: String,
        done: usize,
        total: usize,
        engine: String,
    },
    /// A tune's candidate is scored.
    Scored { scored: Box<Scored> },
    /// The tune is complete.
    Tuned { report: Box<TuneReport> },
    /// A layer's ablation is scored.
    LayerScored { score: LayerScore },
    /// The ranking is complete.
    Ranked { report: Box<LayersReport> },
    /// A worker of a pool stopped and a new one runs the rest of its share.
    WorkerReplaced { reason: String },
    /// The request is complete.
    Done,
    /// The request failed; nothing more comes.
    Failed { message: String },
}

impl Event {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events serialize")
    }
}
