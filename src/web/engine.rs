//! The page's side of the engine worker: each run starts a fresh worker
//! (www/worker.js), sends it the request and the models' files, and
//! hands its events to the panel as they come. Cancel ends the worker at
//! once; what it reported before stays with the panel.

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

enum Message {
    Event(Event),
    /// The worker could not run (its script failed, or a message broke).
    Broken(String),
    Cancelled,
}

struct Running {
    worker: Worker,
    tx: UnboundedSender<Message>,
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
fn page_has_webgpu() -> bool {
    web_sys::window()
        .and_then(|w| Reflect::get(&w.navigator(), &"gpu".into()).ok())
        .is_some_and(|g| !g.is_undefined() && !g.is_null())
}

/// Ends the running worker, if any: its run returns `Ended::Cancelled`.
pub fn cancel() {
    if let Some(r) = RUNNING.with(|r| r.borrow_mut().take()) {
        r.worker.terminate();
        let _ = r.tx.unbounded_send(Message::Cancelled);
    }
}

/// Runs `request` over `models` (name and files each) in a new worker,
/// calling `on_event` for every event but the last.
pub async fn run(
    request: &Request,
    models: &[(&str, Vec<File>)],
    on_event: &mut dyn FnMut(Event),
) -> Result<Ended> {
    cancel();
    let opts = WorkerOptions::new();
    opts.set_type(WorkerType::Module);
    let worker = Worker::new_with_options("worker.js", &opts)
        .map_err(|e| Error::Page(format!("cannot start the engine's worker: {}", js_text(&e))))?;
    let (tx, mut rx): (UnboundedSender<Message>, UnboundedReceiver<Message>) = unbounded();
    let on_message = {
        let tx = tx.clone();
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
            let _ = tx.unbounded_send(msg);
        })
    };
    let on_error = {
        let tx = tx.clone();
        Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(move |e: web_sys::ErrorEvent| {
            let _ = tx.unbounded_send(Message::Broken(format!(
                "the engine's worker failed: {}",
                e.message()
            )));
        })
    };
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));

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
    // Tests set window.__qklabFault ("panic", "device-lost") to make the engine fail.
    if let Some(fault) = web_sys::window()
        .and_then(|w| Reflect::get(&w, &"__qklabFault".into()).ok())
        .and_then(|f| f.as_string())
    {
        let _ = Reflect::set(&message, &"fault".into(), &JsValue::from_str(&fault));
    }
    worker
        .post_message(&message)
        .map_err(|e| Error::Page(format!("cannot reach the engine's worker: {}", js_text(&e))))?;
    RUNNING.with(|r| {
        *r.borrow_mut() = Some(Running {
            worker: worker.clone(),
            tx,
        })
    });

    let ended = loop {
        let next = std::future::poll_fn(|cx| Pin::new(&mut rx).poll_next(cx)).await;
        match next {
            Some(Message::Event(Event::Done)) => break Ok(Ended::Done),
            Some(Message::Event(Event::Failed { message })) => break Err(Error::Usage(message)),
            Some(Message::Event(e)) => on_event(e),
            Some(Message::Broken(message)) => break Err(Error::Page(message)),
            Some(Message::Cancelled) | None => break Ok(Ended::Cancelled),
        }
    };
    // This run's worker is done with; a cancel already ended it.
    RUNNING.with(|r| {
        let mut r = r.borrow_mut();
        if r.as_ref().is_some_and(|run| run.worker == worker) {
            *r = None;
        }
    });
    worker.terminate();
    drop((on_message, on_error));
    ended
}
