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
//!   and the merge), `evaluate` (NIAH sweeps), `routing`, `report`.
//! - `engine` starts the engine's Web Worker and hears from it; `worker`
//!   is the engine's side, inside that worker; `protocol` what they say.
//! - `api`: functions scripts and tests call directly.

mod api;
mod dom;
mod engine;
mod evaluate;
mod files;
mod forms;
mod protocol;
mod repair;
mod report;
mod routing;
mod share;
mod state;
mod summary;
mod worker;

use wasm_bindgen::prelude::*;

#[wasm_bindgen(start)]
pub fn start() {
    repair::wire();
    evaluate::wire();
    routing::wire();
    report::wire();
    summary::wire();
    api::wire();
}
