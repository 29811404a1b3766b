//! The engine commands (`run`, `bench`, `niah`, `routing`): flags in,
//! the core's use cases (`qklab::app`), text and JSON out.

pub mod bench;
pub mod niah;
pub mod routing;
pub mod run;

use std::path::Path;

use qklab::app::model::{Backend, BackendChoice, OpenModel};
use qklab::source::{block_on, FsSource};
use qklab::Result;

/// `--backend`: gpu (default) or cpu.
pub fn backend(choice: &str) -> Result<Backend> {
    block_on(Backend::open(BackendChoice::parse(choice)?))
}

/// The checkpoint at `path`, named by its path in results.
pub fn open_model(path: &Path) -> Result<OpenModel<FsSource>> {
    block_on(OpenModel::open(path.display().to_string(), FsSource::open(path)?))
}
