//! qklab: repair and inspect long-context routing in hybrid
//! linear-attention LLMs (HypeNet), natively and in the browser.
//!
//! The core (checkpoint I/O, config, merge math, model, kernels, NIAH,
//! metrics) knows nothing of browsers; [`web`] is the only module that
//! touches `web-sys`, and it exists only on wasm32.

pub mod app;
#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod checkpoint;
pub mod clock;
pub mod config;
pub mod error;
pub mod figures;
pub mod gpu;
pub mod merge;
pub mod model;
pub mod names;
pub mod niah;
pub mod prompts;
pub mod routing;
pub mod safetensors;
pub mod source;
pub mod summary;
pub mod sweep;
pub mod synth;
pub mod tokenizer;
pub mod tune;
pub mod units;
pub mod writer;
pub mod zipfile;

#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, Result};
