//! `qklab merge`: a pair merged into a new folder, from flags or from a
//! recipe, with the recipe (and optionally a mergekit YAML) written beside;
//! and the writing step `tune --out` shares.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use qklab::app::merge::{merge_pair, plan_sources, spec_of_recipe};
use qklab::checkpoint::Checkpoint;
use qklab::config::arch_of;
use qklab::merge::plan::Merge;
use qklab::merge::{MergeSpec, Method};
use qklab::safetensors::Dtype;
use qklab::source::{block_on, FsSource};
use qklab::units::human_bytes;
use qklab::writer::write_to_dir;
use qklab::{Error, Result};

#[derive(Args)]
pub struct MergeArgs {
    /// The checkpoint from before SFT.
    #[arg(long)]
    pub pre: PathBuf,
    /// The fine-tuned checkpoint.
    #[arg(long)]
    pub sft: PathBuf,
    /// qk-restore (default), q-restore, k-restore, v-restore or qk-pro.
    #[arg(long, conflicts_with = "recipe")]
    pub method: Option<String>,
    /// Blend: W = W_sft + alpha (W_pre - W_sft); 1 restores.
    #[arg(long, conflicts_with = "recipe")]
    pub alpha: Option<f32>,
    /// QK-Pro strength.
    #[arg(long, conflicts_with = "recipe")]
    pub beta: Option<f32>,
    /// Softmax layers to touch, e.g. 2,3,6 (default: all of a hybrid's;
    /// a pure softmax model needs them named, or --ranking).
    #[arg(long, value_delimiter = ',', conflicts_with = "recipe")]
    pub layers: Option<Vec<usize>>,
    /// Touch the top layers of a `qklab layers --json` ranking.
    #[arg(long, conflicts_with_all = ["recipe", "layers"])]
    pub ranking: Option<PathBuf>,
    /// Also take q_norm / k_norm from pre.
    #[arg(long, alias = "restore-qk-norms", conflicts_with = "recipe")]
    pub include_norms: bool,
    /// Qwen3.5: also take q_proj's output-gate rows from pre (by default
    /// only its query rows are restored; the gate rows stay sft's).
    #[arg(long, conflicts_with = "recipe")]
    pub restore_gate_rows: bool,
    /// Re-run the merge a recipe describes (the sources must match its fingerprints).
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    /// Write the recipe of this merge here (it is also in the output's metadata and folder).
    #[arg(long)]
    pub recipe_out: Option<PathBuf>,
    /// Write an equivalent mergekit YAML here (copy-only methods and blends
    /// of whole tensors: not QK-Pro, not Qwen3.5's query rows alone).
    #[arg(long)]
    pub mergekit_out: Option<PathBuf>,
    /// A new or empty folder.
    #[arg(long)]
    pub out: PathBuf,
}

impl MergeArgs {
    /// The merge the flags or the recipe ask for.
    fn spec(&self, pre: &Checkpoint<FsSource>, sft: &Checkpoint<FsSource>) -> Result<MergeSpec> {
        if let Some(path) = &self.recipe {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
            return block_on(spec_of_recipe(&text, pre, sft));
        }
        Ok(MergeSpec {
            method: Method::parse(self.method.as_deref().unwrap_or("qk-restore"))?,
            alpha: self.alpha.unwrap_or(1.0),
            beta: self.beta.unwrap_or(1.0),
            layers: match &self.ranking {
                Some(path) => Some(super::layers::top_of_report(path, &arch_of(pre)?)?),
                None => self.layers.clone(),
            },
            include_norms: self.include_norms,
            restore_gate_rows: self.restore_gate_rows,
        })
    }
}

pub fn run(a: MergeArgs) -> Result<()> {
    let (pre, sft) = (
        super::open_checkpoint(&a.pre)?,
        super::open_checkpoint(&a.sft)?,
    );
    let spec = a.spec(&pre, &sft)?;
    let started = Instant::now();
    let merge = merge_to_dir(&pre, &sft, &spec, &a.out)?;
    let plan = &merge.plan;
    if let Some(path) = &a.recipe_out {
        std::fs::write(path, merge.recipe.to_json()).map_err(|e| Error::io(path.display(), e))?;
    }
    if let Some(path) = &a.mergekit_out {
        let dtype = match sft.tensors.first().map(|t| t.dtype) {
            Some(Dtype::F16) => "float16",
            Some(Dtype::F32) => "float32",
            _ => "bfloat16",
        };
        let yaml = merge.recipe.to_mergekit_yaml(
            &a.pre.display().to_string(),
            &a.sft.display().to_string(),
            dtype,
        )?;
        std::fs::write(path, yaml).map_err(|e| Error::io(path.display(), e))?;
    }
    for r in merge.recipe.restored.iter().filter(|r| r.rows.is_some()) {
        println!("restored {}", r.statement());
    }
    // Headers, fingerprint samples and decoded tensors, plus every copied range.
    let read = pre.bytes_read() + sft.bytes_read() + plan.copied_bytes();
    println!(
        "{}: {} tensors from pre ({}), wrote {} ({} copied), read {} in {:.2} s -> {}",
        merge.recipe.spec.method.name(),
        merge.changed.len(),
        if spec.is_copy_only() {
            "byte ranges, nothing decoded"
        } else {
            "recomputed"
        },
        human_bytes(plan.total_bytes()),
        human_bytes(plan.copied_bytes()),
        human_bytes(read),
        started.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}

/// Plans the merge of `spec`, writes it into `out` (a new or empty folder)
/// and verifies what was written; notes go to stderr.
pub fn merge_to_dir(
    pre: &Checkpoint<FsSource>,
    sft: &Checkpoint<FsSource>,
    spec: &MergeSpec,
    out: &Path,
) -> Result<Merge> {
    let merge = block_on(merge_pair(pre, sft, spec, &mut |_, _| {}))?;
    for note in &merge.notes {
        eprintln!("note: {note}");
    }
    let mut progress = super::Progress::new("writing", true);
    let written = block_on(write_to_dir(
        &merge.plan,
        &plan_sources(pre, sft),
        out,
        |d, t| progress.update(d, t),
    ));
    progress.finish();
    written?;
    Ok(merge)
}
