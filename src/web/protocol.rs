//! What the page and its engine worker say to each other: one request a
//! worker, events back as JSON strings. The files travel beside the JSON
//! (a `File` is structured-cloned into the worker, not read).

use serde::{Deserialize, Serialize};

use crate::app::routing::{Profile, RoutingSpec};
use crate::app::sweep::SweepSpec;
use crate::sweep::SampleResult;

/// The work a worker is asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    /// A NIAH sweep; samples already in `done` are not run again.
    Sweep { spec: SweepSpec, done: Vec<SampleResult> },
    /// Where the heads look, on one prompt, for every model.
    Routing { spec: RoutingSpec },
}

/// What a worker reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A model's prompts are being made and its weights loaded.
    Loading { model: String },
    /// Before each prompt.
    Progress { model: String, engine: String, model_done: usize, model_total: usize, done: usize, total: usize },
    /// Samples finished since the last such event.
    Samples { samples: Vec<SampleResult> },
    /// One model's routing.
    Profile { profile: Profile },
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
