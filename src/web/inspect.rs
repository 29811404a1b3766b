//! The routing panel: where the softmax heads look on one NIAH prompt, for
//! pre, sft and the merge. Four maps as in the paper's Figure 4 (three
//! block-pooled attention maps and the log-ratio merged / sft, the needle
//! marked), mean attention distance per head (Eq. 17) and needle mass as
//! bars. Everything is computed once per prompt; picking another layer or
//! head only redraws.

use std::cell::RefCell;

use serde_json::json;

use super::evaluate;
use super::share::{self, field, set_field};
use super::{add, by_id, document, load_engine, on, on_click_async, report, repair, set_class_text, show_svg, BrowserSource};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::figures::{attention_map, head_bars, NeedleBlocks};
use crate::model::gpu::Logits;
use crate::sweep::PromptMaker;
use crate::routing::{log_ratio, most_affected, RoutingPrompt, RowStats};
use crate::tokenizer::Tokenizer;

/// Blocks per side of a pooled map.
const BLOCKS: usize = 32;

struct Routing {
    prompt: serde_json::Value,
    block: usize,
    needle: std::ops::Range<u32>,
    queries: std::ops::Range<usize>,
    /// Per model: its name and the stats of every softmax layer.
    models: Vec<(String, Vec<(usize, RowStats)>)>,
}

thread_local! {
    static ROUTING: RefCell<Option<Routing>> = const { RefCell::new(None) };
}

fn status(text: &str, error: bool) {
    set_class_text("routing-status", text, error);
}

/// Distances and needle mass of every layer and model, for the report.
pub(super) fn summary() -> Option<serde_json::Value> {
    ROUTING.with(|r| {
        let r = r.borrow();
        let r = r.as_ref()?;
        let models: Vec<serde_json::Value> = r
            .models
            .iter()
            .map(|(name, layers)| {
                let layers: Vec<_> = layers
                    .iter()
                    .map(|(l, s)| json!({ "layer": l, "mean_distance": s.mean_distance(), "needle_mass": s.needle_mass(r.queries.clone()) }))
                    .collect();
                json!({ "model": name, "layers": layers })
            })
            .collect();
        Some(json!({ "prompt": r.prompt, "block": r.block, "needle_tokens": [r.needle.start, r.needle.end],
                     "query_tokens": [r.queries.start, r.queries.end], "layer": field("routing-layer"),
                     "head": field("routing-head"), "models": models }))
    })
}

async fn compute() -> Result<()> {
    let st = evaluate::settings()?;
    let models = repair::models()?;
    let length = st.lengths[0];
    let mut out = Vec::new();
    let mut positions = None;
    for (name, files) in &models {
        status(&format!("{name}: running the prompt ({length} tokens, depth 0.5, seed {})…", st.seed), false);
        let ck = Checkpoint::open(BrowserSource::new(files.clone())?).await?;
        let tok = Tokenizer::of_checkpoint(&ck).await?;
        let maker = PromptMaker::of(&ck, tok.as_ref())?;
        let prompt = RoutingPrompt::new(&maker, &st.task, length, 0.5, st.seed).map_err(|e| Error::Usage(format!("{name}: {e}")))?;
        let (pos, answer) = (prompt.positions, json!({ "key": prompt.key, "value": prompt.value }));
        let (engine, _) = load_engine(&ck, pos.ids.len() as u32, true).await.map_err(|e| Error::Usage(format!("{name}: {e}")))?;
        let mut s = engine.session(true);
        engine.prefill(&mut s, &pos.ids, Logits::None).await?;
        let block = pos.ids.len().div_ceil(BLOCKS).max(1);
        let mut layers = Vec::new();
        for l in engine.arch().softmax_layers() {
            layers.push((l, engine.routing_stats(&s, l, block as u32, pos.needle.clone()).await?));
        }
        out.push((name.to_string(), layers));
        positions = Some((pos, block, answer));
    }
    let (pos, block, answer) = positions.ok_or_else(|| Error::Usage("no model".into()))?;
    let prompt = json!({ "task": st.task, "length": length, "depth": 0.5, "seed": st.seed, "answer": answer, "tokens": pos.ids.len() });
    choose_defaults(&out);
    ROUTING.with(|r| *r.borrow_mut() = Some(Routing { prompt, block, needle: pos.needle, queries: pos.queries, models: out }));
    draw()
}

/// Fills the layer and head pickers; the default (unless the link names
/// one) is the most affected layer and its head that moved closest.
fn choose_defaults(models: &[(String, Vec<(usize, RowStats)>)]) {
    let distances = |i: usize| -> Vec<(usize, Vec<f32>)> { models[i].1.iter().map(|(l, s)| (*l, s.mean_distance())).collect() };
    let (pre, sft) = (distances(0), distances(1));
    let layer = most_affected(&pre, &sft).first().map(|x| x.0).unwrap_or(pre[0].0);
    let d = |v: &[(usize, Vec<f32>)]| v.iter().find(|(l, _)| *l == layer).map(|(_, d)| d.clone()).unwrap_or_default();
    let (dp, ds) = (d(&pre), d(&sft));
    let head = (0..dp.len()).max_by(|&a, &b| (dp[a] - ds[a]).total_cmp(&(dp[b] - ds[b]))).unwrap_or(0);
    let options = |id: &str, values: Vec<usize>| {
        let (Some(doc), Some(select)) = (document(), by_id(id)) else { return };
        select.set_text_content(None);
        for v in values {
            if let Some(o) = add(&doc, &select, "option", &v.to_string()) {
                let _ = o.set_attribute("value", &v.to_string());
            }
        }
    };
    options("routing-layer", pre.iter().map(|(l, _)| *l).collect());
    options("routing-head", (0..dp.len()).collect());
    let from_link = |key: &str, n: &[usize]| share::get(key).and_then(|v| v.parse::<usize>().ok()).filter(|v| n.contains(v));
    let layers: Vec<usize> = pre.iter().map(|(l, _)| *l).collect();
    set_field("routing-layer", &from_link("layer", &layers).unwrap_or(layer).to_string());
    set_field("routing-head", &from_link("head", &(0..dp.len()).collect::<Vec<_>>()).unwrap_or(head).to_string());
}

fn draw() -> Result<()> {
    let layer: usize = field("routing-layer").parse().map_err(|_| Error::Usage("pick a layer".into()))?;
    let head: usize = field("routing-head").parse().map_err(|_| Error::Usage("pick a head".into()))?;
    share::update(&[("layer", layer.to_string()), ("head", head.to_string())]);
    ROUTING.with(|r| -> Result<()> {
        let r = r.borrow();
        let Some(r) = r.as_ref() else { return Ok(()) };
        let stats = |m: usize| r.models[m].1.iter().find(|(l, _)| *l == layer).map(|(_, s)| s);
        let maps_root = by_id("routing-maps").ok_or_else(|| Error::Usage("no #routing-maps".into()))?;
        let bars_root = by_id("routing-bars").ok_or_else(|| Error::Usage("no #routing-bars".into()))?;
        maps_root.set_text_content(None);
        bars_root.set_text_content(None);
        let needle = Some(NeedleBlocks { first: r.needle.start as usize / r.block, last: (r.needle.end.max(1) as usize - 1) / r.block });
        let mut figures = Vec::new();
        let mut maps = Vec::new();
        for (m, (name, _)) in r.models.iter().enumerate() {
            let Some(s) = stats(m) else { continue };
            let map = s.pooled_map(head);
            let svg = attention_map(&format!("{name}: layer {layer}, head {head}"), &map, s.blocks, s.block, needle, false);
            show_svg(&maps_root, &svg, &format!("routing-map-{name}"))?;
            figures.push((format!("routing-l{layer}h{head}-{name}"), svg));
            maps.push((name.clone(), map, s.blocks, s.block));
        }
        // Figure 4's fourth panel: what the merge changed against sft (or,
        // before a merge, what SFT changed against pre).
        if maps.len() >= 2 {
            let (a, b) = (&maps[maps.len() - 1], &maps[maps.len() - 2]);
            let ratio = log_ratio(&a.1, &b.1, 1e-9);
            let svg = attention_map(&format!("ln({} / {}): layer {layer}, head {head}", a.0, b.0), &ratio, a.2, a.3, needle, true);
            show_svg(&maps_root, &svg, "routing-map-log-ratio")?;
            figures.push((format!("routing-l{layer}h{head}-log-ratio"), svg));
        }
        let names: Vec<&str> = r.models.iter().map(|(n, _)| n.as_str()).collect();
        let per_model = |f: &dyn Fn(&RowStats) -> Vec<f32>| -> Vec<Vec<f32>> { (0..r.models.len()).filter_map(|m| stats(m).map(f)).collect() };
        let distance = head_bars(&format!("Mean attention distance, layer {layer}"), "tokens", &names, &per_model(&|s| s.mean_distance()));
        show_svg(&bars_root, &distance, "routing-distance")?;
        let mass = head_bars(&format!("Needle attention mass, layer {layer}"), "share", &names, &per_model(&|s| s.needle_mass(r.queries.clone())));
        show_svg(&bars_root, &mass, "routing-mass")?;
        figures.push((format!("routing-l{layer}-distance"), distance));
        figures.push((format!("routing-l{layer}-needle-mass"), mass));
        report::set_figures("routing-", figures);
        status(
            &format!("Prompt: {} tokens, needle at tokens {}–{}; maps pooled over {} x {} token blocks.", r.prompt["tokens"], r.needle.start, r.needle.end, r.block, r.block),
            false,
        );
        Ok(())
    })
}

pub fn wire() {
    on_click_async("run-routing", "routing-status", compute);
    for id in ["routing-layer", "routing-head"] {
        if let Some(select) = by_id(id) {
            on(&select, "change", |_| {
                if let Err(e) = draw() {
                    status(&e.to_string(), true);
                }
            });
        }
    }
}
