//! Functions the page's scripts and the browser tests call directly: the
//! engine on given files, NIAH prompts, and the GPU self-test.

use js_sys::Array;
use wasm_bindgen::prelude::*;

use super::dom::{by_id, files_of, on};
use super::files::BrowserSource;
use crate::app::model::{Backend, BackendChoice, OpenModel};
use crate::error::{Error, Result};
use crate::model::engine::Engine;
use crate::model::engine::Logits;

fn to_js<T>(r: Result<T>) -> std::result::Result<T, JsError> {
    r.map_err(|e| JsError::new(&e.to_string()))
}

/// The checkpoint in `files` on the WebGPU device, for `max_context` tokens.
async fn on_gpu(files: Array, max_context: usize) -> Result<Engine> {
    let m = OpenModel::open("model", BrowserSource::new(files_of(&files))?).await?;
    Backend::open(BackendChoice::Gpu)
        .await?
        .load(&m, max_context as u32, false)
        .await
}

/// The logits `[T, V]` (row-major) of `ids` under the checkpoint in
/// `files`, computed on the WebGPU device.
#[wasm_bindgen]
pub async fn run_logits(files: Array, ids: Vec<u32>) -> std::result::Result<Vec<f32>, JsError> {
    to_js(
        async {
            let engine = on_gpu(files, ids.len()).await?;
            engine
                .prefill(&mut engine.session(false), &ids, Logits::All)
                .await
        }
        .await,
    )
}

/// The greedy continuation (`n` tokens, no stop token) of `prompt`.
#[wasm_bindgen]
pub async fn run_greedy(
    files: Array,
    prompt: Vec<u32>,
    n: usize,
) -> std::result::Result<Vec<u32>, JsError> {
    to_js(
        async {
            let engine = on_gpu(files, prompt.len() + n).await?;
            engine
                .generate_greedy(&mut engine.session(false), &prompt, n, &[])
                .await
        }
        .await,
    )
}

/// A NIAH prompt as JSON (every field of `niah::NiahPrompt`), for the page
/// and for the test that native and wasm builds make the same bytes.
#[wasm_bindgen]
pub fn niah_prompt_json(
    task: String,
    length: u32,
    depth: f64,
    seed: u64,
    distractors: Option<u32>,
) -> std::result::Result<String, JsError> {
    let p = to_js(
        crate::niah::Task::parse(&task)
            .and_then(|task| crate::niah::niah_prompt(task, length, depth, seed, distractors)),
    )?;
    Ok(serde_json::to_string(&p).expect("a prompt serializes"))
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
    let want = crate::safetensors::decode_f32(
        "selftest",
        crate::safetensors::Dtype::BF16,
        &bytes,
        "self-test",
    )?;
    let got = unpack(&gpu, Half::Bf16, &pack_halves(&halves), halves.len() as u32).await?;
    let bad = got
        .iter()
        .zip(&want)
        .filter(|(a, b)| a.to_bits() != b.to_bits() && !(a.is_nan() && b.is_nan()))
        .count();
    if bad > 0 {
        return Err(Error::Gpu(format!(
            "{bad} of {} bf16 patterns decoded differently from the CPU",
            want.len()
        )));
    }
    Ok(format!(
        "{} bf16 patterns decoded on {} exactly as on the CPU",
        want.len(),
        gpu.describe()
    ))
}

pub fn wire() {
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
