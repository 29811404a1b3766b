//! The page's side of the engine workers: each run starts fresh workers
//! (www/worker.js), sends each its request and the models' files, and
//! hands their events to the panel as they come (`pool` spreads a sweep
//! over several through `Channel`). Cancel ends every worker at once;
//! what they reported before stays with the panel.

use std::cell::RefCell;
use std::pin::Pin;

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_core::Stream;
use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{File, MessageEvent, Worker, WorkerOptions, WorkerType};

use super::protocol::{Event, Request};
use crate::error::{Error, Result};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Done,
    Cancelled,
}

/// What reaches the run from its workers, each message with its worker's slot.
pub(super) enum Message {
    Event(Event),
    /// The worker could not run (its script failed, or a message broke).
    Broken(String),
    Cancelled,
}

/// A started worker and the handlers that must live as long as it does.
pub(super) struct Started {
    pub worker: Worker,
    _handlers: (
        Closure<dyn FnMut(MessageEvent)>,
        Closure<dyn FnMut(web_sys::ErrorEvent)>,
    ),
}

impl Drop for Started {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}

struct Running {
    workers: Vec<Worker>,
    tx: UnboundedSender<(usize, Message)>,
}

thread_local! {
    static RUNNING: RefCell<Option<Running>> = const { RefCell::new(None) };
}

fn js_text(v: &JsValue) -> String {
    v.as_string()
        .or_else(|| js_sys::JSON::stringify(v).ok().and_then(|s| s.as_string()))
        .unwrap_or_default()
}

/// Whether the page sees WebGPU (the worker follows the page: a page
/// without it must not find it in its worker either).
pub(super) fn page_has_webgpu() -> bool {
    web_sys::window()
        .and_then(|w| Reflect::get(&w.navigator(), &"gpu".into()).ok())
        .is_some_and(|g| !g.is_undefined() && !g.is_null())
}

/// A test's request that something fail (`window.__qklabFault`).
pub(super) fn fault() -> Option<String> {
    web_sys::window()
        .and_then(|w| Reflect::get(&w, &"__qklabFault".into()).ok())
        .and_then(|f| f.as_string())
}

/// Ends every running worker: the run returns `Ended::Cancelled`.
pub fn cancel() {
    if let Some(r) = RUNNING.with(|r| r.borrow_mut().take()) {
        for w in &r.workers {
            w.terminate();
        }
        let _ = r.tx.unbounded_send((usize::MAX, Message::Cancelled));
    }
}

/// The channel a run's workers report into.
pub(super) struct Channel {
    tx: UnboundedSender<(usize, Message)>,
    rx: UnboundedReceiver<(usize, Message)>,
}

impl Channel {
    pub fn new() -> Channel {
        let (tx, rx) = unbounded();
        Channel { tx, rx }
    }

    /// The next message of any worker (None: every sender is gone).
    pub async fn next(&mut self) -> Option<(usize, Message)> {
        std::future::poll_fn(|cx| Pin::new(&mut self.rx).poll_next(cx)).await
    }

    /// Lets Cancel reach `workers` (replacing what it reached before).
    pub fn track(&self, workers: Vec<Worker>) {
        RUNNING.with(|r| {
            *r.borrow_mut() = Some(Running {
                workers,
                tx: self.tx.clone(),
            })
        });
    }

    /// Forgets this run's workers (a later run's stay).
    pub fn untrack(&self) {
        RUNNING.with(|r| {
            let mut r = r.borrow_mut();
            if r.as_ref().is_some_and(|run| run.tx.same_receiver(&self.tx)) {
                *r = None;
            }
        });
    }

    /// Starts a worker on `request`; its messages come tagged `slot`.
    /// `fault` goes to the worker's engine (a test's "panic", "device-lost").
    pub fn start(
        &self,
        slot: usize,
        request: &Request,
        models: &[(&str, Vec<File>)],
        fault: Option<&str>,
    ) -> Result<Started> {
        let opts = WorkerOptions::new();
        opts.set_type(WorkerType::Module);
        let worker = Worker::new_with_options("worker.js", &opts).map_err(|e| {
            Error::Page(format!("cannot start the engine's worker: {}", js_text(&e)))
        })?;
        let on_message = {
            let tx = self.tx.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |m: MessageEvent| {
                let msg = match m
                    .data()
                    .as_string()
                    .map(|s| serde_json::from_str::<Event>(&s))
                {
                    Some(Ok(e)) => Message::Event(e),
                    Some(Err(e)) => Message::Broken(format!(
                        "the engine's worker sent a message the page does not know: {e}"
                    )),
                    None => {
                        Message::Broken("the engine's worker sent something other than text".into())
                    }
                };
                let _ = tx.unbounded_send((slot, msg));
            })
        };
        let on_error = {
            let tx = self.tx.clone();
            Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(move |e: web_sys::ErrorEvent| {
                let _ = tx.unbounded_send((
                    slot,
                    Message::Broken(format!("the engine's worker failed: {}", e.message())),
                ));
            })
        };
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        worker
            .post_message(&message(request, models, fault))
            .map_err(|e| {
                Error::Page(format!("cannot reach the engine's worker: {}", js_text(&e)))
            })?;
        Ok(Started {
            worker,
            _handlers: (on_message, on_error),
        })
    }

    /// A message for the run as if `slot`'s worker had sent it.
    pub fn inject(&self, slot: usize, message: Message) {
        let _ = self.tx.unbounded_send((slot, message));
    }
}

/// The request and the models' files, as a worker takes them.
fn message(request: &Request, models: &[(&str, Vec<File>)], fault: Option<&str>) -> Object {
    let list = Array::new();
    for (name, files) in models {
        let m = Object::new();
        let _ = Reflect::set(&m, &"name".into(), &JsValue::from_str(name));
        let _ = Reflect::set(&m, &"files".into(), &files.iter().collect::<Array>());
        list.push(&m);
    }
    let message = Object::new();
    let _ = Reflect::set(
        &message,
        &"request".into(),
        &JsValue::from_str(&serde_json::to_string(request).expect("requests serialize")),
    );
    let _ = Reflect::set(&message, &"models".into(), &list);
    let _ = Reflect::set(
        &message,
        &"webgpu".into(),
        &JsValue::from_bool(page_has_webgpu()),
    );
    let _ = Reflect::set(
        &message,
        &"engine".into(),
        &JsValue::from_str(&super::dom::field("engine")),
    );
    if let Some(fault) = fault {
        let _ = Reflect::set(&message, &"fault".into(), &JsValue::from_str(fault));
    }
    message
}

/// Runs `request` over `models` (name and files each) in one worker,
/// calling `on_event` for every event but the last (a sweep that may
/// spread over several goes through `pool::run`).
pub async fn run(
    request: &Request,
    models: &[(&str, Vec<File>)],
    on_event: &mut dyn FnMut(Event),
) -> Result<Ended> {
    cancel();
    let mut channel = Channel::new();
    let started = channel.start(0, request, models, fault().as_deref())?;
    channel.track(vec![started.worker.clone()]);
    let ended = loop {
        match channel.next().await.map(|(_, m)| m) {
            Some(Message::Event(Event::Done)) => break Ok(Ended::Done),
            Some(Message::Event(Event::Failed { message })) => break Err(Error::Usage(message)),
            Some(Message::Event(e)) => on_event(e),
            Some(Message::Broken(message)) => break Err(Error::Page(message)),
            Some(Message::Cancelled) | None => break Ok(Ended::Cancelled),
        }
    };
    channel.untrack();
    drop(started);
    ended
}
