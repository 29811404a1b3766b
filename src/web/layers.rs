//! The "Find the retrieval layers" step: each softmax layer of the model
//! from before SFT ablated in turn in the engine's worker, the drop in NIAH
//! accuracy drawn as bars as each layer is scored, and the top K handed to
//! the merge form. A pure softmax model's merge needs these layers; for a
//! hybrid they show which of its softmax layers carry retrieval.

use wasm_bindgen_futures::spawn_local;

use super::dom::{
    by_id, enable, field, need, offer_downloads, offer_json, on, set_field, set_progress,
    set_status, show_svg, while_running,
};
use super::engine::{self, Ended};
use super::protocol::{Event, Request};
use super::{forms, share, state};
use crate::app::layers::{join, Ablation, LayerScore, LayersReport, LayersSpec};
use crate::error::{Error, Result};
use crate::figures::layer_drops;

fn status(text: &str, error: bool) {
    set_status("layers-status", text, error);
}

/// The form's ranking, checked.
fn spec() -> Result<LayersSpec> {
    let sweep = forms::sweep_of("layers-")?;
    let ablation = Ablation::parse(&field("layers-ablation"))?;
    let top = match field("layers-top").trim() {
        "" => None,
        k => Some(k.parse::<usize>().ok().filter(|k| *k >= 1).ok_or_else(|| {
            Error::Usage(format!("top: {k:?} is not a whole number of at least 1"))
        })?),
    };
    let spec = LayersSpec {
        sweeps: vec![sweep],
        ablation,
        top,
    };
    spec.check()?;
    Ok(spec)
}

async fn run() -> Result<()> {
    let spec = spec()?;
    let ([pre, sft], version) = state::with(|s| (s.pair.clone(), s.pair_version));
    if pre.is_empty() {
        return Err(Error::Usage(
            "Give the checkpoint from before SFT (or open the demo) first.".into(),
        ));
    }
    let mut models = vec![("pre", pre)];
    if !sft.is_empty() {
        models.push(("sft", sft));
    }
    let mut scores: Vec<LayerScore> = Vec::new();
    let mut report = None;
    enable(&["layers-use"], false);
    offer_downloads("layers-report", &[])?;
    status("Starting the engine…", false);
    let ended = engine::run(
        &Request::Layers { spec },
        &models,
        &mut |event| match event {
            Event::Loading { model } => status(&format!("Loading {model}…"), false),
            Event::StepProgress {
                index,
                steps,
                label,
                done,
                total,
                engine,
            } => {
                set_progress(
                    "layers-progress",
                    index as f64 + done as f64 / total.max(1) as f64,
                    steps as f64,
                );
                status(
                    &format!(
                        "Step {} of {steps}, {label}: prompt {} of {total} on {engine}",
                        index + 1,
                        (done + 1).min(total)
                    ),
                    false,
                );
            }
            Event::LayerScored { score } => {
                scores.push(score);
                if let Err(e) = draw(&scores, &[]) {
                    status(&e.to_string(), true);
                }
            }
            Event::Ranked { report: r } => report = Some(*r),
            _ => {}
        },
    )
    .await?;
    match ended {
        Ended::Cancelled => status(&format!("Cancelled after {} layers.", scores.len()), false),
        Ended::Done if state::with(|s| s.pair_version) != version => {
            status("The pair changed while its layers were ranked: that ranking is dropped. Rank the pair now open.", true);
        }
        Ended::Done => {
            let r = report.ok_or_else(|| {
                Error::Page("the engine ended the ranking without its report".into())
            })?;
            draw(&r.layers, &r.top)?;
            offer_json("layers-report", "layers.json", &r)?;
            status(&summary(&r), false);
            state::with(|s| s.layers = Some(r));
            use_top();
            enable(&["layers-use"], true);
        }
    }
    Ok(())
}

/// Puts the ranking's top layers in the merge form (and the shared
/// link); false when there is no ranking of the pair now open.
fn use_top() -> bool {
    let Some(top) = state::with(|s| s.layers.as_ref().map(|r| join(&r.top))) else {
        return false;
    };
    set_field("layers", &top);
    share::update(&[("layers", top)]);
    true
}

/// The finished ranking in a few sentences.
fn summary(r: &LayersReport) -> String {
    let first = r
        .ranking
        .first()
        .and_then(|l| r.layers.iter().find(|s| s.layer == *l));
    let mut s = format!(
        "Done: {} layers in {:.0} s on {}. Unablated recall {:.1}%.",
        r.layers.len(),
        r.seconds,
        r.engine,
        r.baseline
    );
    if let Some(f) = first {
        s += &format!(
            " Layer {} matters most: ablating it drops recall by {:.1} points.",
            f.layer, f.drop
        );
    }
    s += &format!(
        " The merge form now restores layers {} (the top {}).",
        join(&r.top),
        r.top.len()
    );
    if let Some(rep) = &r.repair {
        s += &format!(
            " QK-Restore of these layers: recall {:.1}% against sft's {:.1}%.",
            rep.merged, rep.sft
        );
    }
    s
}

fn draw(scores: &[LayerScore], top: &[usize]) -> Result<()> {
    let drops: Vec<(usize, f64)> = scores.iter().map(|s| (s.layer, s.drop)).collect();
    let svg = layer_drops(
        "Recall lost when each softmax layer is ablated",
        &drops,
        top,
    );
    let root = need("layers-chart")?;
    root.set_text_content(None);
    show_svg(&root, &svg, "layers-drops")?;
    state::set_figures("layers-", vec![("layers-drops".into(), svg)]);
    Ok(())
}

pub fn wire() {
    if let Some(b) = by_id("run-layers") {
        on(&b, "click", |_| {
            spawn_local(while_running(
                "run-layers",
                "cancel-layers",
                "layers-status",
                run(),
            ))
        });
    }
    if let Some(b) = by_id("cancel-layers") {
        on(&b, "click", |_| engine::cancel());
    }
    if let Some(b) = by_id("layers-use") {
        on(&b, "click", |_| match use_top() {
            true => status(
                "The merge form restores the ranking's top layers again.",
                false,
            ),
            false => status("Rank the layers of the pair now open first.", true),
        });
    }
}
