//! The demo's story in one click: "Open the HypeNet demo" (or the
//! Jet-Nemotron one) shows the results recorded with that pair (the
//! paper's Table 1 and its ablation, and once both pairs' recordings are
//! in, Table 1 across the two architectures) at once, and walks through
//! four steps (what SFT changed, the repair, the retrieval test, where the
//! heads look), each saying what to look at; every number and layer in
//! their text comes from the opened pair's recording (`app::demo`). "Run
//! it here" re-runs some of the recorded prompts live and marks the cells
//! that match the recording sample for sample.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;

use super::dom::{add, by_id, element, need, need_document, on, set_field, set_status};
use super::files::fetch_text;
use super::state;
use crate::app::demo::{demo_pair, describe_layers, guide_texts, DemoPair, Recorded, DEMO_PAIRS};
use crate::error::{Error, Result};
use crate::niah::Task;
use crate::prompts::TaskKind;
use crate::sweep::SampleResult;

/// The rows of the paper's Table 1 and of its ablation: (recorded model, label).
const TABLE1: [(&str, &str); 3] = [
    ("pre", "Before SFT"),
    ("sft", "After SFT"),
    ("qk-restore", "QK-Restore"),
];
const ABLATION: [(&str, &str); 5] = [
    ("qk-restore", "QK-Restore"),
    ("q-restore", "Q-Restore"),
    ("k-restore", "K-Restore"),
    ("v-restore", "V-Restore"),
    ("qk-pro", "QK-Pro (beta 1)"),
];
const S1: TaskKind = TaskKind::Text(Task::S1);
const TASKS: [(TaskKind, &str); 2] = [(S1, "S1@2048"), (TaskKind::Text(Task::Mk), "MK@2048")];

/// What "Run it here" runs: the recorded prompts of S1 at 2048 for the
/// first two depths and samples (the seeds equal the recording's), a
/// minute or so on a CPU; "Run all of S1" runs every recorded S1 prompt.
const HERE_QUICK: (&str, &str) = ("0,0.25", "2");
const HERE_ALL: (&str, &str) = ("0,0.25,0.5,0.75,1", "10");

/// The page's models as the recording names them.
fn recorded_name(page: &str) -> &str {
    match page {
        "merged" => "qk-restore",
        other => other,
    }
}

fn accuracy(r: &Recorded, task: TaskKind, model: &str) -> Option<f64> {
    r.accuracy(task, model)
}

fn arithmetic(r: &Recorded, model: &str) -> Option<f64> {
    r.arithmetic(model)
}

/// One table: a row per (model, label), S1, MK and arithmetic columns.
fn table(
    r: &Recorded,
    caption: &str,
    rows: &[(&str, &str)],
    class: &str,
) -> Result<web_sys::Element> {
    let doc = need_document()?;
    let t = element(&doc, "table")?;
    let _ = t.set_attribute("class", &format!("layers {class}"));
    if let Some(id) = class.split(' ').next() {
        let _ = t.set_attribute("id", &format!("recorded-{id}"));
    }
    add(&doc, &t, "caption", caption);
    let head = element(&doc, "tr")?;
    for h in ["model", TASKS[0].1, TASKS[1].1, "Arithmetic"] {
        add(&doc, &head, "th", h);
    }
    let _ = t.append_child(&head);
    for (model, label) in rows {
        let tr = element(&doc, "tr")?;
        let _ = tr.set_attribute("data-model", model);
        add(&doc, &tr, "th", label);
        for (task, _) in TASKS {
            let td = add(
                &doc,
                &tr,
                "td",
                &accuracy(r, task, model).map_or("–".into(), |a| format!("{a:.0}")),
            )
            .ok_or_else(|| Error::Page("no cell".into()))?;
            let _ = td.set_attribute("data-task", task.name());
        }
        add(
            &doc,
            &tr,
            "td",
            &arithmetic(r, model).map_or("–".into(), |a| format!("{a:.1}")),
        );
        let _ = t.append_child(&tr);
    }
    Ok(t)
}

fn render(pair: &DemoPair, r: &Recorded) -> Result<()> {
    let root = need("recorded")?;
    root.set_text_content(None);
    let doc = need_document()?;
    let p = &r.recorded;
    add(
        &doc,
        &root,
        "h3",
        &format!("Recorded with the {} demo", pair.name),
    );
    if let Some(layers) = describe_layers(r) {
        add(
            &doc,
            &root,
            "p",
            &format!("{}: {layers}.", r.family().unwrap_or(pair.name)),
        );
    }
    let arithmetic = if r.arithmetic("sft").is_some() {
        "Arithmetic: the skill SFT taught (chain-of-thought sums, % exact), from the reference evaluation."
    } else {
        "Arithmetic was not scored for this pair."
    };
    add(
        &doc,
        &root,
        "p",
        &format!(
            "NIAH accuracy (%) at 2048 tokens, 5 depths x 10 samples a cell, recorded by qklab on {} on {}. {arithmetic}",
            p.adapter, p.date
        ),
    );
    let side = element(&doc, "div")?;
    let _ = side.set_attribute("class", "tables");
    for (caption, rows, class) in [
        (
            "Table 1: retrieval lost to SFT, and repaired",
            &TABLE1[..],
            "table1 recorded",
        ),
        (
            "Ablation: which projections to restore",
            &ABLATION[..],
            "ablation recorded",
        ),
    ] {
        let t = table(r, caption, rows, class)?;
        let _ = side.append_child(&t);
    }
    let _ = root.append_child(&side);
    // Filled once every pair's recording is in.
    let across = element(&doc, "div")?;
    let _ = across.set_attribute("id", "recorded-across");
    let _ = across.set_attribute("class", "across");
    let _ = root.append_child(&across);
    // The S1 heat maps of Table 1's models: where in the prompt SFT forgets.
    if let Some(s1) = r.niah.get(&S1) {
        let maps = element(&doc, "div")?;
        let _ = maps.set_attribute("class", "figures");
        let cells = crate::sweep::cells(&s1.samples);
        for (model, _) in TABLE1 {
            let svg = crate::figures::niah_heat_map(
                model,
                S1,
                &[2048],
                &[0.0, 0.25, 0.5, 0.75, 1.0],
                &cells,
            );
            super::dom::show_svg(&maps, &svg, &format!("recorded-heatmap-{model}"))?;
        }
        let _ = root.append_child(&maps);
    }
    let note = add(&doc, &root, "p", &format!("Command: {}", p.command))
        .ok_or_else(|| Error::Page("cannot add the command note".into()))?;
    let _ = note.set_attribute("class", "note");
    Ok(())
}

/// Table 1 of every demo pair side by side: a row per model (before SFT,
/// after SFT, QK-Restore), S1 at 2048 tokens and arithmetic per
/// architecture. Two rows of column headers (the architecture, then its
/// columns), so every cell names its headers (`headers`) for screen
/// readers; `open` is the pair the page has open.
fn render_across(open: &DemoPair, all: &[(&'static str, Recorded)]) -> Result<()> {
    let root = need("recorded-across")?;
    root.set_text_content(None);
    // It scrolls sideways on a narrow screen: reachable from the keyboard.
    let _ = root.set_attribute("tabindex", "0");
    let _ = root.set_attribute("role", "region");
    let _ = root.set_attribute(
        "aria-label",
        "Table 1 across architectures (scrolls sideways on narrow screens)",
    );
    let doc = need_document()?;
    let pairs: Vec<(&DemoPair, &Recorded)> = DEMO_PAIRS
        .iter()
        .filter_map(|p| all.iter().find(|(k, _)| *k == p.key).map(|(_, r)| (p, r)))
        .collect();
    let t = element(&doc, "table")?;
    let _ = t.set_attribute("class", "layers recorded across");
    let _ = t.set_attribute("id", "recorded-architectures");
    add(
        &doc,
        &t,
        "caption",
        "Table 1 across architectures: S1 at 2048 tokens (%) and arithmetic (% exact), as recorded with each demo pair",
    );
    let cell = |tr: &web_sys::Element, tag: &str, text: &str, attrs: &[(&str, String)]| {
        add(&doc, tr, tag, text).map(|c| {
            for (k, v) in attrs {
                let _ = c.set_attribute(k, v);
            }
        })
    };
    let groups = element(&doc, "tr")?;
    cell(&groups, "td", "", &[]);
    for (p, _) in &pairs {
        let name = if p.key == open.key {
            format!("{} (open)", p.name)
        } else {
            p.name.to_string()
        };
        cell(
            &groups,
            "th",
            &name,
            &[
                ("id", format!("across-{}", p.key)),
                ("colspan", "2".into()),
                ("scope", "colgroup".into()),
            ],
        );
    }
    let _ = t.append_child(&groups);
    let columns = element(&doc, "tr")?;
    cell(
        &columns,
        "th",
        "model",
        &[("id", "across-model".into()), ("scope", "col".into())],
    );
    for (p, _) in &pairs {
        for (col, label) in [("s1", TASKS[0].1), ("arithmetic", "Arithmetic")] {
            cell(
                &columns,
                "th",
                label,
                &[
                    ("id", format!("across-{}-{col}", p.key)),
                    ("headers", format!("across-{}", p.key)),
                    ("scope", "col".into()),
                ],
            );
        }
    }
    let _ = t.append_child(&columns);
    for (model, label) in TABLE1 {
        let tr = element(&doc, "tr")?;
        let _ = tr.set_attribute("data-model", model);
        let row = format!("across-row-{model}");
        cell(
            &tr,
            "th",
            label,
            &[
                ("id", row.clone()),
                ("headers", "across-model".into()),
                ("scope", "row".into()),
            ],
        );
        for (p, r) in &pairs {
            let values = [
                ("s1", accuracy(r, S1, model).map(|a| format!("{a:.0}"))),
                (
                    "arithmetic",
                    arithmetic(r, model).map(|a| format!("{a:.1}")),
                ),
            ];
            for (col, value) in values {
                cell(
                    &tr,
                    "td",
                    value.as_deref().unwrap_or("–"),
                    &[
                        (
                            "headers",
                            format!("{row} across-{0} across-{0}-{col}", p.key),
                        ),
                        ("data-pair", p.key.into()),
                        ("data-column", col.into()),
                    ],
                );
            }
        }
        let _ = t.append_child(&tr);
    }
    let _ = root.append_child(&t);
    Ok(())
}

/// The four steps: (panel to show, title, what to look at).
fn steps(
    r: Option<&Recorded>,
    mlp_moved: Option<bool>,
) -> [(&'static str, &'static str, String); 4] {
    let [drift, repair, test, heads] = guide_texts(r, mlp_moved);
    [
        ("drift", "What SFT changed", drift),
        ("merge-form", "Repair", repair),
        ("recorded", "The retrieval test", test),
        ("routing-view", "Where the heads look", heads),
    ]
}

fn show_step(i: usize) {
    let (recorded, mlp_moved) = state::with(|s| (s.recorded.clone(), s.mlp_moved));
    let all = steps(recorded.as_ref(), mlp_moved);
    let i = i.min(all.len() - 1);
    state::with(|s| s.step = i);
    set_status("guide-status", "", false);
    let (panel, title, text) = &all[i];
    for (p, _, _) in &all {
        if let Some(e) = by_id(p) {
            let _ = e.class_list().remove_1("current");
        }
    }
    if let Some(e) = by_id(panel) {
        let _ = e.class_list().add_1("current");
    }
    for n in 0..all.len() {
        if let Some(b) = by_id(&format!("step-{n}")) {
            let _ = if n == i {
                b.set_attribute("aria-current", "step")
            } else {
                b.remove_attribute("aria-current")
            };
        }
    }
    if let Some(h) = by_id("step-title") {
        h.set_text_content(Some(&format!("Step {} of 4: {title}", i + 1)));
    }
    if let Some(p) = by_id("step-text") {
        p.set_text_content(Some(text));
    }
    for (id, visible) in [
        ("step-merge", i == 1),
        ("step-run-here", i == 2),
        ("step-run-all", i == 2),
        ("step-next", i < 3),
    ] {
        if let Some(b) = by_id(id) {
            let _ = if visible {
                b.remove_attribute("hidden")
            } else {
                b.set_attribute("hidden", "")
            };
        }
    }
    // After the guide's text changed: its height is final.
    if let Some(e) = by_id(panel) {
        scroll_below_guide(&e);
    }
    // The last step's pictures need the prompt run through pre, sft and
    // the QK-Restore merge; they show the head the text is about.
    if i == 3 {
        let head = recorded
            .as_ref()
            .and_then(|r| r.retrieval.as_ref())
            .map(|h| (h.layer, h.head));
        spawn_local(async move {
            if state::with(|s| s.routing.as_ref().map_or(0, |r| r.profiles.len()) < 3) {
                if !ensure_demo_merge().await {
                    return;
                }
                if let Err(e) = super::routing::compute().await {
                    set_status("routing-status", &e.to_string(), true);
                    return;
                }
            }
            if let Some((layer, head)) = head {
                if let Err(e) = super::routing::focus(layer, head) {
                    set_status("routing-status", &e.to_string(), true);
                }
            }
            // The pictures pushed the panel's content down: show it again.
            if state::with(|s| s.step) == 3 {
                if let Some(e) = by_id("routing-view") {
                    scroll_below_guide(&e);
                }
            }
        });
    }
}

/// Scrolls `panel` to the top of the window, below the guide where the
/// guide stays on screen (it is sticky on wide screens).
fn scroll_below_guide(panel: &web_sys::Element) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let sticky = by_id("guide").filter(|g| {
        window
            .get_computed_style(g)
            .ok()
            .flatten()
            .and_then(|s| s.get_property_value("position").ok())
            .as_deref()
            == Some("sticky")
    });
    let covered = sticky.map_or(0.0, |g| g.get_bounding_client_rect().height());
    let top =
        panel.get_bounding_client_rect().top() + window.scroll_y().unwrap_or(0.0) - covered - 12.0;
    window.scroll_to_with_x_and_y(0.0, top.max(0.0));
}

fn click(id: &str) {
    if let Some(b) = by_id(id).and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok()) {
        b.click();
    }
}

/// How the demo was opened.
#[derive(Clone, Copy, PartialEq)]
enum Opened {
    /// "Open the demo": the forms get the demo's experiment.
    Button,
    /// A link made on the demo: its settings stay, and the merge it names
    /// is repeated.
    Link,
}

async fn open(pair: &'static DemoPair, how: Opened) {
    // The demo's experiment goes into the forms before the pair opens: a
    // visitor may edit them as soon as it says "Compatible".
    if how == Opened::Button {
        for (id, value) in [
            ("task", "s1"),
            ("lengths", "2048"),
            ("depths", "0,0.25,0.5,0.75,1"),
            ("samples", "10"),
            ("seed", "12345"),
        ] {
            set_field(id, value);
        }
        for (id, value) in DEMO_MERGE {
            set_field(id, value);
        }
    }
    if !super::repair::open_demo_pair(pair).await {
        return;
    }
    super::tune::use_demo_answers(pair).await;
    begin(pair).await;
    if how == Opened::Link && super::share::get("method").is_some() {
        if let Err(e) = super::repair::run_merge().await {
            set_status("merge-status", &e.to_string(), true);
        }
    }
}

/// `pair`'s recording, fetched once.
async fn recording(pair: &'static DemoPair) -> Result<Recorded> {
    if let Some(r) = state::with(|s| {
        s.recordings
            .iter()
            .find(|(k, _)| *k == pair.key)
            .map(|(_, r)| r.clone())
    }) {
        return Ok(r);
    }
    let url = format!("{}/results.json", pair.dir);
    let r = fetch_text(&url).await.and_then(|t| {
        serde_json::from_str::<Recorded>(&t).map_err(|e| Error::Page(format!("{url}: {e}")))
    })?;
    state::with(|s| s.recordings.push((pair.key, r.clone())));
    Ok(r)
}

/// The recorded results at once and the guide at step 1; then the other
/// pairs' recordings, for Table 1 across architectures.
async fn begin(pair: &'static DemoPair) {
    if let Some(g) = by_id("guide") {
        let _ = g.remove_attribute("hidden");
    }
    state::with(|s| s.recorded = None);
    match recording(pair).await {
        Ok(r) => {
            if let Err(e) = render(pair, &r) {
                set_status("guide-status", &e.to_string(), true);
            }
            state::with(|s| s.recorded = Some(r));
        }
        Err(e) => set_status(
            "guide-status",
            &format!("The recorded results could not be read: {e}"),
            true,
        ),
    }
    show_step(0);
    // The pairs this page ships (see `offer_shipped`); a pair that is not
    // shipped has no recording and no column.
    for other in shipped_pairs().await {
        let _ = recording(other).await;
    }
    // Another pair may have been opened meanwhile: draw for the open one.
    if state::with(|s| s.demo.map(|d| d.key)) != Some(pair.key) {
        return;
    }
    let all = state::with(|s| s.recordings.clone());
    if all.len() > 1 {
        if let Err(e) = render_across(pair, &all) {
            set_status("guide-status", &e.to_string(), true);
        }
    }
}

/// The demo pairs www/ ships, as www/demo-pairs.json lists them (the
/// Jet-Nemotron pair's folder waits on its training; asking for files that
/// are not there would be an error in the console); HypeNet's alone where
/// the list cannot be read.
async fn shipped_pairs() -> Vec<&'static DemoPair> {
    let keys: Vec<String> = fetch_text("demo-pairs.json")
        .await
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| vec![DEMO_PAIRS[0].key.to_string()]);
    DEMO_PAIRS
        .iter()
        .filter(|p| keys.iter().any(|k| k == p.key))
        .collect()
}

/// Shows the button of every demo pair the page ships (buttons start
/// hidden).
async fn offer_shipped() {
    for pair in shipped_pairs().await {
        if recording(pair).await.is_ok() {
            if let Some(doc) = super::dom::document() {
                if let Ok(Some(b)) =
                    doc.query_selector(&format!("button[data-demo=\"{}\"]", pair.key))
                {
                    let _ = b.remove_attribute("hidden");
                }
            }
        }
    }
}

/// The merge as the recording made it.
const DEMO_MERGE: [(&str, &str); 4] = [
    ("method", "qk-restore"),
    ("alpha", "1"),
    ("beta", "1"),
    ("layers", ""),
];

fn is_demo_merge(spec: &crate::merge::MergeSpec) -> bool {
    spec.method == crate::merge::Method::QkRestore && spec.alpha == 1.0 && spec.layers.is_none()
}

/// Merges with QK-Restore, as the recording did, unless the page holds
/// that merge already (a visitor who only clicks Next skips step 2's
/// button). False, with the error shown, if the merge fails.
async fn ensure_demo_merge() -> bool {
    if state::with(|s| {
        s.merged
            .as_ref()
            .is_some_and(|(spec, _)| is_demo_merge(spec))
    }) {
        return true;
    }
    for (id, value) in DEMO_MERGE {
        set_field(id, value);
    }
    set_status("guide-status", "Merging with QK-Restore first…", false);
    match super::repair::run_merge().await {
        Ok(()) => {
            set_status("guide-status", "", false);
            true
        }
        Err(e) => {
            set_status("guide-status", &e.to_string(), true);
            false
        }
    }
}

/// The live subset, then which of its cells match the recording.
async fn run_here((depths, samples): (&str, &str)) {
    if !ensure_demo_merge().await {
        return;
    }
    for (id, value) in [
        ("task", "s1"),
        ("lengths", "2048"),
        ("depths", depths),
        ("samples", samples),
        ("seed", "12345"),
    ] {
        set_field(id, value);
    }
    set_status("guide-status", "Running the recorded prompts here…", false);
    super::evaluate::run_now().await;
    let (live, recorded) =
        state::with(|s| (s.sweep.as_ref().map(|x| x.1.clone()), s.recorded.clone()));
    let (Some(live), Some(recorded)) = (live, recorded) else {
        return;
    };
    let Some(rec) = recorded.niah.get(&S1) else {
        return;
    };
    let same = |x: &SampleResult| {
        rec.samples.iter().any(|y| {
            y.model == recorded_name(&x.model)
                && y.seed == x.seed
                && y.depth == x.depth
                && y.generated == x.generated
                && y.score == x.score
        })
    };
    let models: Vec<String> = super::state::with(|s| {
        s.sweep.as_ref().map(|x| {
            crate::app::sweep::models_of(&x.1)
                .into_iter()
                .map(String::from)
                .collect()
        })
    })
    .unwrap_or_default();
    let mut matched = Vec::new();
    for m in &models {
        let mine: Vec<&SampleResult> = live.iter().filter(|x| &x.model == m).collect();
        let ok = !mine.is_empty() && mine.iter().all(|x| same(x));
        let row = format!("tr[data-model=\"{}\"] td", recorded_name(m));
        if let Some(td) =
            by_id("recorded-table1").and_then(|t| t.query_selector(&row).ok().flatten())
        {
            let _ = td.set_attribute("data-matches", if ok { "yes" } else { "no" });
            let text = td.text_content().unwrap_or_default();
            let text = text.split(' ').next().unwrap_or_default();
            td.set_text_content(Some(&format!(
                "{text} {}",
                if ok { "✓ same" } else { "✗ differs" }
            )));
            let _ = td.set_attribute(
                "title",
                &format!(
                    "{} prompts re-run here: {}",
                    mine.len(),
                    if ok {
                        "the recorded answers"
                    } else {
                        "some answers differ from the recording"
                    }
                ),
            );
        }
        matched.push(format!("{m} {}", if ok { "✓" } else { "✗" }));
    }
    let n = live.len();
    set_status(
        "guide-status",
        &format!(
            "{n} recorded prompts run here; sample for sample against the recording: {}.",
            matched.join(", ")
        ),
        false,
    );
    if let Some(e) = by_id("recorded") {
        scroll_below_guide(&e);
    }
}

pub fn wire() {
    // One button per demo pair, each naming its pair (`data-demo`).
    if let Some(doc) = super::dom::document() {
        if let Ok(buttons) = doc.query_selector_all("button[data-demo]") {
            for i in 0..buttons.length() {
                let Some(b) = buttons
                    .item(i)
                    .and_then(|n| n.dyn_into::<web_sys::Element>().ok())
                else {
                    continue;
                };
                let Some(pair) = b.get_attribute("data-demo").as_deref().and_then(demo_pair) else {
                    continue;
                };
                on(&b, "click", move |_| {
                    spawn_local(open(pair, Opened::Button))
                });
            }
        }
    }
    spawn_local(offer_shipped());
    if let Some(pair) = super::share::get("demo").as_deref().and_then(demo_pair) {
        spawn_local(open(pair, Opened::Link));
    }
    for n in 0..4 {
        if let Some(b) = by_id(&format!("step-{n}")) {
            on(&b, "click", move |_| show_step(n));
        }
    }
    if let Some(b) = by_id("step-next") {
        on(&b, "click", |_| show_step(state::with(|s| s.step) + 1));
    }
    if let Some(b) = by_id("step-merge") {
        on(&b, "click", |_| click("merge"));
    }
    if let Some(b) = by_id("step-run-here") {
        on(&b, "click", |_| spawn_local(run_here(HERE_QUICK)));
    }
    if let Some(b) = by_id("step-run-all") {
        on(&b, "click", |_| spawn_local(run_here(HERE_ALL)));
    }
}
