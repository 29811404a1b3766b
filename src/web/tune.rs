//! The Tune step: every merge of a small grid scored in the engine's
//! worker for recall and for what it keeps of the fine-tune, drawn as a
//! scatter (the front filled, the recommended point ringed, each point
//! naming its setting on hover) and a table where any merge can be
//! downloaded. The demo brings its held-out arithmetic as answers.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::HtmlInputElement;

use super::dom::{
    add, by_id, element, js_err, need, need_document, offer_downloads, offer_json, on,
    set_progress, set_status, show_svg, while_running,
};
use super::engine::{self, Ended};
use super::files::fetch_text;
use super::protocol::{Event, Request};
use super::repair::{merge_and_offer, MergeUi};
use super::{forms, share, state};
use crate::app::demo::{demo_pair, DemoPair};
use crate::app::tune::{Scored, TuneReport, TuneSpec};
use crate::error::{Error, Result};
use crate::figures::{tune_scatter, TunePoint};
use crate::tune::front::{pareto_front, recommend, Point};
use crate::tune::retention::parse_answers;

const MERGE_UI: MergeUi = MergeUi {
    status: "tune-merge-status",
    progress: "tune-progress",
    list: "tune-downloads",
};

fn status(text: &str, error: bool) {
    set_status("tune-status", text, error);
}

/// The demo's held-out arithmetic, as the Tune step's answers.
pub(super) async fn use_demo_answers(pair: &DemoPair) {
    match fetch_text(pair.answers)
        .await
        .and_then(|t| parse_answers(&t).map(|a| (a.len(), t)))
    {
        Ok((n, text)) => set_answers(
            format!("the demo's held-out arithmetic ({n} problems)"),
            text,
            true,
        ),
        Err(e) => status(
            &format!("The demo's arithmetic answers could not be read: {e}"),
            true,
        ),
    }
}

/// Forgets the demo's answers once another pair is open (the shared
/// settings say whether the demo is).
fn drop_demo_answers() {
    let demo_open = share::get("demo").is_some_and(|k| demo_pair(&k).is_some());
    if !demo_open && state::with(|s| s.tune_answers.as_ref().is_some_and(|a| a.2)) {
        state::with(|s| s.tune_answers = None);
        show_answers_label();
    }
}

fn set_answers(label: String, text: String, demo: bool) {
    state::with(|s| s.tune_answers = Some((label, text, demo)));
    show_answers_label();
}

fn show_answers_label() {
    let label = state::with(|s| s.tune_answers.as_ref().map(|a| a.0.clone()));
    if let Some(e) = by_id("tune-answers-name") {
        e.set_text_content(Some(
            &label.map_or("none: retention is agreement with sft".into(), |l| {
                format!("using {l}")
            }),
        ));
    }
}

async fn read_answers_file() -> Result<()> {
    let Some(file) = by_id("tune-answers")
        .and_then(|e| e.dyn_into::<HtmlInputElement>().ok())
        .and_then(|i| i.files())
        .and_then(|f| f.get(0))
    else {
        return Ok(());
    };
    let name = file.name();
    let text = JsFuture::from(file.text())
        .await
        .map_err(|e| js_err(&name, e))?
        .as_string()
        .unwrap_or_default();
    let n = parse_answers(&text)
        .map_err(|e| Error::Usage(format!("{name}: {e}")))?
        .len();
    set_answers(format!("{name} ({n} prompts with answers)"), text, false);
    Ok(())
}

/// The form's tune, with the answers chosen.
fn spec() -> Result<TuneSpec> {
    drop_demo_answers();
    let sweep = forms::sweep_of("tune-")?;
    let (grid, tolerance) = forms::tune_grid()?;
    let answers = match state::with(|s| s.tune_answers.clone()) {
        Some((_, text, _)) => Some(parse_answers(&text)?),
        None => None,
    };
    Ok(TuneSpec {
        sweeps: vec![sweep],
        grid,
        tolerance,
        answers,
        prompts: None,
    })
}

async fn run() -> Result<()> {
    let spec = spec()?;
    let [pre, sft] = state::with(|s| s.pair.clone());
    if pre.is_empty() || sft.is_empty() {
        return Err(Error::Usage(
            "Give both checkpoints (or open the demo) first.".into(),
        ));
    }
    let models = [("pre", pre), ("sft", sft)];
    let mut scored: Vec<Scored> = Vec::new();
    let mut report = None;
    offer_downloads("tune-report", &[])?;
    status("Starting the engine…", false);
    let ended = engine::run(
        &Request::Tune { spec: spec.clone() },
        &models,
        &mut |event| match event {
            Event::Loading { .. } => status(
                "Loading sft and letting it continue its reference prompts…",
                false,
            ),
            Event::StepProgress {
                index,
                steps,
                label,
                done,
                total,
                engine,
            } => {
                set_progress(
                    "tune-progress",
                    index as f64 + done as f64 / total.max(1) as f64,
                    steps as f64,
                );
                status(
                    &format!(
                        "Candidate {} of {steps}, {label}: prompt {} of {total} on {engine}",
                        index + 1,
                        (done + 1).min(total)
                    ),
                    false,
                );
            }
            Event::Scored { scored: s } => {
                scored.push(*s);
                if let Err(e) = render(&spec, &scored) {
                    status(&e.to_string(), true);
                }
            }
            Event::Tuned { report: r } => report = Some(*r),
            _ => {}
        },
    )
    .await;
    let kept = scored.len();
    state::with(|s| s.tune = scored);
    match ended {
        Err(e) => status(
            &format!("{e}. The {kept} candidates scored before are shown."),
            true,
        ),
        Ok(Ended::Cancelled) => status(&format!("Cancelled after {kept} candidates."), false),
        Ok(Ended::Done) => {
            let r = report.ok_or_else(|| {
                Error::Page("the engine ended the tune without its report".into())
            })?;
            offer_json("tune-report", "tune.json", &r)?;
            status(&summary(&r), false);
        }
    }
    Ok(())
}

/// The finished tune in one sentence.
fn summary(r: &TuneReport) -> String {
    let best = &r.candidates[r.recommended];
    let what = if r.spec.answers.is_some() {
        "exact match on the answers"
    } else {
        "agreement with sft"
    };
    let mut s = format!(
        "Done: {} candidates in {:.0} s on {}. Recommended: {} (recall {:.1}%, {what} {:.1}%).",
        r.candidates.len(),
        r.seconds,
        r.engine,
        best.label,
        best.recall,
        best.retention
    );
    if best.spec.is_none() {
        if let Some(f) = r
            .front
            .iter()
            .map(|&i| &r.candidates[i])
            .find(|c| c.spec.is_some())
        {
            s += &format!(" No merge keeps the skill within the tolerance; the front's best recall is {} ({:.1}%, {what} {:.1}%): raise the tolerance to have it recommended.", f.label, f.recall, f.retention);
        }
    }
    s
}

/// The scatter and the table of the candidates scored so far.
fn render(spec: &TuneSpec, scored: &[Scored]) -> Result<()> {
    let points: Vec<Point> = scored.iter().map(Scored::point).collect();
    let front = pareto_front(&points);
    let rec = (!points.is_empty()).then(|| recommend(&points, 0, spec.measure(), spec.tolerance));
    let retention = if spec.answers.is_some() {
        "exact match on the answers"
    } else {
        "argmax agreement with sft"
    };
    let labels: Vec<TunePoint> = scored
        .iter()
        .map(|c| TunePoint {
            label: &c.label,
            recall: c.recall,
            retention: c.retention,
        })
        .collect();
    let svg = tune_scatter(
        "Recall against what SFT taught",
        retention,
        &labels,
        &front,
        rec,
    );
    let root = need("tune-scatter")?;
    root.set_text_content(None);
    show_svg(&root, &svg, "tune-front")?;
    state::set_figures("tune-", vec![("tune-front".into(), svg)]);
    table(scored, &front, rec, retention)
}

fn table(scored: &[Scored], front: &[usize], rec: Option<usize>, retention: &str) -> Result<()> {
    let doc = need_document()?;
    let root = need("tune-table")?;
    root.set_text_content(None);
    let t = element(&doc, "table")?;
    let _ = t.set_attribute("class", "layers tune");
    add(&doc, &t, "caption", &format!("Every candidate: recall is NIAH accuracy (%), retention is {retention} (%), KL(sft ‖ merge) per token on sft's continuations"));
    let head = element(&doc, "tr")?;
    for h in [
        "candidate",
        "recall",
        "retention",
        "agreement",
        "KL",
        "front",
        "",
    ] {
        add(&doc, &head, "th", h);
    }
    let _ = t.append_child(&head);
    for (i, c) in scored.iter().enumerate() {
        let tr = element(&doc, "tr")?;
        let _ = tr.set_attribute("data-index", &i.to_string());
        add(&doc, &tr, "th", &c.label);
        for v in [
            format!("{:.1}", c.recall),
            format!("{:.1}", c.retention),
            format!("{:.1}", c.agreement),
            format!("{:.4}", c.kl),
        ] {
            add(&doc, &tr, "td", &v);
        }
        let mark = match (front.contains(&i), rec == Some(i)) {
            (_, true) => "recommended",
            (true, false) => "on the front",
            _ => "",
        };
        add(&doc, &tr, "td", mark);
        let cell = element(&doc, "td")?;
        if c.spec.is_some() {
            let b = add(&doc, &cell, "button", "Download this merge")
                .ok_or_else(|| Error::Page("cannot add a button".into()))?;
            let _ = b.set_attribute("type", "button");
            let _ = b.set_attribute("class", "tune-merge");
            let _ = b.set_attribute("aria-label", &format!("Download the merge {}", c.label));
            on(&b, "click", move |_| spawn_local(download(i)));
        }
        let _ = tr.append_child(&cell);
        if rec == Some(i) {
            let _ = tr.set_attribute("class", "recommended");
        }
        let _ = t.append_child(&tr);
    }
    let _ = root.append_child(&t);
    Ok(())
}

/// Merges candidate `i` and offers its files.
async fn download(i: usize) {
    let Some(c) = state::with(|s| s.tune.get(i).cloned()) else {
        return;
    };
    let Some(spec) = c.spec else { return };
    match merge_and_offer(spec, &MERGE_UI).await {
        Ok(()) => set_status(MERGE_UI.status, &format!("{}: its files, each re-read and verified, are below; Evaluate and Inspect routing now use this merge.", c.label), false),
        Err(e) => set_status(MERGE_UI.status, &e.to_string(), true),
    }
}

pub fn wire() {
    show_answers_label();
    if let Some(b) = by_id("run-tune") {
        on(&b, "click", |_| {
            spawn_local(while_running(
                "run-tune",
                "cancel-tune",
                "tune-status",
                run(),
            ))
        });
    }
    if let Some(b) = by_id("cancel-tune") {
        on(&b, "click", |_| engine::cancel());
    }
    if let Some(i) = by_id("tune-answers") {
        on(&i, "change", |_| {
            spawn_local(async {
                if let Err(e) = read_answers_file().await {
                    status(&e.to_string(), true);
                }
            })
        });
    }
}
