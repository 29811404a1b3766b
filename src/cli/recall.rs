//! The recall sweeps `tune` and `layers` score merges and ablations by:
//! one set of flags, one sweep per task.

use clap::Args;
use qklab::app::sweep::SweepSpec;
use qklab::prompts::TaskKind;
use qklab::Result;

#[derive(Args, Debug, Clone)]
pub struct RecallArgs {
    /// NIAH tasks for recall: s1, s2, s3, mk or ids, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "s1")]
    pub task: Vec<TaskKind>,
    #[command(flatten)]
    pub sweep: SweepFlags,
}

/// The flags of a NIAH sweep but its task, shared by `niah` (which sets
/// its own defaults for lengths and samples: a full picture rather than a
/// quick score) and the recall of `tune` and `layers`.
#[derive(Args, Debug, Clone)]
pub struct SweepFlags {
    /// Distractor needles (mk: default 8).
    #[arg(long)]
    pub distractors: Option<u32>,
    /// Prompt lengths in tokens.
    #[arg(long, value_delimiter = ',', default_value = "2048")]
    pub lengths: Vec<u32>,
    /// Needle depths, from 0 (the start of the context) to 1 (its end).
    #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,0.75,1")]
    pub depths: Vec<f64>,
    /// Prompts per length and depth.
    #[arg(long, default_value_t = 4)]
    pub samples: u32,
    /// Sample s at depth index d and length L uses seed + 1000 s + 17 d + L (the reference's scheme).
    #[arg(long, default_value_t = 12345)]
    pub seed: u64,
    /// Evaluate with attn_logits_scaling "hype A" ...
    #[arg(long)]
    pub hype: Option<f64>,
    /// ... at lengths above this (0: all).
    #[arg(long, default_value_t = 0)]
    pub hype_above: u32,
}

impl SweepFlags {
    /// The sweep of `task` these flags describe (not yet checked).
    pub fn spec(&self, task: TaskKind) -> SweepSpec {
        let mut s = SweepSpec::new(
            task,
            self.lengths.clone(),
            self.depths.clone(),
            self.samples,
            self.seed,
        );
        s.distractors = self.distractors;
        s.hype = self.hype;
        s.hype_above = self.hype_above;
        s
    }
}

impl RecallArgs {
    /// One sweep per task, checked.
    pub fn sweeps(&self) -> Result<Vec<SweepSpec>> {
        self.task
            .iter()
            .map(|t| {
                let s = self.sweep.spec(*t);
                s.check()?;
                Ok(s)
            })
            .collect()
    }
}
