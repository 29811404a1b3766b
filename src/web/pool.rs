//! A sweep on the CPU engine spread over several workers: WebAssembly in
//! a page runs on one thread, but a sweep's prompts are independent, so
//! each worker runs an interleaved share of them with its own engine
//! (`SweepSpec::shard`) and the results, merged in sweep order, equal one
//! worker's run exactly. The pool is as large as the setting asks
//! (`min(cores, 8)` by default) and the memory allows; a worker that dies
//! is replaced and runs what is left of its share.

use std::cell::Cell;

use js_sys::Reflect;
use wasm_bindgen::JsValue;
use web_sys::File;

use super::dom::{field, set_field};
use super::engine::{cancel, fault, page_has_webgpu, Channel, Ended, Message, Started};
use super::files::BrowserSource;
use super::protocol::{Event, Request};
use crate::app::model::OpenModel;
use crate::app::sweep::{Shard, SweepSpec};
use crate::error::{Error, Result};
use crate::model::fit::cpu_footprint;
use crate::sweep::SampleResult;
use crate::units::human_bytes;

/// The most workers the pool starts, whatever the cores.
const MOST: usize = 8;
/// How often one share's worker is replaced before the sweep gives up.
const REPLACEMENTS: usize = 2;

/// How many workers a sweep gets, and why fewer than asked where so.
pub struct Pool {
    pub workers: usize,
    pub note: String,
}

fn navigator_number(key: &str) -> Option<f64> {
    let nav = web_sys::window()?.navigator();
    Reflect::get(&nav, &JsValue::from_str(key)).ok()?.as_f64()
}

/// The default pool: one worker a core, at most `MOST`.
fn default_workers() -> usize {
    navigator_number("hardwareConcurrency").map_or(1, |n| (n as usize).clamp(1, MOST))
}

/// Shows the default in the setting when the page opens.
pub fn wire() {
    if field("workers").is_empty() {
        set_field("workers", &default_workers().to_string());
    }
}

/// What the setting asks for (the default where it is not a number).
fn wanted() -> usize {
    field("workers")
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|&n| n >= 1)
        .unwrap_or_else(default_workers)
}

/// Memory the pool may fill: half of what the browser says the device
/// has (`navigator.deviceMemory`, in GiB, capped at 8 by browsers), or
/// 4 GiB where it does not say.
fn memory_budget() -> u64 {
    let gib = navigator_number("deviceMemory").unwrap_or(8.0);
    (gib * (1u64 << 30) as f64 / 2.0) as u64
}

thread_local! {
    /// Whether "The faster here" picks the CPU engine (found once).
    static AUTO_IS_CPU: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Whether the run's engine will be the CPU one: the pool is for it alone
/// (the GPU is one device, best fed by one engine).
async fn cpu_engine_runs() -> bool {
    match field("engine").as_str() {
        "cpu" => true,
        "gpu" => !page_has_webgpu(),
        _ if !page_has_webgpu() => true,
        _ => {
            if let Some(known) = AUTO_IS_CPU.with(Cell::get) {
                return known;
            }
            // As the worker decides: an emulated GPU, or none, means the CPU.
            let cpu = crate::gpu::Gpu::new()
                .await
                .map_or(true, |g| g.is_cpu_emulation());
            AUTO_IS_CPU.with(|c| c.set(Some(cpu)));
            cpu
        }
    }
}

impl Pool {
    fn one() -> Pool {
        Pool {
            workers: 1,
            note: String::new(),
        }
    }

    /// The pool for `spec` over `models`: the setting's size, no more
    /// workers than a model has prompts, and no more engines than fit in
    /// memory side by side (each holds the model in f32).
    pub async fn size_for(models: &[(&str, Vec<File>)], spec: &SweepSpec) -> Pool {
        if !cpu_engine_runs().await {
            return Pool::one();
        }
        let mut workers = wanted().min(spec.per_model()).max(1);
        if workers == 1 {
            return Pool::one();
        }
        let mut note = String::new();
        let tokens = spec.lengths.iter().max().copied().unwrap_or(0) + 64;
        if let Some(each) = footprint(models, tokens).await {
            let budget = memory_budget();
            let fit = (budget / each.max(1)).max(1) as usize;
            if fit < workers {
                note = format!(
                    " ({fit}, not {workers}: each engine needs {} for this model, and the pool may use {})",
                    human_bytes(each),
                    human_bytes(budget)
                );
                workers = fit;
            }
        }
        Pool { workers, note }
    }
}

/// The CPU engine's memory for the first model and `tokens` (None if its
/// files cannot be read here: the worker will say why).
async fn footprint(models: &[(&str, Vec<File>)], tokens: u32) -> Option<u64> {
    let (name, files) = models.first()?;
    let source = BrowserSource::new(files.clone()).ok()?;
    let model = OpenModel::open(name.to_string(), source).await.ok()?;
    Some(cpu_footprint(&model.arch, tokens, false).total())
}

/// Runs `request` as `engine::run` does, but a sweep on the CPU engine in
/// a pool of workers.
pub async fn run(
    request: &Request,
    models: &[(&str, Vec<File>)],
    on_event: &mut dyn FnMut(Event),
) -> Result<Ended> {
    if let Request::Sweep { spec, done } = request {
        let pool = Pool::size_for(models, spec).await;
        if pool.workers > 1 {
            cancel();
            return run_sweep(&pool, spec, done, models, on_event).await;
        }
    }
    super::engine::run(request, models, on_event).await
}

/// One share of the sweep and its worker.
struct Share {
    spec: SweepSpec,
    worker: Option<Started>,
    replaced: usize,
    finished: bool,
}

/// Runs `spec` over `models` in `pool.workers` workers, `done` already
/// known; events reach `on_event` as one worker's would, but for the
/// progress, which counts the pool's finished prompts.
async fn run_sweep(
    pool: &Pool,
    spec: &SweepSpec,
    done: &[SampleResult],
    models: &[(&str, Vec<File>)],
    on_event: &mut dyn FnMut(Event),
) -> Result<Ended> {
    let mut channel = Channel::new();
    let count = pool.workers as u32;
    let mut results: Vec<SampleResult> = done.to_vec();
    let request = |share: &SweepSpec, results: &[SampleResult]| Request::Sweep {
        spec: share.clone(),
        done: results
            .iter()
            .filter(|r| in_share(share, r))
            .cloned()
            .collect(),
    };
    // Workers take the models' faults, but for the page's own kill test.
    let fault = fault();
    let kill = fault.as_deref() == Some("kill-worker");
    let worker_fault = fault.as_deref().filter(|_| !kill);
    let mut shares = Vec::new();
    for index in 0..count {
        let share = SweepSpec {
            shard: Some(Shard { index, count }),
            ..spec.clone()
        };
        let worker = channel.start(
            index as usize,
            &request(&share, &results),
            models,
            worker_fault,
        )?;
        shares.push(Share {
            spec: share,
            worker: Some(worker),
            replaced: 0,
            finished: false,
        });
    }
    let track = |channel: &Channel, shares: &[Share]| {
        channel.track(
            shares
                .iter()
                .filter_map(|s| s.worker.as_ref().map(|w| w.worker.clone()))
                .collect(),
        )
    };
    track(&channel, &shares);
    let total = spec.per_model() * models.len();
    let mut killed = false;
    let ended = loop {
        let Some((slot, message)) = channel.next().await else {
            break Ok(Ended::Cancelled);
        };
        match message {
            Message::Cancelled => break Ok(Ended::Cancelled),
            Message::Event(Event::Done) => {
                shares[slot].finished = true;
                shares[slot].worker = None;
                if shares.iter().all(|s| s.finished) {
                    break Ok(Ended::Done);
                }
            }
            Message::Event(Event::Failed { message }) => break Err(Error::Usage(message)),
            Message::Event(Event::Progress { model, engine, .. }) => {
                let model_done = results.iter().filter(|r| r.model == model).count();
                on_event(Event::Progress {
                    model,
                    engine: format!("{engine}, {count} workers{}", pool.note),
                    model_done,
                    model_total: spec.per_model(),
                    done: results.len(),
                    total,
                });
            }
            Message::Event(Event::Samples { samples }) => {
                results.extend(samples.iter().cloned());
                on_event(Event::Samples { samples });
                // The test of a dying worker: the last share's, after its first batch.
                if kill && !killed && slot + 1 == shares.len() {
                    killed = true;
                    shares[slot].worker = None;
                    channel.inject(slot, Message::Broken("a test ended this worker".into()));
                }
            }
            Message::Event(e) => on_event(e),
            Message::Broken(reason) => {
                let share = &mut shares[slot];
                if share.finished {
                    continue;
                }
                if share.replaced == REPLACEMENTS {
                    break Err(Error::Page(format!(
                        "{reason} (share {} of {count}, replaced {REPLACEMENTS} times already)",
                        slot + 1
                    )));
                }
                share.replaced += 1;
                share.worker = None;
                on_event(Event::WorkerReplaced {
                    reason: reason.clone(),
                });
                let worker =
                    channel.start(slot, &request(&share.spec, &results), models, worker_fault)?;
                share.worker = Some(worker);
                track(&channel, &shares);
            }
        }
    };
    channel.untrack();
    // Dropping the shares ends their workers.
    drop(shares);
    ended
}

/// Whether `r` is one of `share`'s prompts.
fn in_share(share: &SweepSpec, r: &SampleResult) -> bool {
    match (share.shard, share.index_of(r)) {
        (Some(shard), Some(i)) => shard.holds(i),
        (None, _) => true,
        (Some(_), None) => false,
    }
}
