//! The commands, one file each (`checkpoint` holds the three that read a
//! checkpoint and run no model): flags in as a `clap::Args` struct, the
//! core's use cases (`qklab::app`) in between, text and JSON out. What
//! several commands share (opening inputs, progress) is here.

pub mod answers;
pub mod bench;
pub mod checkpoint;
pub mod drift;
pub mod layers;
pub mod merge;
pub mod niah;
mod progress;
pub mod recall;
pub mod routing;
pub mod run;
pub mod synth;
pub mod tune;

pub use progress::Progress;

use std::path::Path;

use qklab::app::model::{Backend, BackendChoice, OpenModel};
use qklab::checkpoint::Checkpoint;
use qklab::source::{block_on, FsSource};
use qklab::Result;

/// `--backend`: auto (the faster here), gpu, cpu or reference.
pub fn backend(choice: &str) -> Result<Backend> {
    block_on(Backend::open(BackendChoice::parse(choice)?))
}

/// The checkpoint at `path`, named by its path in results.
pub fn open_model(path: &Path) -> Result<OpenModel<FsSource>> {
    block_on(OpenModel::open(
        path.display().to_string(),
        FsSource::open(path)?,
    ))
}

/// The checkpoint at `path`, headers read, for the commands that run no model.
pub fn open_checkpoint(path: &Path) -> Result<Checkpoint<FsSource>> {
    block_on(Checkpoint::open(FsSource::open(path)?))
}
