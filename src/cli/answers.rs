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
    pub ckpt: PathBuf,
    #[arg(long)]
    pub answers: PathBuf,
    #[arg(long, default_value = "auto")]
    pub backend: String,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(a: AnswersArgs) -> Result<()> {
    let m = super::open_model(&a.ckpt)?;
    let text = std::fs::read_to_string(&a.answers).map_err(|e| Error::io(a.answers.display(), e))?;
    let answers = parse_answers(&text)?;
    let backend = super::backend(&a.backend)?;
    let report = block_on(score_answers(&backend, &m, &answers))?;
    println!("exact match: {:.1}% of {} answers ({})", report.exact, report.answers.len(), report.engine);
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report).expect("reports serialize")).map_err(|e| Error::io(path.display(), e))?;
    }
    Ok(())
}
