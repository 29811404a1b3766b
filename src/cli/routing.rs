//! `qklab routing`: where the softmax heads look on one NIAH prompt, for
//! several checkpoints side by side: mean attention distance per head of
//! every softmax layer (Eq. 17), needle attention mass from the question's
//! tokens, the block-pooled map of one layer and head, its log-ratio
//! between the last two models, and the most-affected ranking (first model
//! against the second).

use std::path::PathBuf;

use serde_json::json;

use qklab::checkpoint::Checkpoint;
use qklab::config::Mixer;
use qklab::model::engine::Engine;
use qklab::model::fit::EngineOptions;
use qklab::model::gpu::Logits;
use qklab::niah::{Task, ID_TASK};
use qklab::routing::{log_ratio, most_affected, PromptPositions, RoutingPrompt};
use qklab::source::{block_on, FsSource};
use qklab::sweep::PromptMaker;
use qklab::tokenizer::Tokenizer;
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
    if a.task != ID_TASK {
        Task::parse(&a.task)?;
    }
    let gpu = super::gpu_for(&a.backend)?;
    let mut models = Vec::new();
    let mut distances: Vec<Vec<(usize, Vec<f32>)>> = Vec::new();
    let mut maps = Vec::new();
    let mut answer = None;
    for ckpt in &a.ckpts {
        let ck = block_on(Checkpoint::open(FsSource::open(ckpt)?))?;
        let tok = block_on(Tokenizer::of_checkpoint(&ck))?;
        let arch = super::arch_with_hype(&ck, None)?;
        let maker = PromptMaker::of(&ck, tok.as_ref())?;
        let prompt = RoutingPrompt::new(&maker, &a.task, a.length, a.depth, a.prompt_seed).map_err(|e| Error::Usage(format!("{}: {e}", ckpt.display())))?;
        let PromptPositions { ids, needle, queries } = prompt.positions;
        answer = Some((prompt.key, prompt.value));
        let softmax: Vec<usize> = arch.mixers.iter().enumerate().filter(|(_, m)| **m == Mixer::Softmax).map(|(l, _)| l).collect();
        if !softmax.contains(&a.layer) {
            return Err(Error::Usage(format!("layer {} is not a softmax layer; those are {softmax:?}", a.layer)));
        }
        if a.head as u64 >= arch.attn.heads {
            return Err(Error::Usage(format!("head {} does not exist; the layer has {} heads", a.head, arch.attn.heads)));
        }
        let opts = EngineOptions { max_context: ids.len() as u32, capture: true, ..Default::default() };
        let engine = block_on(Engine::load(gpu.as_ref(), &ck, arch, opts, &mut |_| {}))?;
        let mut s = engine.session(true);
        block_on(engine.prefill(&mut s, &ids, Logits::None))?;
        let mut layers = Vec::new();
        let mut dist = Vec::new();
        for &l in &softmax {
            let stats = block_on(engine.routing_stats(&s, l, a.block, needle.clone()))?;
            let d = stats.mean_distance();
            layers.push(json!({ "layer": l, "mean_distance": d, "needle_mass": stats.needle_mass(queries.clone()) }));
            if l == a.layer {
                maps.push(stats.pooled_map(a.head));
            }
            dist.push((l, d));
        }
        println!("{}:", ckpt.display());
        for (l, d) in &dist {
            println!("  layer {l}: mean attention distance per head {}", d.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(" "));
        }
        distances.push(dist);
        models.push(json!({ "model": ckpt.display().to_string(), "layers": layers, "tokens": ids.len(),
                            "needle_tokens": [needle.start, needle.end], "query_tokens": [queries.start, queries.end] }));
    }
    let mut report = json!({
        "prompt": { "task": a.task, "length": a.length, "depth": a.depth, "seed": a.prompt_seed,
                    "key": answer.as_ref().map(|a| &a.0), "value": answer.as_ref().map(|a| &a.1) },
        "layer": a.layer, "head": a.head, "block": a.block, "models": models,
        "pooled_maps": maps,
    });
    if distances.len() >= 2 {
        let ranking = most_affected(&distances[0], &distances[1]);
        println!("most affected (heads attending closer in the second model than the first):");
        for (l, shrank, n) in &ranking {
            println!("  layer {l}: {shrank} of {n} heads");
        }
        report["most_affected"] = json!(ranking.iter().map(|(l, s, n)| json!({ "layer": l, "heads_closer": s, "heads": n })).collect::<Vec<_>>());
        let n = maps.len();
        report["log_ratio"] = json!(log_ratio(&maps[n - 1], &maps[n - 2], 1e-9));
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report).expect("json")).map_err(|e| Error::io(path.display(), e))?;
    }
    Ok(())
}
