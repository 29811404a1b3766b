//! The browser layer: the only module that touches `web-sys`. It adapts
//! browser `File`s to the core's [`ByteSource`] and renders results into
//! the page, always as text (file and tensor names are untrusted).
//!
//! Nothing here may panic: a panic kills the wasm instance, so every
//! fallible step ends in a message on the page.

use std::ops::Range;

use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, Document, Element, File, HtmlInputElement};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::source::{locate, ByteSource, FileInfo};
use crate::summary::{arch_of, human_bytes, human_count, summarize, Summary};
use crate::merge::plan::plan_merge;
use crate::merge::MergeSpec;
use crate::writer::{verify_written, OutputPlan, Part, PlanBuilder, Provenance, SourceFingerprint};

mod evaluate;
mod inspect;
mod repair;
mod report;
mod share;

/// Files the user gave the page (dropped or picked), or blobs we made,
/// read by slices.
pub struct BrowserSource {
    infos: Vec<FileInfo>,
    files: Vec<Blob>,
}

impl BrowserSource {
    /// Files are known by their base names; two with one name are refused
    /// rather than one silently shadowing the other.
    pub fn new(files: Vec<File>) -> Result<Self> {
        Self::from_blobs(files.into_iter().map(|f| (f.name(), Blob::from(f))).collect())
    }

    pub fn from_blobs(blobs: Vec<(String, Blob)>) -> Result<Self> {
        let mut infos: Vec<FileInfo> = Vec::with_capacity(blobs.len());
        let mut files = Vec::with_capacity(blobs.len());
        for (name, blob) in blobs {
            if infos.iter().any(|i| i.name == name) {
                return Err(Error::Usage(format!("two files are named {name:?}: give one checkpoint at a time")));
            }
            infos.push(FileInfo { name, size: blob.size() as u64 });
            files.push(blob);
        }
        Ok(BrowserSource { infos, files })
    }

    pub fn blob(&self, name: &str) -> Option<&Blob> {
        self.infos.iter().position(|f| f.name == name).map(|i| &self.files[i])
    }
}

/// One `Blob` per output file: our bytes become typed arrays, input ranges
/// become `Blob.slice()`s, so untouched tensors never pass through wasm
/// memory. Each result is re-read and checked against the plan before it
/// is returned.
pub async fn plan_to_blobs(plan: &OutputPlan, sources: &[&BrowserSource]) -> Result<Vec<(String, Blob)>> {
    let mut out = Vec::with_capacity(plan.files.len());
    for f in &plan.files {
        let parts = Array::new();
        for part in &f.parts {
            match part {
                Part::Bytes(b) => {
                    parts.push(&Uint8Array::from(b.as_slice()));
                }
                Part::Range { source, file, start, end } => {
                    let blob = sources
                        .get(*source)
                        .and_then(|s| s.blob(file))
                        .ok_or_else(|| Error::io(file, "the plan names a file no input has"))?;
                    let slice = blob.slice_with_f64_and_f64(*start as f64, *end as f64).map_err(|e| js_err(file, e))?;
                    parts.push(&slice);
                }
            }
        }
        let blob = Blob::new_with_blob_sequence(&parts).map_err(|e| js_err(&f.name, e))?;
        out.push((f.name.clone(), blob));
    }
    let written = BrowserSource::from_blobs(out.clone())?;
    verify_written(plan, &written).await?;
    Ok(out)
}

fn js_err(file: &str, e: JsValue) -> Error {
    Error::io(file, e.as_string().or_else(|| js_sys::JSON::stringify(&e).ok().and_then(|s| s.as_string())).unwrap_or_default())
}

impl ByteSource for BrowserSource {
    fn files(&self) -> &[FileInfo] {
        &self.infos
    }

    async fn read(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let i = locate(&self.infos, name, &range)?;
        // One slice per request: Chrome refuses ArrayBuffers over 2 GB, so
        // callers read per tensor or per chunk, never per file.
        let blob = self.files[i]
            .slice_with_f64_and_f64(range.start as f64, range.end as f64)
            .map_err(|e| js_err(name, e))?;
        let buf = JsFuture::from(blob.array_buffer()).await.map_err(|e| js_err(name, e))?;
        let bytes = Uint8Array::new(&buf).to_vec();
        if bytes.len() as u64 != range.end - range.start {
            return Err(Error::io(name, format!("asked for {} bytes, got {}", range.end - range.start, bytes.len())));
        }
        Ok(bytes)
    }
}

fn document() -> Option<Document> {
    web_sys::window()?.document()
}

fn by_id(id: &str) -> Option<Element> {
    document()?.get_element_by_id(id)
}

/// Appends a `tag` element holding `text` as text, never as markup.
fn add(doc: &Document, parent: &Element, tag: &str, text: &str) -> Option<Element> {
    let e = doc.create_element(tag).ok()?;
    e.set_text_content(Some(text));
    parent.append_child(&e).ok()?;
    Some(e)
}

/// Sets a status line's text, marked as an error or not.
fn set_class_text(id: &str, text: &str, error: bool) {
    if let Some(s) = by_id(id) {
        s.set_text_content(Some(text));
        let _ = s.set_attribute("class", if error { "status error" } else { "status" });
    }
}

fn set_status(text: &str, error: bool) {
    set_class_text("status", text, error);
}

thread_local! {
    /// Object URLs of each download list, revoked when the list is replaced.
    static OFFERED: std::cell::RefCell<Vec<(String, Vec<String>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Replaces the list `list_id` with one download link per file, labelled
/// with its name and size. Names may be untrusted: text and attributes only.
fn offer_downloads(list_id: &str, files: &[(String, Blob)]) -> Result<()> {
    let doc = document().ok_or_else(|| Error::Usage("no document".into()))?;
    let list = by_id(list_id).ok_or_else(|| Error::Usage(format!("no #{list_id}")))?;
    list.set_text_content(None);
    let old = OFFERED.with(|o| {
        let mut o = o.borrow_mut();
        let i = o.iter().position(|(id, _)| id == list_id);
        i.map(|i| o.remove(i).1).unwrap_or_default()
    });
    old.iter().for_each(|url| drop(web_sys::Url::revoke_object_url(url)));
    let mut urls = Vec::new();
    for (name, blob) in files {
        let url = web_sys::Url::create_object_url_with_blob(blob).map_err(|e| js_err(name, e))?;
        let li = doc.create_element("li").map_err(|e| js_err("li", e))?;
        let a = add(&doc, &li, "a", &format!("{name} ({})", human_bytes(blob.size() as u64))).ok_or_else(|| Error::Usage("cannot add a link".into()))?;
        let _ = a.set_attribute("href", &url);
        let _ = a.set_attribute("download", name);
        let _ = list.append_child(&li);
        urls.push(url);
    }
    OFFERED.with(|o| o.borrow_mut().push((list_id.to_string(), urls)));
    Ok(())
}

/// Runs `task` on each click of `#button_id`; its error goes to the
/// status line `#status_id`.
fn on_click_async<F: std::future::Future<Output = Result<()>> + 'static>(button_id: &str, status_id: &'static str, task: fn() -> F) {
    if let Some(b) = by_id(button_id) {
        on(&b, "click", move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = task().await {
                    set_class_text(status_id, &e.to_string(), true);
                }
            })
        });
    }
}

/// Appends one of [`crate::figures`]' SVGs in a `<figure data-figure=id>`.
/// The SVG is our own text, with every name in it escaped.
fn show_svg(parent: &Element, svg: &str, id: &str) -> Result<()> {
    let doc = document().ok_or_else(|| Error::Usage("no document".into()))?;
    let fig = doc.create_element("figure").map_err(|e| js_err("figure", e))?;
    let _ = fig.set_attribute("data-figure", id);
    fig.set_inner_html(svg);
    parent.append_child(&fig).map_err(|e| js_err("figure", e))?;
    Ok(())
}

/// Loads a checkpoint to run, on the WebGPU device or, where the browser
/// has none, on the CPU reference. The note says which, for status lines.
async fn load_engine(ck: &Checkpoint<BrowserSource>, max_context: u32, capture: bool) -> Result<(crate::model::engine::Engine, String)> {
    use crate::model::engine::Engine;
    let arch = arch_of(ck)?;
    let opts = crate::model::fit::EngineOptions { max_context, capture, ..Default::default() };
    match crate::gpu::Gpu::new().await {
        Ok(gpu) => Ok((Engine::load(Some(&gpu), ck, arch, opts, &mut |_| {}).await?, String::new())),
        Err(e) => {
            let note = format!(" (no WebGPU here: {e}; the CPU reference runs instead, slowly)");
            Ok((Engine::load(None, ck, arch, opts, &mut |_| {}).await?, note))
        }
    }
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
    let files: Vec<String> = s.files.iter().map(|f| format!("{} ({})", f.name, human_bytes(f.size))).collect();
    fact("Files", &files.join(", "), "files")?;
    fact("Config", s.config, "config")?;
    let params = fact("Parameters", &format!(" ({})", human_count(s.parameters)), "parameters-human")?;
    let exact = doc.create_element("span").ok()?;
    exact.set_text_content(Some(&s.parameters.to_string()));
    exact.set_attribute("data-field", "parameters").ok()?;
    params.prepend_with_node_1(&exact).ok()?;
    fact("On disk", &human_bytes(s.bytes_on_disk), "bytes-on-disk")?;
    fact("Read to get here", &human_bytes(s.bytes_read), "bytes-read")?;
    let dims = format!("vocab {}, hidden {}, intermediate {}", s.vocab_size, s.hidden_size, s.intermediate_size);
    fact("Sizes", &dims, "sizes")?;
    let dtypes: Vec<String> = s.dtypes.iter().map(|(d, n)| format!("{d}: {}", human_count(*n))).collect();
    fact("Dtypes", &dtypes.join(", "), "dtypes")?;
    fact("Softmax layers", &format!("{:?}", s.softmax_layers), "softmax-layers")?;
    root.append_child(&facts).ok()?;

    for (title, items) in [("Guesses (no value in config.json)", &s.guesses), ("Problems", &s.problems)] {
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
    for h in ["layer", "mixer", "heads", "kv heads", "head dim", "parameters"] {
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

thread_local! {
    /// The files of the checkpoint shown last, for the actions that follow.
    static OPENED: std::cell::RefCell<Vec<File>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Rewrites the checkpoint shown last, unchanged but for a provenance
/// record, into one `File` per output file (for the browser writer's test;
/// the merge issue builds on the same path).
#[wasm_bindgen]
pub async fn copy_opened_checkpoint() -> std::result::Result<Array, JsError> {
    copy_opened().await.map_err(|e| JsError::new(&e.to_string()))
}

async fn copy_opened() -> Result<Array> {
    let files = OPENED.with(|o| o.borrow().clone());
    let ckpt = Checkpoint::open(BrowserSource::new(files)?).await?;
    let input = SourceFingerprint::of("input", &ckpt).await?;
    let provenance = Provenance::new("copy", serde_json::json!({}), vec![input]);
    let plan = PlanBuilder::new(&ckpt, 0).build(&provenance)?;
    to_files(plan_to_blobs(&plan, &[ckpt.source()]).await?)
}

fn files_of(list: &Array) -> Vec<File> {
    list.iter().filter_map(|f| f.dyn_into::<File>().ok()).collect()
}

fn to_files(blobs: Vec<(String, Blob)>) -> Result<Array> {
    let out = Array::new();
    for (name, blob) in blobs {
        let file = File::new_with_blob_sequence(&Array::of1(&blob), &name).map_err(|e| js_err(&name, e))?;
        out.push(&file);
    }
    Ok(out)
}

/// The merge's steps, for a progress bar: `step(i, what)` as step i of
/// [`MERGE_STEPS`] begins.
const MERGE_STEPS: u32 = 3;

async fn merge(pre: Vec<File>, sft: Vec<File>, spec_json: &str, step: &dyn Fn(u32, &str)) -> Result<Array> {
    let spec: MergeSpec = serde_json::from_str(spec_json).map_err(|e| Error::Usage(format!("invalid merge settings: {e}")))?;
    step(0, "reading both checkpoints' headers");
    let pre = Checkpoint::open(BrowserSource::new(pre)?).await?;
    let sft = Checkpoint::open(BrowserSource::new(sft)?).await?;
    step(1, "planning the output (QK-Pro computes its tensors here)");
    let merged = plan_merge(&pre, &sft, &spec).await?;
    step(2, "assembling and verifying the output files");
    // Source numbers as plan_merge assigns them: sft is 0, pre is 1.
    let files = to_files(plan_to_blobs(&merged.plan, &[sft.source(), pre.source()]).await?)?;
    step(MERGE_STEPS, "done");
    Ok(files)
}

/// Merges `pre` into `sft` as `spec_json` (a recipe's merge settings) says,
/// in the browser: one `File` per output file (shards, index, config,
/// recipe), each built from slices of the inputs and verified.
#[wasm_bindgen]
pub async fn merge_checkpoints(pre: Array, sft: Array, spec_json: String) -> std::result::Result<Array, JsError> {
    merge(files_of(&pre), files_of(&sft), &spec_json, &|_, _| {}).await.map_err(|e| JsError::new(&e.to_string()))
}

async fn inspect(files: Vec<File>) -> Result<Summary> {
    OPENED.with(|o| *o.borrow_mut() = files.clone());
    let ckpt = Checkpoint::open(BrowserSource::new(files)?).await?;
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
    set_status(&format!("Reading the headers of {} file(s)…", files.len()), false);
    match inspect(files).await {
        Ok(summary) => {
            let n = summary.problems.len();
            render_summary(&summary);
            if n == 0 {
                set_status("Checkpoint read: the tensors match the architecture.", false);
            } else {
                set_status(&format!("Checkpoint read, but {n} problem(s) found: see below."), true);
            }
        }
        Err(e) => set_status(&e.to_string(), true),
    }
}

/// Runs a compute shader on the WebGPU device and checks it against the
/// CPU: proof that the wasm build reaches the GPU.
#[wasm_bindgen]
pub async fn gpu_selftest() -> String {
    match selftest().await {
        Ok(msg) => format!("GPU self-test passed: {msg}"),
        Err(e) => format!("GPU self-test failed: {e}"),
    }
}

async fn selftest() -> Result<String> {
    use crate::gpu::unpack::{pack_halves, unpack, Half};
    let gpu = crate::gpu::Gpu::new().await?;
    let halves: Vec<u16> = (0..=u16::MAX).collect();
    let bytes: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
    let want = crate::safetensors::decode_f32("selftest", crate::safetensors::Dtype::BF16, &bytes, "self-test")?;
    let got = unpack(&gpu, Half::Bf16, &pack_halves(&halves), halves.len() as u32).await?;
    let bad = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits() && !(a.is_nan() && b.is_nan())).count();
    if bad > 0 {
        return Err(Error::Gpu(format!("{bad} of {} bf16 patterns decoded differently from the CPU", want.len())));
    }
    Ok(format!("{} bf16 patterns decoded on {} exactly as on the CPU", want.len(), gpu.describe()))
}

fn on(target: &Element, event: &str, f: impl FnMut(web_sys::Event) + 'static) {
    let closure = Closure::<dyn FnMut(web_sys::Event)>::new(f);
    let _ = target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
    // The page lives as long as the listener: leaking the closure is the intent.
    closure.forget();
}

/// Calls `open` with the files an `<input type=file>` gets.
fn wire_picker<F: std::future::Future<Output = ()> + 'static>(id: &str, open: impl Fn(Array) -> F + 'static) {
    let Some(input) = by_id(id) else { return };
    on(&input, "change", move |ev| {
        let Some(input) = ev.target().and_then(|t| t.dyn_into::<HtmlInputElement>().ok()) else { return };
        let Some(list) = input.files() else { return };
        let files = Array::new();
        for i in 0..list.length() {
            if let Some(f) = list.get(i) {
                files.push(&f);
            }
        }
        wasm_bindgen_futures::spawn_local(open(files));
    });
}

#[wasm_bindgen(start)]
pub fn start() {
    repair::wire();
    evaluate::wire();
    inspect::wire();
    report::wire();
    wire_picker("pick-files", open_checkpoint);
    wire_picker("pick-folder", open_checkpoint);
    if let Some(button) = by_id("gpu-selftest") {
        on(&button, "click", |_| {
            wasm_bindgen_futures::spawn_local(async {
                if let Some(s) = by_id("gpu-status") {
                    s.set_text_content(Some("Running a compute shader…"));
                }
                let msg = gpu_selftest().await;
                if let Some(s) = by_id("gpu-status") {
                    s.set_text_content(Some(&msg));
                }
            });
        });
    }
}

/// Loads a checkpoint's files onto the WebGPU device, ready to run.
async fn load_gpu_model(files: Vec<File>, max_context: u32) -> Result<(Checkpoint<BrowserSource>, crate::model::gpu::GpuModel)> {
    use crate::model::fit::EngineOptions;
    let ckpt = Checkpoint::open(BrowserSource::new(files)?).await?;
    let arch = arch_of(&ckpt)?;
    let gpu = crate::gpu::Gpu::new().await?;
    let opts = EngineOptions { max_context, ..Default::default() };
    let model = crate::model::gpu::GpuModel::load(&gpu, &ckpt, arch, opts, &mut |_| {}).await?;
    Ok((ckpt, model))
}

async fn logits(files: Vec<File>, ids: &[u32]) -> Result<Vec<f32>> {
    let (_ck, model) = load_gpu_model(files, ids.len().max(1) as u32).await?;
    let mut session = model.session();
    model.prefill(&mut session, ids, crate::model::gpu::Logits::All).await
}

/// The logits `[T, V]` (row-major) of `ids` under the checkpoint in
/// `files`, computed on the WebGPU device.
#[wasm_bindgen]
pub async fn run_logits(files: Array, ids: Vec<u32>) -> std::result::Result<Vec<f32>, JsError> {
    logits(files_of(&files), &ids).await.map_err(|e| JsError::new(&e.to_string()))
}

async fn greedy(files: Vec<File>, prompt: &[u32], n: usize) -> Result<Vec<u32>> {
    let (_ck, model) = load_gpu_model(files, (prompt.len() + n).max(1) as u32).await?;
    let mut session = model.session();
    model.generate_greedy(&mut session, prompt, n, &[]).await
}

/// The greedy continuation (`n` tokens, no stop token) of `prompt`.
#[wasm_bindgen]
pub async fn run_greedy(files: Array, prompt: Vec<u32>, n: usize) -> std::result::Result<Vec<u32>, JsError> {
    greedy(files_of(&files), &prompt, n).await.map_err(|e| JsError::new(&e.to_string()))
}

/// A NIAH prompt as JSON (every field of `niah::NiahPrompt`), for the page
/// and for the test that native and wasm builds make the same bytes.
#[wasm_bindgen]
pub fn niah_prompt_json(task: String, length: u32, depth: f64, seed: u64, distractors: Option<u32>) -> std::result::Result<String, JsError> {
    let task = crate::niah::Task::parse(&task).map_err(|e| JsError::new(&e.to_string()))?;
    let p = crate::niah::niah_prompt(task, length, depth, seed, distractors).map_err(|e| JsError::new(&e.to_string()))?;
    Ok(serde_json::to_string(&p).expect("a prompt serializes"))
}
