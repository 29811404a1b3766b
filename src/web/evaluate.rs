//! The evaluate panel: one NIAH sweep over pre, sft and the merge, side by
//! side, with progress and Cancel; the results as one heat map per model
//! (context length x needle depth, one colour scale) and a table laid out
//! as the paper's Table 1. A cancelled sweep keeps its results and Run
//! continues it.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlProgressElement;

use super::share::{self, field};
use super::{add, by_id, document, load_engine, on, report, repair, set_class_text, show_svg, BrowserSource};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::figures::niah_heat_map;
use crate::niah::{Task, ID_TASK};
use crate::sweep::{cells, PromptMaker, SampleResult};
use crate::tokenizer::Tokenizer;

/// The sweep form's settings (and the fragment's keys of the same names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSettings {
    pub task: String,
    pub lengths: Vec<u32>,
    pub depths: Vec<f64>,
    pub samples: u32,
    pub seed: u64,
}

thread_local! {
    /// The settings and every finished sample of the last sweep.
    static RESULTS: RefCell<Option<(SweepSettings, Vec<SampleResult>)>> = const { RefCell::new(None) };
    static CANCEL: Cell<bool> = const { Cell::new(false) };
}

/// The last sweep, for the report.
pub(super) fn results() -> Option<(SweepSettings, Vec<SampleResult>)> {
    RESULTS.with(|r| r.borrow().clone())
}

fn status(text: &str, error: bool) {
    set_class_text("eval-status", text, error);
}

fn list<T: std::str::FromStr>(id: &str, what: &str) -> Result<Vec<T>> {
    let v = field(id);
    let parsed: std::result::Result<Vec<T>, _> = v.split(',').map(|x| x.trim().parse::<T>()).collect();
    match parsed {
        Ok(list) if !list.is_empty() => Ok(list),
        _ => Err(Error::Usage(format!("{what}: {v:?} is not a comma-separated list of numbers"))),
    }
}

/// The form's settings, checked.
pub(super) fn settings() -> Result<SweepSettings> {
    let task = field("task");
    if task != ID_TASK {
        Task::parse(&task)?;
    }
    let lengths: Vec<u32> = list("lengths", "lengths")?;
    let depths: Vec<f64> = list("depths", "depths")?;
    if let Some(d) = depths.iter().find(|d| !(0.0..=1.0).contains(*d)) {
        return Err(Error::Usage(format!("depth {d} is outside [0, 1]")));
    }
    let samples = field("samples").trim().parse::<u32>().ok().filter(|s| *s >= 1).ok_or_else(|| Error::Usage("samples must be a whole number of at least 1".into()))?;
    let seed = field("seed").trim().parse::<u64>().map_err(|_| Error::Usage("seed must be a whole number".into()))?;
    Ok(SweepSettings { task, lengths, depths, samples, seed })
}

fn share_settings(st: &SweepSettings) {
    let join = |v: Vec<String>| v.join(",");
    share::update(&[
        ("task", st.task.clone()),
        ("lengths", join(st.lengths.iter().map(|x| x.to_string()).collect())),
        ("depths", join(st.depths.iter().map(|x| x.to_string()).collect())),
        ("samples", st.samples.to_string()),
        ("seed", st.seed.to_string()),
    ]);
}

fn progress(done: usize, total: usize) {
    if let Some(p) = by_id("eval-progress").and_then(|e| e.dyn_into::<HtmlProgressElement>().ok()) {
        p.set_max(total.max(1) as f64);
        p.set_value(done as f64);
    }
}

fn buttons(running: bool) {
    for (id, disabled) in [("run-sweep", running), ("cancel-sweep", !running)] {
        if let Some(b) = by_id(id) {
            let _ = if disabled { b.set_attribute("disabled", "") } else { b.remove_attribute("disabled") };
        }
    }
}

async fn run_sweep() -> Result<()> {
    let st = settings()?;
    share_settings(&st);
    let models = repair::models()?;
    // Same settings: keep what is done and continue; new settings start over.
    let mut results = match results() {
        Some((old, r)) if old == st => r,
        _ => Vec::new(),
    };
    let per_model = st.lengths.len() * st.depths.len() * st.samples as usize;
    let total = per_model * models.len();
    let mut ran_on = String::new();
    CANCEL.with(|c| c.set(false));
    for (m, (name, files)) in models.iter().enumerate() {
        let done: HashSet<_> = results.iter().map(|r| r.key()).collect();
        let base = m * per_model;
        if results.iter().filter(|r| r.model == *name).count() == per_model {
            continue;
        }
        status(&format!("{name}: preparing prompts and loading the model…"), false);
        let ck = Checkpoint::open(BrowserSource::new(files.clone())?).await?;
        let tok = Tokenizer::of_checkpoint(&ck).await?;
        let maker = PromptMaker::of(&ck, tok.as_ref())?;
        let samples = maker.samples(&st.task, &st.lengths, &st.depths, st.samples, st.seed, None).map_err(|e| Error::Usage(format!("{name}: {e}")))?;
        let longest = samples.iter().map(|s| s.ids.len() + s.max_new).max().unwrap_or(1) as u32;
        let (engine, note) = load_engine(&ck, longest, false).await.map_err(|e| Error::Usage(format!("{name}: {e}")))?;
        ran_on = format!("{}{note}", engine.backend());
        let stop: Vec<u32> = ck.config_u32("eos_token_id").into_iter().collect();
        let detok = |ids: &[u32]| maker.text(&st.task, ids);
        let mut out = Vec::new();
        let complete = crate::sweep::run(&engine, name, &samples, &stop, &detok, &done, &mut out, &mut |i, n| {
            progress(base + i, total);
            status(&format!("{name}: prompt {} of {n} on {}{note}", (i + 1).min(n), engine.backend()), false);
            !CANCEL.with(|c| c.get())
        })
        .await?;
        results.extend(out);
        RESULTS.with(|r| *r.borrow_mut() = Some((st.clone(), results.clone())));
        render(&st, &results)?;
        if !complete {
            let finished = results.len();
            status(&format!("Cancelled after {finished} of {total} prompts; Run continues from there."), false);
            return Ok(());
        }
    }
    progress(total, total);
    let on = if ran_on.is_empty() { String::new() } else { format!(" on {ran_on}") };
    status(&format!("Done: {total} prompts ({per_model} per model){on}."), false);
    Ok(())
}

/// Heat maps and the Table 1 summary of `results`.
fn render(st: &SweepSettings, results: &[SampleResult]) -> Result<()> {
    let cells = cells(results);
    let mut models: Vec<&str> = Vec::new();
    for r in results {
        if !models.contains(&r.model.as_str()) {
            models.push(&r.model);
        }
    }
    let maps = by_id("heatmaps").ok_or_else(|| Error::Usage("no #heatmaps".into()))?;
    maps.set_text_content(None);
    let mut figures = Vec::new();
    for m in &models {
        let svg = niah_heat_map(m, &st.task, &st.lengths, &st.depths, &cells);
        show_svg(&maps, &svg, &format!("heatmap-{m}"))?;
        figures.push((format!("niah-{}-{m}", st.task), svg));
    }
    report::set_figures("niah-", figures);
    table1(st, results, &models)
}

/// One row per model, one column per task and length: accuracy in %,
/// over every depth and sample of the cell, as the paper's Table 1.
fn table1(st: &SweepSettings, results: &[SampleResult], models: &[&str]) -> Result<()> {
    let doc = document().ok_or_else(|| Error::Usage("no document".into()))?;
    let root = by_id("table1").ok_or_else(|| Error::Usage("no #table1".into()))?;
    root.set_text_content(None);
    let table = doc.create_element("table").map_err(|_| Error::Usage("cannot make a table".into()))?;
    let _ = table.set_attribute("class", "layers table1");
    add(&doc, &table, "caption", "NIAH accuracy (%), mean over depths and samples");
    let head = doc.create_element("tr").map_err(|_| Error::Usage("cannot make a row".into()))?;
    add(&doc, &head, "th", "model");
    for len in &st.lengths {
        add(&doc, &head, "th", &format!("{}@{len}", st.task.to_uppercase()));
    }
    let _ = table.append_child(&head);
    for m in models {
        let tr = doc.create_element("tr").map_err(|_| Error::Usage("cannot make a row".into()))?;
        let _ = tr.set_attribute("data-model", m);
        add(&doc, &tr, "th", m);
        for len in &st.lengths {
            let scores: Vec<f64> = results.iter().filter(|r| r.model == *m && r.length == *len).map(|r| r.score).collect();
            let text = if scores.is_empty() { "–".to_string() } else { format!("{:.1}", 100.0 * scores.iter().sum::<f64>() / scores.len() as f64) };
            add(&doc, &tr, "td", &text);
        }
        let _ = table.append_child(&tr);
    }
    let _ = root.append_child(&table);
    Ok(())
}

pub fn wire() {
    share::restore(&[
        ("task", |v| v == ID_TASK || Task::parse(v).is_ok()),
        ("lengths", share::number_list),
        ("depths", share::number_list),
        ("samples", share::whole_number),
        ("seed", share::whole_number),
    ]);
    if let Some(b) = by_id("run-sweep") {
        on(&b, "click", |_| {
            spawn_local(async {
                buttons(true);
                if let Err(e) = run_sweep().await {
                    status(&e.to_string(), true);
                }
                buttons(false);
            })
        });
    }
    if let Some(b) = by_id("cancel-sweep") {
        on(&b, "click", |_| {
            CANCEL.with(|c| c.set(true));
            status("Cancelling after the current prompt…", false);
        });
    }
}
