//! `qklab routing`: where the softmax heads look on one NIAH prompt, for
//! several checkpoints side by side: mean attention distance per head of
//! every softmax layer (Eq. 17), needle attention mass from the question's
//! tokens, the block-pooled map of one layer and head, its log-ratio
//! between the last two models, and the most-affected ranking (first model
//! against the second, by the needle mass the question's rows lost).

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use qklab::app::routing::{check_focus, compare, last_log_ratio, profile, Blocks, RoutingSpec};
use qklab::prompts::TaskKind;
use qklab::source::block_on;
use qklab::{Error, Result};

#[derive(Args)]
pub struct RoutingArgs {
    #[arg(required = true)]
    pub ckpts: Vec<PathBuf>,
    /// s1, s2, s3, mk (text), or ids (token ids, for checkpoints without a tokenizer).
    #[arg(long, default_value = "s2")]
    pub task: String,
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
    let spec = RoutingSpec { task: TaskKind::parse(&a.task)?, length: a.length, depth: a.depth, seed: a.prompt_seed, blocks: Blocks::Tokens(a.block) };
    let backend = super::backend(&a.backend)?;
    let mut profiles = Vec::new();
    for ckpt in &a.ckpts {
        let m = super::open_model(ckpt)?;
        check_focus(&m, a.layer, a.head)?;
        let p = block_on(profile(&backend, &m, &spec))?;
        println!("{}:", p.model);
        for (l, d) in p.distances() {
            println!("  layer {l}: mean attention distance per head {}", d.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(" "));
        }
        profiles.push(p);
    }
    let maps: Vec<&Vec<f32>> = profiles.iter().filter_map(|p| p.layer(a.layer).and_then(|l| l.maps.get(a.head))).collect();
    let models: Vec<_> = profiles
        .iter()
        .map(|p| {
            json!({ "model": p.model, "layers": p.summary(), "tokens": p.tokens,
                    "needle_tokens": [p.needle.start, p.needle.end], "query_tokens": [p.queries.start, p.queries.end] })
        })
        .collect();
    let answer = profiles.last().map(|p| (&p.key, &p.value));
    let mut report = json!({
        "prompt": { "task": spec.task.name(), "length": a.length, "depth": a.depth, "seed": a.prompt_seed,
                    "key": answer.map(|a| a.0), "value": answer.map(|a| a.1) },
        "layer": a.layer, "head": a.head, "block": a.block, "models": models,
        "pooled_maps": maps,
    });
    if let [before, after, ..] = profiles.as_slice() {
        let ranking = compare(before, after).ranking;
        println!("most affected (needle mass from the question lost from the first model to the second):");
        for r in &ranking {
            println!("  layer {}: head {} lost {:.3}; {} of {} heads attend closer", r.layer, r.head, r.needle_mass_drop, r.heads_closer, r.heads);
        }
        report["most_affected"] = json!(ranking);
        report["log_ratio"] = json!(last_log_ratio(&profiles, a.layer, a.head));
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report).expect("json")).map_err(|e| Error::io(path.display(), e))?;
    }
    Ok(())
}
