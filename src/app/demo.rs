//! The results recorded with the demo (www/demo/results.json, written by
//! scripts/record-demo.sh): what the page shows the moment the demo opens.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::sweep::{table_cell, SweepReport};
use crate::prompts::TaskKind;
use crate::writer::SourceFingerprint;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recorded {
    pub recorded: Provenance,
    /// The checkpoints they were recorded with (tests/demo_results.rs checks them).
    pub checkpoints: HashMap<String, SourceFingerprint>,
    pub models: Vec<String>,
    /// By task (s1, mk): every sample, at 2048 tokens.
    pub niah: HashMap<TaskKind, SweepReport>,
    /// The SFT skill in % by model, and `source`: how it was scored.
    pub arithmetic: HashMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provenance {
    pub command: String,
    pub adapter: String,
    pub date: String,
}

impl Recorded {
    /// NIAH accuracy (%) of `model` on `task` at 2048 tokens.
    pub fn accuracy(&self, task: TaskKind, model: &str) -> Option<f64> {
        table_cell(&self.niah.get(&task)?.samples, model, task, 2048)
    }

    /// Arithmetic (%) of `model`, where it was scored.
    pub fn arithmetic(&self, model: &str) -> Option<f64> {
        self.arithmetic.get(model).and_then(|v| v.as_f64())
    }
}
