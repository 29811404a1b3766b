//! `qklab routing`: where the softmax heads look on one NIAH prompt, for
//! several checkpoints side by side: mean attention distance per head of
//! every softmax layer (Eq. 17), needle attention mass from the question's
//! tokens, the block-pooled map of one layer and head, its log-ratio
//! between the last two models, and the most-affected ranking (first model
//! against the second, by the needle mass the question's rows lost).

use std::path::PathBuf;

use clap::Args;

use qklab::app::routing::{check_focus, profile, Blocks, RoutingReport, RoutingSpec};
use qklab::prompts::TaskKind;
use qklab::source::block_on;
use qklab::{Error, Result};

#[derive(Args)]
pub struct RoutingArgs {
    #[arg(required = true)]
    pub ckpts: Vec<PathBuf>,
    /// s1, s2, s3, mk (text), or ids (token ids, for checkpoints without a tokenizer).
    #[arg(long, default_value = "s2")]
    pub task: TaskKind,
    /// The softmax layer whose pooled map (and log-ratio) is reported.
    #[arg(long)]
    pub layer: usize,
    /// The head of that layer.
    #[arg(long, default_value_t = 0)]
    pub head: usize,
    /// Seed of the NIAH prompt.
    #[arg(long, default_value_t = 0)]
    pub prompt_seed: u64,
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 1024)]
    pub length: u32,
    /// Needle depth, from 0 (the start of the context) to 1 (its end).
    #[arg(long, default_value_t = 0.5)]
    pub depth: f64,
    /// Tokens per block of the pooled map.
    #[arg(long, default_value_t = 32)]
    pub block: u32,
    /// auto, gpu, cpu or reference (see `run`).
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// The report: distances, needle mass, the pooled maps and the comparison.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(a: RoutingArgs) -> Result<()> {
    let spec = RoutingSpec {
        task: a.task,
        length: a.length,
        depth: a.depth,
        seed: a.prompt_seed,
        blocks: Blocks::Tokens(a.block),
    };
    let backend = super::backend(&a.backend)?;
    let mut profiles = Vec::new();
    for ckpt in &a.ckpts {
        let m = super::open_model(ckpt)?;
        check_focus(&m, a.layer, a.head)?;
        let p = block_on(profile(&backend, &m, &spec))?;
        println!("{}:", p.model);
        for (l, d) in p.distances() {
            println!(
                "  layer {l}: mean attention distance per head {}",
                d.iter()
                    .map(|x| format!("{x:.1}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        profiles.push(p);
    }
    let report = RoutingReport::of(&spec, &profiles, a.layer, a.head);
    if let Some(ranking) = &report.most_affected {
        println!("most affected (needle mass from the question lost from the first model to the second):");
        for r in ranking {
            println!(
                "  layer {}: head {} lost {:.3}; {} of {} heads attend closer",
                r.layer, r.head, r.needle_mass_drop, r.heads_closer, r.heads
            );
        }
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report).expect("json"))
            .map_err(|e| Error::io(path.display(), e))?;
    }
    Ok(())
}
