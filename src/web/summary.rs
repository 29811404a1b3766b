//! The inspect panel: one checkpoint's architecture and tensors from its
//! headers alone, dropped or picked.

use js_sys::Array;
use wasm_bindgen::prelude::*;
use web_sys::{Element, File};

use super::dom::{add, by_id, document, files_of, set_status, wire_picker};
use super::files::{open_files, plan_to_blobs, to_files};
use super::state;
use crate::config::arch_of;
use crate::error::Result;
use crate::summary::{summarize, Summary};
use crate::units::{human_bytes, human_count};
use crate::writer::{PlanBuilder, Provenance, SourceFingerprint};

fn status(text: &str, error: bool) {
    set_status("status", text, error);
}

fn render_summary(s: &Summary) -> Option<()> {
    let doc = document()?;
    let root = by_id("summary")?;
    root.set_text_content(None);

    let facts = doc.create_element("dl").ok()?;
    let fact = |label: &str, value: &str, field: &str| -> Option<Element> {
        add(&doc, &facts, "dt", label)?;
        let dd = add(&doc, &facts, "dd", value)?;
        dd.set_attribute("data-field", field).ok()?;
        Some(dd)
    };
    let files: Vec<String> = s
        .files
        .iter()
        .map(|f| format!("{} ({})", f.name, human_bytes(f.size)))
        .collect();
    fact("Files", &files.join(", "), "files")?;
    fact("Family", s.family, "family")?;
    fact("Config", s.config, "config")?;
    let params = fact(
        "Parameters",
        &format!(" ({})", human_count(s.parameters)),
        "parameters-human",
    )?;
    let exact = doc.create_element("span").ok()?;
    exact.set_text_content(Some(&s.parameters.to_string()));
    exact.set_attribute("data-field", "parameters").ok()?;
    params.prepend_with_node_1(&exact).ok()?;
    fact("On disk", &human_bytes(s.bytes_on_disk), "bytes-on-disk")?;
    fact("Read to get here", &human_bytes(s.bytes_read), "bytes-read")?;
    let dims = format!(
        "vocab {}, hidden {}, intermediate {}",
        s.vocab_size, s.hidden_size, s.intermediate_size
    );
    fact("Sizes", &dims, "sizes")?;
    let dtypes: Vec<String> = s
        .dtypes
        .iter()
        .map(|(d, n)| format!("{d}: {}", human_count(*n)))
        .collect();
    fact("Dtypes", &dtypes.join(", "), "dtypes")?;
    fact(
        "Softmax layers",
        &format!("{:?}", s.softmax_layers),
        "softmax-layers",
    )?;
    root.append_child(&facts).ok()?;

    for (title, items) in [
        ("Guesses (no value in config.json)", &s.guesses),
        ("Problems", &s.problems),
    ] {
        if items.is_empty() {
            continue;
        }
        add(&doc, &root, "h3", title)?;
        let ul = doc.create_element("ul").ok()?;
        for item in items.iter() {
            add(&doc, &ul, "li", item)?;
        }
        root.append_child(&ul).ok()?;
    }

    let table = doc.create_element("table").ok()?;
    table.set_attribute("class", "layers").ok()?;
    let head = doc.create_element("tr").ok()?;
    for h in [
        "layer",
        "mixer",
        "heads",
        "kv heads",
        "head dim",
        "parameters",
    ] {
        add(&doc, &head, "th", h)?;
    }
    table.append_child(&head).ok()?;
    for l in &s.layers {
        let tr = doc.create_element("tr").ok()?;
        tr.set_attribute("data-layer", &l.index.to_string()).ok()?;
        tr.set_attribute("data-mixer", &l.mixer).ok()?;
        if l.softmax {
            tr.set_attribute("class", "softmax").ok()?;
        }
        for v in [
            l.index.to_string(),
            l.mixer.clone(),
            l.heads.to_string(),
            l.kv_heads.to_string(),
            l.head_dim.to_string(),
            human_count(l.parameters),
        ] {
            add(&doc, &tr, "td", &v)?;
        }
        table.append_child(&tr).ok()?;
    }
    root.append_child(&table).ok()?;
    Some(())
}

async fn inspect(files: Vec<File>) -> Result<Summary> {
    state::with(|s| s.opened = files.clone());
    let ckpt = open_files(files).await?;
    let arch = arch_of(&ckpt)?;
    Ok(summarize(&ckpt, &arch))
}

/// Opens the given files as one checkpoint and shows its summary. Called by
/// the file pickers and by the bootstrap's drop handler (which flattens
/// dropped folders into their files).
#[wasm_bindgen]
pub async fn open_checkpoint(files: Array) {
    let files = files_of(&files);
    if let Some(root) = by_id("summary") {
        root.set_text_content(None);
    }
    status(
        &format!("Reading the headers of {} file(s)…", files.len()),
        false,
    );
    match inspect(files).await {
        Ok(summary) => {
            let n = summary.problems.len();
            render_summary(&summary);
            if n == 0 {
                status(
                    "Checkpoint read: the tensors match the architecture.",
                    false,
                );
            } else {
                status(
                    &format!("Checkpoint read, but {n} problem(s) found: see below."),
                    true,
                );
            }
        }
        Err(e) => status(&e.to_string(), true),
    }
}

/// Rewrites the checkpoint shown last, unchanged but for a provenance
/// record, into one `File` per output file (for the browser writer's test;
/// the merge issue builds on the same path).
#[wasm_bindgen]
pub async fn copy_opened_checkpoint() -> std::result::Result<Array, JsError> {
    copy_opened()
        .await
        .map_err(|e| JsError::new(&e.to_string()))
}

async fn copy_opened() -> Result<Array> {
    let ckpt = open_files(state::with(|s| s.opened.clone())).await?;
    let input = SourceFingerprint::of("input", &ckpt).await?;
    let provenance = Provenance::new("copy", serde_json::json!({}), vec![input]);
    let plan = PlanBuilder::new(&ckpt, 0).build(&provenance)?;
    to_files(plan_to_blobs(&plan, &[ckpt.source()]).await?)
}

pub fn wire() {
    wire_picker("pick-files", open_checkpoint);
    wire_picker("pick-folder", open_checkpoint);
}
