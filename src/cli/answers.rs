//! `qklab answers`: a checkpoint's exact match on prompts with answers, by
//! greedy decoding (the independent check of tune's teacher-forced score).

use std::path::PathBuf;

use clap::Args;
use qklab::app::answers::score_answers;
use qklab::source::block_on;
use qklab::tune::retention::parse_answers;
use qklab::{Error, Result};

#[derive(Args)]
pub struct AnswersArgs {
    /// A .safetensors file or a Hugging Face checkpoint folder.
    pub ckpt: PathBuf,
    /// JSONL of {"prompt", "answer"}.
    #[arg(long)]
    pub answers: PathBuf,
    /// auto, gpu, cpu or reference (see `run`).
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// The exact match and, per answer, whether it matched.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(a: AnswersArgs) -> Result<()> {
    let m = super::open_model(&a.ckpt)?;
    let text =
        std::fs::read_to_string(&a.answers).map_err(|e| Error::io(a.answers.display(), e))?;
    let answers = parse_answers(&text)?;
    let backend = super::backend(&a.backend)?;
    let report = block_on(score_answers(&backend, &m, &answers))?;
    println!(
        "exact match: {:.1}% of {} answers ({})",
        report.exact,
        report.answers.len(),
        report.engine
    );
    if let Some(path) = &a.json {
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&report).expect("reports serialize"),
        )
        .map_err(|e| Error::io(path.display(), e))?;
    }
    Ok(())
}
