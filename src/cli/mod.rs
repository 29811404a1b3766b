//! The engine commands (`run`, `bench`, `niah`, `routing`, `tune`, `layers`) and the
//! merge's writing and progress, shared by the commands: flags in,
//! the core's use cases (`qklab::app`), text and JSON out.

pub mod bench;
pub mod layers;
pub mod niah;
pub mod recall;
pub mod routing;
pub mod run;
pub mod tune;
mod progress;

pub use progress::Progress;

use std::path::Path;

use qklab::app::merge::{merge_pair, plan_sources};
use qklab::app::model::{Backend, BackendChoice, OpenModel};
use qklab::checkpoint::Checkpoint;
use qklab::merge::MergeSpec;
use qklab::writer::write_to_dir;
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

/// Plans the merge of `spec`, writes it into `out` (a new or empty folder)
/// and verifies what was written; notes go to stderr.
pub fn merge_to_dir(pre: &Checkpoint<FsSource>, sft: &Checkpoint<FsSource>, spec: &MergeSpec, out: &std::path::Path) -> Result<qklab::merge::plan::Merge> {
    let merge = block_on(merge_pair(pre, sft, spec, &mut |_, _| {}))?;
    for note in &merge.notes {
        eprintln!("note: {note}");
    }
    let mut progress = Progress::new("writing", true);
    let written = block_on(write_to_dir(&merge.plan, &plan_sources(pre, sft), out, |d, t| progress.update(d, t)));
    progress.finish();
    written?;
    Ok(merge)
}
