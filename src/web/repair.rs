//! The repair panel: a checkpoint from before SFT and one from after
//! (picked, dropped, or the shipped demo pair), their compatibility, the
//! merge, and its verified output offered as downloads.

use std::cell::RefCell;

use js_sys::Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{Blob, File};

use super::share::{self, field};
use super::{add, by_id, document, files_of, js_err, merge, offer_downloads, MERGE_STEPS, on, on_click_async, set_class_text, wire_picker, BrowserSource};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::merge::compat::check_pair;
use crate::merge::recipe::RECIPE_FILE;
use crate::merge::{MergeSpec, Method};
use crate::summary::{arch_of, human_bytes, human_count, summarize};
use crate::writer::SourceFingerprint;

thread_local! {
    /// The files of each side: [before SFT, after SFT].
    static PAIR: RefCell<[Vec<File>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
    /// The last merge's recipe, for "Copy recipe".
    static RECIPE: RefCell<String> = const { RefCell::new(String::new()) };
    /// The last merge's files and its settings, for the evaluation.
    static MERGED: RefCell<Option<(MergeSpec, Vec<File>)>> = const { RefCell::new(None) };
}

/// The models to evaluate side by side: pre, sft, and the merge once made;
/// an error until both sides are given.
pub(super) fn models() -> Result<Vec<(&'static str, Vec<File>)>> {
    let [pre, sft] = PAIR.with(|p| p.borrow().clone());
    let mut out = vec![("pre", pre), ("sft", sft)];
    if let Some((_, files)) = MERGED.with(|m| m.borrow().clone()) {
        out.push(("merged", files));
    }
    out.retain(|(_, f)| !f.is_empty());
    if out.len() < 2 {
        return Err(Error::Usage("Give both checkpoints (or open the demo) first.".into()));
    }
    Ok(out)
}

/// The last merge's settings, for the report.
pub(super) fn merged_spec() -> Option<MergeSpec> {
    MERGED.with(|m| m.borrow().as_ref().map(|(spec, _)| spec.clone()))
}

const SIDES: [&str; 2] = ["pre", "sft"];
const DEMO_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];


fn side_index(side: &str) -> Result<usize> {
    SIDES.iter().position(|s| *s == side).ok_or_else(|| Error::Usage(format!("unknown side {side:?}")))
}

/// Opens `files` as one side of the pair and shows what they hold (the
/// JS drop handler calls this with a dropped folder's files).
#[wasm_bindgen]
pub async fn open_side(side: String, files: Array) {
    let files = files_of(&files);
    share::update(&[("demo", "0".into())]);
    if let Err(e) = set_side(&side, files).await {
        set_class_text(&format!("{side}-status"), &e.to_string(), true);
    }
}

async fn set_side(side: &str, files: Vec<File>) -> Result<()> {
    let i = side_index(side)?;
    PAIR.with(|p| p.borrow_mut()[i] = files.clone());
    MERGED.with(|m| *m.borrow_mut() = None);
    set_class_text(&format!("{side}-status"), &format!("Reading the headers of {} file(s)…", files.len()), false);
    let ck = Checkpoint::open(BrowserSource::new(files)?).await?;
    let s = summarize(&ck, &arch_of(&ck)?);
    let dtypes: Vec<String> = s.dtypes.keys().map(|d| d.to_string()).collect();
    let mut line = format!(
        "{} parameters, {} on disk, {}; softmax layers {:?}",
        human_count(s.parameters),
        human_bytes(s.bytes_on_disk),
        dtypes.join("/"),
        s.softmax_layers,
    );
    if !s.extra_tensors.is_empty() {
        line += &format!("; tensors the architecture does not use: {}", s.extra_tensors.join(", "));
    }
    if !s.problems.is_empty() {
        line += &format!("; problems: {}", s.problems.join("; "));
    }
    // A shared link names its checkpoints by fingerprint: say when these differ.
    let fingerprint = short_fingerprint(&SourceFingerprint::of(side, &ck).await?);
    if let Some(shared) = share::get(side).filter(|f| *f != fingerprint) {
        line += &format!("; not the checkpoint the shared link was made with (fingerprint {fingerprint}, the link says {shared})");
    }
    share::update(&[(side, fingerprint)]);
    set_class_text(&format!("{side}-status"), &line, !s.problems.is_empty());
    layer_map(side, &s.layers);
    check_pair_now().await;
    Ok(())
}

/// The side's layers as a strip of boxes, softmax layers marked, each
/// naming its mixer and heads on hover.
fn layer_map(side: &str, layers: &[crate::summary::LayerSummary]) {
    let (Some(doc), Some(status)) = (document(), by_id(&format!("{side}-status"))) else { return };
    if let Some(old) = by_id(&format!("{side}-layers")) {
        old.remove();
    }
    let Ok(list) = doc.create_element("ol") else { return };
    let _ = list.set_attribute("id", &format!("{side}-layers"));
    let _ = list.set_attribute("class", "layer-map");
    let _ = list.set_attribute("aria-label", "Layers (S: softmax attention, L: linear attention)");
    for l in layers {
        if let Some(li) = add(&doc, &list, "li", if l.softmax { "S" } else { "L" }) {
            let _ = li.set_attribute("title", &format!("layer {}: {}, {} heads ({} kv), head dim {}", l.index, l.mixer, l.heads, l.kv_heads, l.head_dim));
            if l.softmax {
                let _ = li.set_attribute("class", "softmax");
            }
        }
    }
    let _ = status.after_with_node_1(&list);
}

/// Checks the pair once both sides are loaded; enables the merge if it fits.
async fn check_pair_now() {
    let [pre, sft] = PAIR.with(|p| p.borrow().clone());
    // Merging, evaluating and inspecting all need a compatible pair.
    let enable = |on: bool| {
        for id in ["merge", "run-sweep", "run-routing"] {
            if let Some(b) = by_id(id) {
                let _ = if on { b.remove_attribute("disabled") } else { b.set_attribute("disabled", "") };
            }
        }
    };
    if pre.is_empty() || sft.is_empty() {
        enable(false);
        return;
    }
    let result = async {
        let pre = Checkpoint::open(BrowserSource::new(pre)?).await?;
        let sft = Checkpoint::open(BrowserSource::new(sft)?).await?;
        check_pair(&pre, &sft)
    }
    .await;
    match result {
        Ok(arch) => {
            let softmax: Vec<usize> = arch.softmax_layers();
            set_class_text("pair-status", &format!("Compatible: same tensors and shapes; softmax layers {softmax:?} can be restored."), false);
            enable(true);
            if let Err(e) = show_drift().await {
                set_class_text("pair-status", &format!("Drift could not be computed: {e}"), true);
            }
        }
        Err(e) => {
            set_class_text("pair-status", &e.to_string(), true);
            enable(false);
        }
    }
}

/// The drift heat map (layers x matrices) that guides the choice of method:
/// one colour scale (light to dark blue, readable without colour vision)
/// with the number in each cell; softmax layers marked.
async fn show_drift() -> Result<()> {
    let [pre, sft] = PAIR.with(|p| p.borrow().clone());
    let pre = Checkpoint::open(BrowserSource::new(pre)?).await?;
    let sft = Checkpoint::open(BrowserSource::new(sft)?).await?;
    let report = crate::merge::drift::drift(&pre, &sft, |_, _| {}).await?;
    let doc = document().ok_or_else(|| Error::Usage("no document".into()))?;
    let root = by_id("drift").ok_or_else(|| Error::Usage("no #drift".into()))?;
    root.set_text_content(None);
    let el = |tag: &str| doc.create_element(tag).map_err(|e| js_err(tag, e));
    let table = el("table")?;
    let _ = table.set_attribute("class", "heat");
    let head = el("tr")?;
    for h in ["layer", "q", "k", "v", "o", "gate", "mlp"] {
        add(&doc, &head, "th", h);
    }
    let _ = table.append_child(&head);
    let max = report.layers.iter().flat_map(|l| [l.q, l.k, l.v, l.o, l.gate, l.mlp]).fold(1e-12f64, f64::max);
    for l in &report.layers {
        let tr = el("tr")?;
        add(&doc, &tr, "th", &format!("{}{}", l.index, if l.softmax { " (softmax)" } else { "" }));
        for v in [l.q, l.k, l.v, l.o, l.gate, l.mlp] {
            let td = add(&doc, &tr, "td", &format!("{v:.3}")).ok_or_else(|| Error::Usage("cannot add a cell".into()))?;
            let x = v / max;
            // CSSOM, not a style attribute: the page's CSP forbids inline styles.
            if let Ok(td) = td.dyn_into::<web_sys::HtmlElement>() {
                let light = 95.0 - 60.0 * x;
                let _ = td.style().set_property("background", &format!("hsl(215 70% {light:.0}%)"));
                let _ = td.style().set_property("color", if light < 55.0 { "#fff" } else { "#000" });
            }
        }
        let _ = table.append_child(&tr);
    }
    let caption = el("caption")?;
    caption.set_text_content(Some("Relative drift ||W_sft - W_pre|| / ||W_pre|| per layer and matrix"));
    let _ = table.prepend_with_node_1(&caption);
    let _ = root.append_child(&table);
    Ok(())
}

async fn fetch_file(url: &str, name: &str) -> Result<File> {
    let window = web_sys::window().ok_or_else(|| Error::Usage("no window".into()))?;
    let resp: web_sys::Response = JsFuture::from(window.fetch_with_str(url)).await.map_err(|e| js_err(url, e))?.unchecked_into();
    if !resp.ok() {
        return Err(Error::io(url, format!("HTTP {}", resp.status())));
    }
    let blob: Blob = JsFuture::from(resp.blob().map_err(|e| js_err(url, e))?).await.map_err(|e| js_err(url, e))?.unchecked_into();
    File::new_with_blob_sequence(&Array::of1(&blob), name).map_err(|e| js_err(name, e))
}

async fn open_demo() -> Result<()> {
    for side in SIDES {
        let mut files = Vec::new();
        for name in DEMO_FILES {
            files.push(fetch_file(&format!("demo/{side}/{name}"), name).await?);
        }
        set_side(side, files).await?;
    }
    Ok(())
}

/// Twelve hex digits of SHA-256 over a checkpoint's file fingerprints
/// (names, sizes, headers, data samples): enough to tell checkpoints apart
/// in a link, and nothing of their weights.
fn short_fingerprint(fp: &SourceFingerprint) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for f in &fp.files {
        h.update(format!("{}\n{}\n{}\n{}\n", f.name, f.size, f.header_sha256, f.sample_sha256));
    }
    h.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The merge settings in the form.
fn spec_from_form() -> Result<MergeSpec> {
    let method: Method = serde_json::from_value(serde_json::Value::String(field("method")))
        .map_err(|_| Error::Usage(format!("unknown method {:?}", field("method"))))?;
    let number = |id: &str| -> Result<f32> {
        field(id).trim().parse::<f32>().map_err(|_| Error::Usage(format!("{id} must be a number, not {:?}", field(id))))
    };
    let layers = field("layers");
    let layers = if layers.trim().is_empty() {
        None
    } else {
        Some(
            layers
                .split(',')
                .map(|l| l.trim().parse::<usize>().map_err(|_| Error::Usage(format!("layers: {l:?} is not a layer number"))))
                .collect::<Result<Vec<_>>>()?,
        )
    };
    let spec = MergeSpec { method, alpha: number("alpha")?, beta: number("beta")?, layers, include_norms: false };
    spec.validate()?;
    Ok(spec)
}

async fn run_merge() -> Result<()> {
    let spec = spec_from_form()?;
    let [pre, sft] = PAIR.with(|p| p.borrow().clone());
    let step = |i: u32, what: &str| {
        if let Some(p) = by_id("merge-progress").and_then(|e| e.dyn_into::<web_sys::HtmlProgressElement>().ok()) {
            p.set_max(MERGE_STEPS as f64);
            p.set_value(i as f64);
        }
        if i < MERGE_STEPS {
            set_class_text("merge-status", &format!("Step {} of {MERGE_STEPS}: {what}…", i + 1), false);
        }
    };
    let files = merge(pre, sft, &serde_json::to_string(&spec).expect("spec serializes"), &step).await?;
    MERGED.with(|m| *m.borrow_mut() = Some((spec.clone(), files_of(&files))));
    let mut offered = Vec::new();
    for f in files_of(&files) {
        if f.name() == RECIPE_FILE {
            let text = JsFuture::from(f.text()).await.map_err(|e| js_err(RECIPE_FILE, e))?.as_string().unwrap_or_default();
            RECIPE.with(|r| *r.borrow_mut() = text);
        }
        offered.push((f.name(), Blob::from(f)));
    }
    offer_downloads("downloads", &offered)?;
    share(&spec);
    let n = files.length();
    set_class_text("merge-status", &format!("Done: {n} files, each re-read and verified. Save them into one folder."), false);
    Ok(())
}

/// Puts the merge settings in the URL fragment, so the link reproduces
/// them.
fn share(spec: &MergeSpec) {
    let method = serde_json::to_value(spec.method).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    let layers = spec.layers.as_ref().map_or(String::new(), |l| l.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(","));
    share::update(&[("method", method), ("alpha", spec.alpha.to_string()), ("beta", spec.beta.to_string()), ("layers", layers)]);
}

/// Fills the merge form from a shared link's fragment.
fn restore_from_fragment() {
    share::restore(&[
        ("method", |v| ["qk-restore", "qk-pro", "q-restore", "k-restore", "v-restore"].contains(&v)),
        ("alpha", |v| v.parse::<f32>().is_ok_and(|x| (0.0..=1.0).contains(&x))),
        ("beta", |v| v.parse::<f32>().is_ok_and(|x| (0.0..=1.0).contains(&x))),
        ("layers", |v| v.chars().all(|c| c.is_ascii_digit() || c == ',')),
    ]);
}

async fn open_demo_and_merge(merge_too: bool) {
    set_class_text("pair-status", "Fetching the demo pair…", false);
    if let Err(e) = open_demo().await {
        set_class_text("pair-status", &e.to_string(), true);
        return;
    }
    share::update(&[("demo", "1".into())]);
    if merge_too {
        if let Err(e) = run_merge().await {
            set_class_text("merge-status", &e.to_string(), true);
        }
    }
}

pub fn wire() {
    restore_from_fragment();
    for side in SIDES {
        for kind in ["files", "folder"] {
            wire_picker(&format!("{side}-{kind}"), move |files| open_side(side.to_string(), files));
        }
    }
    if let Some(b) = by_id("open-demo") {
        on(&b, "click", |_| spawn_local(open_demo_and_merge(false)));
    }
    // A link made on the demo reopens it and repeats the merge it names.
    if share::get("demo").as_deref() == Some("1") {
        spawn_local(open_demo_and_merge(share::get("method").is_some()));
    }
    on_click_async("merge", "merge-status", run_merge);
    if let Some(b) = by_id("copy-recipe") {
        on(&b, "click", |_| {
            let text = RECIPE.with(|r| r.borrow().clone());
            if let Some(w) = web_sys::window() {
                let _ = w.navigator().clipboard().write_text(&text);
            }
        });
    }
}
