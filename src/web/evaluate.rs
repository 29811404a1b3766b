//! The evaluate panel: one NIAH sweep over pre, sft and the merge, side by
//! side, run by the engine's worker with progress and Cancel; the results
//! as one heat map per model (context length x needle depth, one colour
//! scale) and a table laid out as the paper's Table 1. A cancelled sweep
//! keeps its results and Run continues it.

use wasm_bindgen_futures::spawn_local;

use super::dom::{
    add, by_id, element, need, need_document, on, set_progress, set_status, show_svg, while_running,
};
use super::engine::{self, Ended};
use super::protocol::{Event, Request};
use super::state;
use super::{forms, share};
use crate::app::sweep::{models_of, table_cell, SweepSpec};
use crate::error::Result;
use crate::figures::niah_heat_map;
use crate::prompts::TaskKind;
use crate::sweep::{cells, SampleResult};

fn status(text: &str, error: bool) {
    set_status("eval-status", text, error);
}

fn share_settings(st: &SweepSpec) {
    let join = |v: Vec<String>| v.join(",");
    share::update(&[
        ("task", st.task.name().into()),
        (
            "lengths",
            join(st.lengths.iter().map(|x| x.to_string()).collect()),
        ),
        (
            "depths",
            join(st.depths.iter().map(|x| x.to_string()).collect()),
        ),
        ("samples", st.samples.to_string()),
        ("seed", st.seed.to_string()),
    ]);
}

async fn run() -> Result<()> {
    let spec = forms::sweep()?;
    share_settings(&spec);
    let models = state::models()?;
    // Same settings: keep what is done and continue; new settings start over.
    let mut results = match state::with(|s| s.sweep.clone()) {
        Some((old, r)) if old == spec => r,
        _ => Vec::new(),
    };
    state::with(|s| s.sweep = Some((spec.clone(), results.clone())));
    let total = spec.per_model() * models.len();
    let model_names: Vec<&str> = models.iter().map(|(n, _)| *n).collect();
    let mut ran_on = String::new();
    let mut replaced = 0;
    let request = Request::Sweep {
        spec: spec.clone(),
        done: results.clone(),
    };
    status("Starting the engine…", false);
    let ended = super::pool::run(&request, &models, &mut |event| match event {
        Event::Loading { model } => status(
            &format!("{model}: preparing prompts and loading the model…"),
            false,
        ),
        Event::Progress {
            model,
            engine,
            model_done,
            model_total,
            ..
        } => {
            status(
                &format!(
                    "{model}: prompt {} of {model_total} on {engine}",
                    (model_done + 1).min(model_total)
                ),
                false,
            );
            ran_on = engine;
        }
        Event::Samples { samples } => {
            results.extend(samples);
            // A pool's workers finish out of order: keep one run's order.
            spec.sort_in_sweep_order(&model_names, &mut results);
            // The bar counts finished prompts: a batch finishes together.
            set_progress("eval-progress", results.len() as f64, total as f64);
            state::with(|s| s.sweep = Some((spec.clone(), results.clone())));
            if let Err(e) = render(&spec, &results) {
                status(&e.to_string(), true);
            }
        }
        Event::WorkerReplaced { reason } => {
            replaced += 1;
            status(
                &format!("{reason}; a new worker runs the rest of its prompts…"),
                false,
            )
        }
        _ => {}
    })
    .await;
    let ended = match ended {
        Ok(ended) => ended,
        Err(e) => {
            let kept = results.len();
            status(&format!("{e}. The {kept} prompts finished before are kept: Run goes on from there with a fresh engine (or pick another engine above)."), true);
            return Ok(());
        }
    };
    if ended == Ended::Cancelled {
        status(
            &format!(
                "Cancelled after {} of {total} prompts; Run continues from there.",
                results.len()
            ),
            false,
        );
        return Ok(());
    }
    render(&spec, &results)?;
    set_progress("eval-progress", total as f64, total as f64);
    let on = if ran_on.is_empty() {
        String::new()
    } else {
        format!(" on {ran_on}")
    };
    let replaced = match replaced {
        0 => String::new(),
        1 => " A worker stopped and a new one ran the rest of its prompts.".into(),
        n => format!(" {n} times a worker stopped and a new one ran the rest of its prompts."),
    };
    status(
        &format!(
            "Done: {total} prompts ({} per model){on}.{replaced}",
            spec.per_model()
        ),
        false,
    );
    Ok(())
}

/// Heat maps and the Table 1 summary of `results`.
fn render(st: &SweepSpec, results: &[SampleResult]) -> Result<()> {
    let cells = cells(results);
    let models = models_of(results);
    let maps = need("heatmaps")?;
    maps.set_text_content(None);
    let mut figures = Vec::new();
    for m in &models {
        let svg = niah_heat_map(m, st.task, &st.lengths, &st.depths, &cells);
        show_svg(&maps, &svg, &format!("heatmap-{m}"))?;
        figures.push((format!("niah-{}-{m}", st.task), svg));
    }
    state::set_figures("niah-", figures);
    table1(st, results, &models)
}

/// One row per model, one column per task and length: accuracy in %,
/// over every depth and sample of the cell, as the paper's Table 1.
fn table1(st: &SweepSpec, results: &[SampleResult], models: &[&str]) -> Result<()> {
    let doc = need_document()?;
    let root = need("table1")?;
    root.set_text_content(None);
    let table = element(&doc, "table")?;
    let _ = table.set_attribute("class", "layers table1");
    add(
        &doc,
        &table,
        "caption",
        "NIAH accuracy (%), mean over depths and samples",
    );
    let head = element(&doc, "tr")?;
    add(&doc, &head, "th", "model");
    for len in &st.lengths {
        add(
            &doc,
            &head,
            "th",
            &format!("{}@{len}", st.task.name().to_uppercase()),
        );
    }
    let _ = table.append_child(&head);
    for m in models {
        let tr = element(&doc, "tr")?;
        let _ = tr.set_attribute("data-model", m);
        add(&doc, &tr, "th", m);
        for &len in &st.lengths {
            let text = table_cell(results, m, st.task, len)
                .map_or("–".to_string(), |acc| format!("{acc:.1}"));
            add(&doc, &tr, "td", &text);
        }
        let _ = table.append_child(&tr);
    }
    let _ = root.append_child(&table);
    Ok(())
}

/// Runs the form's sweep as the Run button does.
pub async fn run_now() {
    while_running("run-sweep", "cancel-sweep", "eval-status", run()).await;
}

pub fn wire() {
    share::restore(&[
        ("task", |v| TaskKind::parse(v).is_ok()),
        ("lengths", share::number_list),
        ("depths", share::number_list),
        ("samples", share::whole_number),
        ("seed", share::whole_number),
    ]);
    if let Some(b) = by_id("run-sweep") {
        on(&b, "click", |_| spawn_local(run_now()));
    }
    if let Some(b) = by_id("cancel-sweep") {
        on(&b, "click", |_| engine::cancel());
    }
    super::pool::wire();
}
