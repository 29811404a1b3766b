//! The engine's side of the page's Web Worker (www/worker.js calls
//! [`worker_run`]): models load and sweeps and routing run here, off the
//! page's thread, so the page answers clicks while they run, and Cancel
//! is the page ending the worker. Every event goes back as it happens.

use std::cell::RefCell;

use js_sys::{Array, Function, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::File;

use super::files::BrowserSource;
use super::protocol::{Event, Request};
use crate::app::layers::{self, run_layers};
use crate::app::model::{Backend, BackendChoice, OpenModel};
use crate::app::routing::profile;
use crate::app::sweep::{self, run_sweep};
use crate::app::tune::{self, run_tune};
use crate::error::{Error, Result};

thread_local! {
    /// The running request's `post`, for the panic hook.
    static POST: RefCell<Option<Function>> = const { RefCell::new(None) };
}

/// Sends a panic's message to the page as the request's failure; false
/// outside a worker's request (the page's own thread).
pub fn report_panic(message: &str) -> bool {
    POST.with(|p| match p.borrow().as_ref() {
        Some(post) => {
            let e = Event::Failed {
                message: format!("the engine stopped: {message}"),
            };
            let _ = post.call1(&JsValue::NULL, &JsValue::from_str(&e.to_json()));
            true
        }
        None => false,
    })
}

/// Runs `request` (JSON) over `models` (`[{name, files}]`) on `engine`
/// ("auto", "gpu", "cpu"), calling `post` with each event's JSON; the last
/// is `done` or `failed`. Without `webgpu` (the page has none) the CPU
/// engine runs, whatever the worker sees. `fault` ("panic", "device-lost")
/// is for tests of the failure paths.
#[wasm_bindgen]
pub async fn worker_run(
    request: String,
    models: Array,
    webgpu: bool,
    engine: String,
    fault: String,
    post: Function,
) {
    POST.with(|p| *p.borrow_mut() = Some(post.clone()));
    let send = |e: Event| {
        let _ = post.call1(&JsValue::NULL, &JsValue::from_str(&e.to_json()));
    };
    let job = Job {
        webgpu,
        engine: &engine,
        fault: &fault,
    };
    match serve(&request, &models, &job, &send).await {
        Ok(()) => send(Event::Done),
        Err(e) => send(Event::Failed {
            message: e.to_string(),
        }),
    }
}

async fn open_models(models: &Array) -> Result<Vec<OpenModel<BrowserSource>>> {
    let mut out = Vec::new();
    for m in models.iter() {
        let field = |k: &str| {
            Reflect::get(&m, &JsValue::from_str(k))
                .map_err(|_| Error::Page(format!("a model without {k}")))
        };
        let name = field("name")?.as_string().unwrap_or_default();
        let files: Vec<File> = Array::from(&field("files")?)
            .iter()
            .filter_map(|f| f.dyn_into::<File>().ok())
            .collect();
        out.push(OpenModel::open(name, BrowserSource::new(files)?).await?);
    }
    Ok(out)
}

/// The step a tune or a ranking is on, to label its prompts' progress.
#[derive(Default)]
struct Step {
    index: usize,
    steps: usize,
    label: String,
}

impl Step {
    fn progress(&self, done: usize, total: usize, engine: &str) -> Event {
        Event::StepProgress {
            index: self.index,
            steps: self.steps,
            label: self.label.clone(),
            done,
            total,
            engine: engine.into(),
        }
    }
}

/// How a request is to run.
struct Job<'a> {
    webgpu: bool,
    engine: &'a str,
    fault: &'a str,
}

async fn serve(request: &str, models: &Array, job: &Job<'_>, send: &dyn Fn(Event)) -> Result<()> {
    let request: Request = serde_json::from_str(request)
        .map_err(|e| Error::Page(format!("a request the worker does not know: {e}")))?;
    if job.fault == "panic" {
        panic!("a test asked the engine to panic");
    }
    let models = open_models(models).await?;
    let backend = match (job.webgpu, job.engine) {
        (false, _) => Backend::cpu_because(" (no WebGPU in this browser)"),
        (true, "gpu") => Backend::open(BackendChoice::Gpu).await?,
        (true, "cpu") => Backend::open(BackendChoice::Cpu).await?,
        _ => Backend::open(BackendChoice::Auto).await?,
    };
    let mut lose_device = job.fault == "device-lost";
    match request {
        Request::Sweep { spec, done } => {
            let mut results = done;
            let mut posted = results.len();
            run_sweep(&backend, &models, &spec, None, &mut results, &mut |event| {
                match event {
                    sweep::Event::Loading { model } => send(Event::Loading {
                        model: model.into(),
                    }),
                    sweep::Event::Prompt(p) => send(Event::Progress {
                        model: p.model.into(),
                        engine: p.engine.into(),
                        model_done: p.model_prompts.0,
                        model_total: p.model_prompts.1,
                        done: p.all.0,
                        total: p.all.1,
                    }),
                    sweep::Event::Finished(all) => {
                        send(Event::Samples {
                            samples: all[posted..].to_vec(),
                        });
                        posted = all.len();
                        // The test of a lost device: after the first finished batch.
                        if std::mem::take(&mut lose_device) {
                            if let Some(gpu) = backend.gpu() {
                                gpu.device.destroy();
                            }
                        }
                    }
                }
                true
            })
            .await?;
        }
        Request::Routing { spec } => {
            for m in &models {
                send(Event::Loading {
                    model: m.name.clone(),
                });
                send(Event::Profile {
                    profile: profile(&backend, m, &spec).await?,
                });
            }
        }
        Request::Tune { spec } => {
            let [pre, sft] = &models[..] else {
                return Err(Error::Page("a tune takes two models: pre, then sft".into()));
            };
            let mut step = Step::default();
            let report = run_tune(&backend, pre, sft, &spec, &mut |event| {
                match event {
                    tune::Event::Loading => send(Event::Loading {
                        model: sft.name.clone(),
                    }),
                    tune::Event::Candidate {
                        index,
                        total,
                        label,
                    } => {
                        step = Step {
                            index,
                            steps: total,
                            label: label.into(),
                        }
                    }
                    tune::Event::Prompt {
                        done,
                        total,
                        engine,
                    } => send(step.progress(done, total, engine)),
                    tune::Event::Scored(s) => send(Event::Scored {
                        scored: Box::new(s.clone()),
                    }),
                }
                true
            })
            .await?;
            if let Some(report) = report {
                send(Event::Tuned {
                    report: Box::new(report),
                });
            }
        }
        Request::Layers { spec } => {
            let Some(pre) = models.first() else {
                return Err(Error::Page(
                    "ranking layers takes the model from before SFT".into(),
                ));
            };
            let mut step = Step::default();
            let report = run_layers(&backend, pre, models.get(1), &spec, &mut |event| {
                match event {
                    layers::Event::Loading { model } => send(Event::Loading {
                        model: model.into(),
                    }),
                    layers::Event::Step {
                        index,
                        total,
                        label,
                    } => {
                        step = Step {
                            index,
                            steps: total,
                            label: label.into(),
                        }
                    }
                    layers::Event::Prompt {
                        done,
                        total,
                        engine,
                    } => send(step.progress(done, total, engine)),
                    layers::Event::Scored(s) => send(Event::LayerScored { score: s.clone() }),
                }
                true
            })
            .await?;
            if let Some(report) = report {
                send(Event::Ranked {
                    report: Box::new(report),
                });
            }
        }
    }
    Ok(())
}
