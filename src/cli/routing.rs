//! `qklab routing`: where the softmax heads look on one NIAH prompt, for
//! several checkpoints side by side: mean attention distance per head of
//! every softmax layer (Eq. 17), needle attention mass from the question's
//! tokens, the block-pooled map of one layer and head, its log-ratio
//! between the last two models, and the most-affected ranking (first model
//! against the second, by the needle mass the question's rows lost).

use std::path::PathBuf;

use qklab::app::routing::{check_focus, profile, Blocks, RoutingReport, RoutingSpec};
use qklab::prompts::TaskKind;
use qklab::source::block_on;
use qklab::{Error, Result};

pub struct RoutingArgs {
    pub ckpts: Vec<PathBuf>,
    pub task: String,
    pub layer: usize,
    pub head: usize,
    pub prompt_seed: u64,
    pub length: u32,
    pub depth: f64,
    pub block: u32,
    pub backend: String,
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
    let report = RoutingReport::of(&spec, &profiles, a.layer, a.head);
    if let Some(ranking) = &report.most_affected {
        println!("most affected (needle mass from the question lost from the first model to the second):");
        for r in ranking {
            println!("  layer {}: head {} lost {:.3}; {} of {} heads attend closer", r.layer, r.head, r.needle_mass_drop, r.heads_closer, r.heads);
        }
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report).expect("json")).map_err(|e| Error::io(path.display(), e))?;
    }
    Ok(())
}
