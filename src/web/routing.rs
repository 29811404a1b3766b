//! The routing panel: where the softmax heads look on one NIAH prompt, for
//! pre, sft and the merge. Four maps as in the paper's Figure 4 (three
//! block-pooled attention maps and the log-ratio merged / sft, the needle
//! marked), mean attention distance per head (Eq. 17) and needle mass as
//! bars. Everything is computed once per prompt; picking another layer or
//! head only redraws.

use super::dom::{
    by_id, field, need, on, on_click_async, set_field, set_options, set_status, show_svg,
};
use super::engine::{self, Ended};
use super::protocol::{Event, Request};
use super::state::{self, Routing};
use super::{forms, share};
use crate::app::routing::{compare, last_log_ratio, Blocks, LayerRouting, Profile, RoutingSpec};
use crate::error::{Error, Result};
use crate::figures::{attention_map, head_bars, question_attention, MapValues, NeedleBlocks};

/// Blocks per side of a pooled map.
const BLOCKS: usize = 32;

fn status(text: &str, error: bool) {
    set_status("routing-status", text, error);
}

pub(super) async fn compute() -> Result<()> {
    let sweep = forms::sweep()?;
    let spec = RoutingSpec {
        task: sweep.task,
        length: sweep.lengths[0],
        depth: 0.5,
        seed: sweep.seed,
        blocks: Blocks::PerSide(BLOCKS),
    };
    let models = state::models()?;
    let mut profiles = Vec::new();
    let line = format!("({} tokens, depth 0.5, seed {})", spec.length, spec.seed);
    let ended = engine::run(
        &Request::Routing { spec: spec.clone() },
        &models,
        &mut |event| match event {
            Event::Loading { model } => {
                status(&format!("{model}: running the prompt {line}…"), false)
            }
            Event::Profile { profile } => profiles.push(profile),
            _ => {}
        },
    )
    .await?;
    if ended == Ended::Cancelled {
        status("Cancelled.", false);
        return Ok(());
    }
    if profiles.is_empty() {
        return Err(Error::Page("no model".into()));
    }
    choose_defaults(&profiles);
    state::with(|s| s.routing = Some(Routing { spec, profiles }));
    draw()
}

/// Fills the layer and head pickers; the default (unless the link names
/// one) is the most affected layer and its head that moved closest.
fn choose_defaults(profiles: &[Profile]) {
    let (Some(pre), Some(sft)) = (profiles.first(), profiles.get(1)) else {
        return;
    };
    let c = compare(pre, sft);
    let layers: Vec<usize> = pre.layers.iter().map(|l| l.layer).collect();
    let heads: Vec<usize> = (0..pre.layer(c.layer).map_or(0, |l| l.mean_distance.len())).collect();
    set_options("routing-layer", &layers);
    set_options("routing-head", &heads);
    let from_link = |key: &str, n: &[usize]| {
        share::get(key)
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|v| n.contains(v))
    };
    set_field(
        "routing-layer",
        &from_link("layer", &layers).unwrap_or(c.layer).to_string(),
    );
    set_field(
        "routing-head",
        &from_link("head", &heads).unwrap_or(c.head).to_string(),
    );
}

/// Shows `layer`, `head` (the demo's retrieval head, which the guide's
/// text is about) once the routing is computed.
pub(super) fn focus(layer: usize, head: usize) -> Result<()> {
    set_field("routing-layer", &layer.to_string());
    set_field("routing-head", &head.to_string());
    draw()
}

fn draw() -> Result<()> {
    let layer: usize = field("routing-layer")
        .parse()
        .map_err(|_| Error::Usage("pick a layer".into()))?;
    let head: usize = field("routing-head")
        .parse()
        .map_err(|_| Error::Usage("pick a head".into()))?;
    share::update(&[("layer", layer.to_string()), ("head", head.to_string())]);
    let Some(drawn) = state::with(|s| s.routing.as_ref().map(|r| draw_routing(r, layer, head)))
    else {
        return Ok(());
    };
    let (figures, line) = drawn?;
    state::set_figures("routing-", figures);
    status(&line, false);
    Ok(())
}

/// Draws `r`'s maps and bars for `layer` and `head`; the figures drawn,
/// and the status line.
fn draw_routing(r: &Routing, layer: usize, head: usize) -> Result<(Vec<(String, String)>, String)> {
    let maps_root = need("routing-maps")?;
    let bars_root = need("routing-bars")?;
    maps_root.set_text_content(None);
    bars_root.set_text_content(None);
    let Some(last) = r.profiles.last() else {
        return Ok((Vec::new(), String::new()));
    };
    let (needle, block, blocks) = (last.needle.clone(), last.block, last.blocks);
    let marked = Some(NeedleBlocks {
        first: needle.start as usize / block,
        last: (needle.end.max(1) as usize - 1) / block,
    });
    let mut figures = Vec::new();
    for p in &r.profiles {
        let Some(map) = p.layer(layer).and_then(|l| l.maps.get(head)) else {
            continue;
        };
        let window = p.layer(layer).and_then(|l| l.window);
        let svg = attention_map(
            &format!("{}: layer {layer}, head {head}", p.model),
            map,
            (blocks, block),
            marked,
            window,
            MapValues::Attention,
        );
        show_svg(&maps_root, &svg, &format!("routing-map-{}", p.model))?;
        figures.push((format!("routing-l{layer}h{head}-{}", p.model), svg));
    }
    // Figure 4's fourth panel: what the merge changed against sft (or,
    // before a merge, what SFT changed against pre).
    if let (Some(ratio), [.., before, after]) = (
        last_log_ratio(&r.profiles, layer, head),
        r.profiles.as_slice(),
    ) {
        let values = MapValues::LogRatio {
            more: &after.model,
            than: &before.model,
        };
        let svg = attention_map(
            &format!(
                "ln({} / {}): layer {layer}, head {head}",
                after.model, before.model
            ),
            &ratio,
            (blocks, block),
            marked,
            last.layer(layer).and_then(|l| l.window),
            values,
        );
        show_svg(&maps_root, &svg, "routing-map-log-ratio")?;
        figures.push((format!("routing-l{layer}h{head}-log-ratio"), svg));
    }
    let names: Vec<&str> = r.profiles.iter().map(|p| p.model.as_str()).collect();
    let per_model = |f: &dyn Fn(&LayerRouting) -> Vec<f32>| -> Vec<Vec<f32>> {
        r.profiles
            .iter()
            .filter_map(|p| p.layer(layer).map(f))
            .collect()
    };
    let distance = head_bars(
        &format!("Mean attention distance, layer {layer}"),
        "tokens",
        &names,
        &per_model(&|l| l.mean_distance.clone()),
    );
    show_svg(&bars_root, &distance, "routing-distance")?;
    let mass = head_bars(
        &format!("Needle attention mass, layer {layer}"),
        "share",
        &names,
        &per_model(&|l| l.needle_mass.clone()),
    );
    show_svg(&bars_root, &mass, "routing-mass")?;
    figures.push((format!("routing-l{layer}-distance"), distance));
    figures.push((format!("routing-l{layer}-needle-mass"), mass));
    let series: Vec<Vec<f32>> = r
        .profiles
        .iter()
        .filter_map(|p| p.layer(layer).and_then(|l| l.question.get(head)).cloned())
        .collect();
    let question = question_attention(
        &format!("Where the question looks, layer {layer}, head {head}"),
        &names,
        &series,
        block,
        marked,
    );
    let question_root = need("routing-question")?;
    question_root.set_text_content(None);
    show_svg(&question_root, &question, "routing-question")?;
    figures.push((format!("routing-l{layer}h{head}-question"), question));
    numbers(r, layer, head)?;
    let line = format!("Prompt: {} tokens, needle at tokens {}–{}; maps pooled over {block} x {block} token blocks.", last.tokens, needle.start, needle.end);
    Ok((figures, line))
}

/// The chosen head's needle mass and mean distance in every model, with
/// the change from the first (before SFT) in percent.
fn numbers(r: &Routing, layer: usize, head: usize) -> Result<()> {
    let doc = super::dom::need_document()?;
    let root = need("routing-numbers")?;
    root.set_text_content(None);
    let table = super::dom::element(&doc, "table")?;
    let _ = table.set_attribute("class", "layers routing-numbers");
    super::dom::add(&doc, &table, "caption", &format!("Layer {layer}, head {head}: what the question pays the needle, and how far the head looks"));
    let head_row = super::dom::element(&doc, "tr")?;
    for h in [
        "model",
        "needle mass",
        "change",
        "mean distance (tokens)",
        "change",
    ] {
        super::dom::add(&doc, &head_row, "th", h);
    }
    let _ = table.append_child(&head_row);
    let value = |p: &Profile, f: fn(&LayerRouting) -> &Vec<f32>| {
        p.layer(layer).and_then(|l| f(l).get(head).copied())
    };
    let first = r.profiles.first();
    for p in &r.profiles {
        let tr = super::dom::element(&doc, "tr")?;
        let _ = tr.set_attribute("data-model", &p.model);
        super::dom::add(&doc, &tr, "th", &p.model);
        for f in [
            (|l: &LayerRouting| &l.needle_mass) as fn(&LayerRouting) -> &Vec<f32>,
            |l: &LayerRouting| &l.mean_distance,
        ] {
            let (v, base) = (value(p, f), first.and_then(|b| value(b, f)));
            super::dom::add(
                &doc,
                &tr,
                "td",
                &v.map_or("–".into(), |v| {
                    if v < 10.0 {
                        format!("{v:.3}")
                    } else {
                        format!("{v:.1}")
                    }
                }),
            );
            let change = match (v, base) {
                (Some(v), Some(b)) if b.abs() > 1e-12 => format!("{:+.0}%", 100.0 * (v - b) / b),
                _ => "–".into(),
            };
            super::dom::add(&doc, &tr, "td", &change);
        }
        let _ = table.append_child(&tr);
    }
    let _ = root.append_child(&table);
    Ok(())
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
