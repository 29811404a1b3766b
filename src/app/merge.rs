//! Merging a pair: the settings (from a form, flags or a recipe), the
//! plan, and the inputs in the order the plan reads them. Where the
//! output goes (a folder, browser Blobs) is the face's business; both
//! verify what they wrote against the plan.

use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::merge::plan::{plan_merge, Merge};
use crate::merge::recipe::Recipe;
use crate::merge::{MergeSpec, PRE, SFT};
use crate::source::ByteSource;

/// The merge's steps, for a progress bar: the face opens the inputs
/// (step 0), [`merge_pair`] plans (step 1), the face writes and verifies
/// (step 2); `step(i, what)` is called as step i begins.
pub const MERGE_STEPS: u32 = 3;

/// The spec a recipe names, once `pre` and `sft` are shown to be the
/// checkpoints it was made from.
pub async fn spec_of_recipe<S: ByteSource>(
    recipe_json: &str,
    pre: &Checkpoint<S>,
    sft: &Checkpoint<S>,
) -> Result<MergeSpec> {
    let recipe = Recipe::from_json(recipe_json)?;
    recipe.check_sources(pre, sft).await?;
    Ok(recipe.spec)
}

/// Plans the merge of `pre` into `sft` (step 1 of [`MERGE_STEPS`]).
pub async fn merge_pair<S: ByteSource>(
    pre: &Checkpoint<S>,
    sft: &Checkpoint<S>,
    spec: &MergeSpec,
    step: &mut dyn FnMut(u32, &str),
) -> Result<Merge> {
    step(1, "planning the output (QK-Pro computes its tensors here)");
    plan_merge(pre, sft, spec).await
}

/// The plan's inputs in the order its parts number them.
pub fn plan_sources<'a, S: ByteSource>(
    pre: &'a Checkpoint<S>,
    sft: &'a Checkpoint<S>,
) -> [&'a S; 2] {
    let mut out = [sft.source(); 2];
    out[SFT] = sft.source();
    out[PRE] = pre.source();
    out
}
