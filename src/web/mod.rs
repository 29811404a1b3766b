//! The browser layer: the only module that touches `web-sys`. It adapts
//! browser `File`s to the core's [`ByteSource`](crate::source::ByteSource),
//! calls the core's use cases ([`crate::app`]) and renders their results
//! into the page, always as text (file and tensor names are untrusted).
//!
//! Nothing here may panic: a panic kills the wasm instance, so every
//! fallible step ends in a message on the page.
//!
//! - `dom`: DOM helpers; `files`: browser files as byte sources, output
//!   plans as Blobs; `forms`: the forms read into the core's settings;
//!   `share`: settings in the URL fragment; `state`: the page's state.
//! - The panels: `summary` (inspect one checkpoint), `repair` (the pair
//!   and the merge), `layers` (the retrieval layers, by ablation),
//!   `evaluate` (NIAH sweeps), `routing`, `tune` (the recall and retention
//!   front), `report`; and `story`, the demo's guided path over them.
//! - `engine` starts the engine's Web Worker and hears from it; `worker`
//!   is the engine's side, inside that worker; `protocol` what they say.
//! - `api`: functions scripts and tests call directly.

mod api;
mod dom;
mod engine;
mod evaluate;
mod files;
mod forms;
mod layers;
mod pool;
mod protocol;
mod repair;
mod report;
mod routing;
mod share;
mod state;
mod story;
mod summary;
mod tune;
mod worker;

use wasm_bindgen::prelude::*;

/// A panic becomes a message, never a dead page without one: inside the
/// engine's worker it is the request's failure (the page then starts a
/// fresh worker for the next run); on the page's thread it goes to the
/// status line and the console.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info.to_string().replace('\n', " ");
        if !worker::report_panic(&message) {
            dom::set_status(
                "status",
                &format!("qklab stopped: {message}. Reload the page to go on."),
                true,
            );
            web_sys::console::error_1(&message.into());
        }
    }));
}

#[wasm_bindgen(start)]
pub fn start() {
    install_panic_hook();
    repair::wire();
    layers::wire();
    evaluate::wire();
    routing::wire();
    report::wire();
    summary::wire();
    story::wire();
    tune::wire();
    api::wire();
}
