//! The repair panel: a checkpoint from before SFT and one from after
//! (picked, dropped, or the shipped demo pair), their compatibility, the
//! merge, and its verified output offered as downloads.

use js_sys::Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, File};

use super::dom::{
    add, by_id, document, element, enable, field, files_of, js_err, need, need_document,
    offer_downloads, on, on_click_async, set_checked, set_field, set_progress, set_shown,
    set_status, wire_picker,
};
use super::files::{fetch_file, open_files, plan_to_blobs, to_files};
use super::{forms, share, state};
use crate::app::demo::DemoPair;
use crate::app::merge::{merge_pair, plan_sources, MERGE_STEPS};
use crate::config::arch_of;
use crate::error::{Error, Result};
use crate::merge::compat::check_pair;
use crate::merge::recipe::RECIPE_FILE;
use crate::merge::MergeSpec;
use crate::summary::summarize;
use crate::units::{human_bytes, human_count};
use crate::writer::SourceFingerprint;

const SIDES: [&str; 2] = ["pre", "sft"];
const DEMO_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

fn side_index(side: &str) -> Result<usize> {
    SIDES
        .iter()
        .position(|s| *s == side)
        .ok_or_else(|| Error::Page(format!("unknown side {side:?}")))
}

/// Opens `files` as one side of the pair and shows what they hold (the
/// JS drop handler calls this with a dropped folder's files).
#[wasm_bindgen]
pub async fn open_side(side: String, files: Array) {
    let files = files_of(&files);
    share::update(&[("demo", "0".into())]);
    state::with(|s| s.demo = None);
    if let Err(e) = set_side(&side, files).await {
        set_status(&format!("{side}-status"), &e.to_string(), true);
    }
}

async fn set_side(side: &str, files: Vec<File>) -> Result<()> {
    let i = side_index(side)?;
    let ranked = state::with(|s| {
        s.pair[i] = files.clone();
        s.merged = None;
        // What was computed on the pair before belongs to it.
        s.routing = None;
        s.mlp_moved = None;
        s.pair_version += 1;
        s.layers.take()
    });
    // Layers a ranking put in the form belong to the pair it ranked.
    if ranked.is_some_and(|r| crate::app::layers::join(&r.top) == field("layers").trim()) {
        set_field("layers", "");
        share::update(&[("layers", String::new())]);
    }
    set_status(
        &format!("{side}-status"),
        &format!("Reading the headers of {} file(s)…", files.len()),
        false,
    );
    let ck = open_files(files).await?;
    let s = summarize(&ck, &arch_of(&ck)?);
    let dtypes: Vec<String> = s.dtypes.keys().map(|d| d.to_string()).collect();
    let softmax = if s.layers.len() == s.softmax_layers.len() {
        format!("every layer softmax ({})", s.layers.len())
    } else if s.window_layers.is_empty() {
        format!("softmax layers {:?}", s.softmax_layers)
    } else {
        let full: Vec<usize> = s
            .softmax_layers
            .iter()
            .copied()
            .filter(|l| !s.window_layers.contains(l))
            .collect();
        format!(
            "softmax layers {:?}: full attention {full:?}, sliding window {:?}",
            s.softmax_layers, s.window_layers
        )
    };
    let mut line = format!(
        "{}: {} parameters, {} on disk, {}; {softmax}",
        s.family,
        human_count(s.parameters),
        human_bytes(s.bytes_on_disk),
        dtypes.join("/")
    );
    if !s.extra_tensors.is_empty() {
        line += &format!(
            "; tensors the architecture does not use: {}",
            s.extra_tensors.join(", ")
        );
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
    set_status(&format!("{side}-status"), &line, !s.problems.is_empty());
    layer_map(side, &s.layers);
    check_pair_now().await;
    Ok(())
}

/// The side's layers as a strip of boxes, one letter per kind, softmax
/// layers marked, each naming its mixer, heads and window on hover.
fn layer_map(side: &str, layers: &[crate::summary::LayerSummary]) {
    let (Some(doc), Some(status)) = (document(), by_id(&format!("{side}-status"))) else {
        return;
    };
    if let Some(old) = by_id(&format!("{side}-layers")) {
        old.remove();
    }
    let Ok(list) = doc.create_element("ol") else {
        return;
    };
    let _ = list.set_attribute("id", &format!("{side}-layers"));
    let _ = list.set_attribute("class", "layer-map");
    let _ = list.set_attribute(
        "aria-label",
        "Layers (S: softmax attention, W: sliding-window softmax, L: Lightning, G: gated delta rule, J: JetBlock)",
    );
    for l in layers {
        if let Some(li) = add(&doc, &list, "li", &l.letter.to_string()) {
            let window = l
                .window
                .map(|w| format!(", sliding window of {w} tokens"))
                .unwrap_or_default();
            let _ = li.set_attribute(
                "title",
                &format!(
                    "layer {}: {}, {} heads ({} kv), head dim {}{window}",
                    l.index, l.mixer, l.heads, l.kv_heads, l.head_dim
                ),
            );
            match (l.softmax, l.window) {
                (true, Some(_)) => {
                    let _ = li.set_attribute("class", "softmax window");
                }
                (true, None) => {
                    let _ = li.set_attribute("class", "softmax");
                }
                _ => {}
            }
        }
    }
    let _ = status.after_with_node_1(&list);
}

/// Checks the pair once both sides are loaded; enables the merge if it fits.
async fn check_pair_now() {
    let [pre, sft] = state::with(|s| s.pair.clone());
    // Merging, evaluating and inspecting all need a compatible pair.
    let needs_pair = [
        "merge",
        "run-sweep",
        "run-routing",
        "run-tune",
        "run-layers",
    ];
    if pre.is_empty() || sft.is_empty() {
        enable(&needs_pair, false);
        return;
    }
    let result = async { check_pair(&open_files(pre).await?, &open_files(sft).await?) }.await;
    match result {
        Ok(arch) => {
            set_shown("gate-rows-option", arch.attn_gate_in_q);
            let softmax: Vec<usize> = arch.softmax_layers();
            let full = arch.full_attention_layers();
            let text = if arch.is_pure_softmax() {
                format!(
                    "Compatible: same tensors and shapes. {} is a pure softmax model ({} layers): rank its retrieval layers under \"Find the retrieval layers\" below, or type the layers to restore.",
                    arch.family.name(),
                    softmax.len()
                )
            } else if full != softmax {
                let windows: Vec<String> = softmax
                    .iter()
                    .filter_map(|&l| arch.window(l).map(|w| format!("{l} ({w} tokens)")))
                    .collect();
                format!(
                    "Compatible: same tensors and shapes; the full-attention layers {full:?} are restored by default. \
                     The sliding-window layers {} can be named in Layers too: their reach is their window.",
                    windows.join(", ")
                )
            } else {
                format!("Compatible: same tensors and shapes; softmax layers {softmax:?} can be restored.")
            };
            set_status("pair-status", &text, false);
            enable(&needs_pair, true);
            if let Err(e) = show_drift().await {
                set_status(
                    "pair-status",
                    &format!("Drift could not be computed: {e}"),
                    true,
                );
            }
        }
        Err(e) => {
            set_status("pair-status", &e.to_string(), true);
            enable(&needs_pair, false);
        }
    }
}

/// The drift heat map (layers x matrices) that guides the choice of method:
/// one colour scale (light to dark blue, readable without colour vision)
/// with the number in each cell; softmax layers marked.
async fn show_drift() -> Result<()> {
    let [pre, sft] = state::with(|s| s.pair.clone());
    let report =
        crate::merge::drift::drift(&open_files(pre).await?, &open_files(sft).await?, |_, _| {})
            .await?;
    state::with(|s| s.mlp_moved = Some(report.layers.iter().any(|l| l.mlp > 0.0)));
    let doc = need_document()?;
    let root = need("drift")?;
    root.set_text_content(None);
    let el = |tag: &str| element(&doc, tag);
    let table = el("table")?;
    let _ = table.set_attribute("class", "heat");
    let head = el("tr")?;
    for h in ["layer", "q", "k", "v", "o", "gate", "mlp"] {
        add(&doc, &head, "th", h);
    }
    let _ = table.append_child(&head);
    let max = report
        .layers
        .iter()
        .flat_map(|l| [l.q, l.k, l.v, l.o, l.gate, l.mlp])
        .fold(1e-12f64, f64::max);
    for l in &report.layers {
        let tr = el("tr")?;
        add(
            &doc,
            &tr,
            "th",
            &format!("{}{}", l.index, if l.softmax { " (softmax)" } else { "" }),
        );
        for v in [l.q, l.k, l.v, l.o, l.gate, l.mlp] {
            let td = add(&doc, &tr, "td", &format!("{v:.3}"))
                .ok_or_else(|| Error::Page("cannot add a cell".into()))?;
            let x = v / max;
            // CSSOM, not a style attribute: the page's CSP forbids inline styles.
            if let Ok(td) = td.dyn_into::<web_sys::HtmlElement>() {
                let background = crate::figures::blues(x);
                let _ = td.style().set_property("background", &background);
                let _ = td
                    .style()
                    .set_property("color", crate::figures::ink_on(&background));
            }
        }
        let _ = table.append_child(&tr);
    }
    let caption = el("caption")?;
    caption.set_text_content(Some(
        "Relative drift ||W_sft - W_pre|| / ||W_pre|| per layer and matrix",
    ));
    let _ = table.prepend_with_node_1(&caption);
    let _ = root.append_child(&table);
    Ok(())
}

async fn open_demo(pair: &DemoPair) -> Result<()> {
    for side in SIDES {
        let mut files = Vec::new();
        for name in DEMO_FILES {
            files.push(fetch_file(&format!("{}/{side}/{name}", pair.dir), name).await?);
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
        h.update(format!(
            "{}\n{}\n{}\n{}\n",
            f.name, f.size, f.header_sha256, f.sample_sha256
        ));
    }
    h.finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where a merge reports: its status line, progress bar and download list.
pub(super) struct MergeUi {
    pub status: &'static str,
    pub progress: &'static str,
    pub list: &'static str,
}

const REPAIR_UI: MergeUi = MergeUi {
    status: "merge-status",
    progress: "merge-progress",
    list: "downloads",
};

/// Merges with the form's settings, as the Merge button does.
pub(super) async fn run_merge() -> Result<()> {
    merge_and_offer(forms::merge()?, &REPAIR_UI).await
}

/// Merges the pair as `spec` says, verifies the output and offers it in
/// `ui.list`; the merge becomes the one evaluated and inspected.
pub(super) async fn merge_and_offer(spec: MergeSpec, ui: &MergeUi) -> Result<()> {
    let [pre, sft] = state::with(|s| s.pair.clone());
    let mut step = |i: u32, what: &str| {
        set_progress(ui.progress, i as f64, MERGE_STEPS as f64);
        if i < MERGE_STEPS {
            set_status(
                ui.status,
                &format!("Step {} of {MERGE_STEPS}: {what}…", i + 1),
                false,
            );
        }
    };
    step(0, "reading both checkpoints' headers");
    let (pre, sft) = (open_files(pre).await?, open_files(sft).await?);
    let merged = merge_pair(&pre, &sft, &spec, &mut step).await?;
    step(2, "assembling and verifying the output files");
    let blobs = plan_to_blobs(&merged.plan, &plan_sources(&pre, &sft)).await?;
    step(MERGE_STEPS, "done");
    let files = files_of(&to_files(blobs)?);
    state::with(|s| s.merged = Some((spec.clone(), files.clone())));
    let mut offered = Vec::new();
    for f in &files {
        if f.name() == RECIPE_FILE {
            let text = JsFuture::from(f.text())
                .await
                .map_err(|e| js_err(RECIPE_FILE, e))?
                .as_string()
                .unwrap_or_default();
            state::with(|s| s.recipe = text);
        }
        offered.push((f.name(), Blob::from(f.clone())));
    }
    offer_downloads(ui.list, &offered)?;
    share(&spec);
    let n = files.len();
    set_status(
        ui.status,
        &format!("Done: {n} files, each re-read and verified. Save them into one folder."),
        false,
    );
    Ok(())
}

/// Merges `pre` into `sft` as `spec_json` (a recipe's merge settings) says:
/// one `File` per output file (shards, index, config, recipe), each built
/// from slices of the inputs and verified. For tests and scripts.
#[wasm_bindgen]
pub async fn merge_checkpoints(
    pre: Array,
    sft: Array,
    spec_json: String,
) -> std::result::Result<Array, JsError> {
    let merged = async {
        let spec: MergeSpec = serde_json::from_str(&spec_json)
            .map_err(|e| Error::Usage(format!("invalid merge settings: {e}")))?;
        let (pre, sft) = (
            open_files(files_of(&pre)).await?,
            open_files(files_of(&sft)).await?,
        );
        let merged = merge_pair(&pre, &sft, &spec, &mut |_, _| {}).await?;
        to_files(plan_to_blobs(&merged.plan, &plan_sources(&pre, &sft)).await?)
    };
    merged.await.map_err(|e| JsError::new(&e.to_string()))
}

/// Puts the merge settings in the URL fragment, so the link reproduces
/// them.
fn share(spec: &MergeSpec) {
    let method = serde_json::to_value(spec.method)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let layers = spec.layers.as_ref().map_or(String::new(), |l| {
        l.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    });
    share::update(&[
        ("method", method),
        ("alpha", spec.alpha.to_string()),
        ("beta", spec.beta.to_string()),
        ("layers", layers),
        ("norms", flag(spec.include_norms)),
        ("gate-rows", flag(spec.restore_gate_rows)),
    ]);
}

fn flag(on: bool) -> String {
    if on { "1" } else { "0" }.into()
}

/// Fills the merge form from a shared link's fragment.
fn restore_from_fragment() {
    share::restore(&[
        ("method", |v| {
            [
                "qk-restore",
                "qk-pro",
                "q-restore",
                "k-restore",
                "v-restore",
            ]
            .contains(&v)
        }),
        ("alpha", |v| {
            v.parse::<f32>().is_ok_and(|x| (0.0..=1.0).contains(&x))
        }),
        ("beta", |v| {
            v.parse::<f32>().is_ok_and(|x| (0.0..=1.0).contains(&x))
        }),
        ("layers", |v| {
            v.chars().all(|c| c.is_ascii_digit() || c == ',')
        }),
    ]);
    for (key, id) in [
        ("norms", "restore-norms"),
        ("gate-rows", "restore-gate-rows"),
    ] {
        if let Some(v) = share::get(key).filter(|v| v == "0" || v == "1") {
            set_checked(id, v == "1");
        }
    }
}

/// Fetches a demo pair into both sides; false, with the error shown, if
/// it could not.
pub(super) async fn open_demo_pair(pair: &'static DemoPair) -> bool {
    set_status(
        "pair-status",
        &format!("Fetching the {} demo pair…", pair.name),
        false,
    );
    if let Err(e) = open_demo(pair).await {
        set_status("pair-status", &e.to_string(), true);
        return false;
    }
    share::update(&[("demo", pair.key.into())]);
    state::with(|s| s.demo = Some(pair));
    true
}

pub fn wire() {
    restore_from_fragment();
    for side in SIDES {
        for kind in ["files", "folder"] {
            wire_picker(&format!("{side}-{kind}"), move |files| {
                open_side(side.to_string(), files)
            });
        }
    }
    on_click_async("merge", "merge-status", run_merge);
    if let Some(b) = by_id("copy-recipe") {
        on(&b, "click", |_| {
            let text = state::with(|s| s.recipe.clone());
            if let Some(w) = web_sys::window() {
                let _ = w.navigator().clipboard().write_text(&text);
            }
        });
    }
}
