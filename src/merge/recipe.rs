//! Recipes: a JSON file that says how a merged checkpoint was made, and
//! re-runs it; plus the equivalent mergekit YAML for what mergekit can do.

use serde::{Deserialize, Serialize};

use super::rows::Restored;
use super::{MergeSpec, Method};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::names::LayerNames;
use crate::source::ByteSource;
use crate::writer::SourceFingerprint;

/// The recipe's name inside a merged folder.
pub const RECIPE_FILE: &str = "qklab-recipe.json";

/// Bumped when the recipe's meaning changes.
pub const RECIPE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub qklab_recipe: u32,
    pub tool: String,
    #[serde(flatten)]
    pub spec: MergeSpec,
    /// Fingerprints of pre and sft (roles "pre", "sft").
    pub sources: Vec<SourceFingerprint>,
    /// What the merge took from pre, tensor by tensor, with the rows where
    /// it took only some (Qwen3.5's q_proj). Written by a merge; a replay
    /// recomputes it from the spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restored: Vec<Restored>,
}

impl Recipe {
    pub async fn new<S: ByteSource>(
        spec: MergeSpec,
        pre: &Checkpoint<S>,
        sft: &Checkpoint<S>,
    ) -> Result<Self> {
        Ok(Recipe {
            qklab_recipe: RECIPE_VERSION,
            tool: format!("qklab {}", env!("CARGO_PKG_VERSION")),
            spec,
            sources: vec![
                SourceFingerprint::of("pre", pre).await?,
                SourceFingerprint::of("sft", sft).await?,
            ],
            restored: Vec::new(),
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("recipe serializes")
    }

    pub fn from_json(text: &str) -> Result<Recipe> {
        let r: Recipe =
            serde_json::from_str(text).map_err(|e| Error::Usage(format!("invalid recipe: {e}")))?;
        if r.qklab_recipe != RECIPE_VERSION {
            return Err(Error::Usage(format!(
                "recipe version {} is not {RECIPE_VERSION}: made by another qklab version ({})",
                r.qklab_recipe, r.tool
            )));
        }
        r.spec.validate()?;
        Ok(r)
    }

    /// Checks that `pre` and `sft` are the checkpoints the recipe was made
    /// from, listing every file that differs.
    pub async fn check_sources<S: ByteSource>(
        &self,
        pre: &Checkpoint<S>,
        sft: &Checkpoint<S>,
    ) -> Result<()> {
        let mut problems = Vec::new();
        for now in [
            SourceFingerprint::of("pre", pre).await?,
            SourceFingerprint::of("sft", sft).await?,
        ] {
            let Some(then) = self.sources.iter().find(|s| s.role == now.role) else {
                problems.push(format!("the recipe has no fingerprint for {}", now.role));
                continue;
            };
            if then.files != now.files {
                let short = |h: &str| h.chars().take(12).collect::<String>();
                let names = |f: &SourceFingerprint| {
                    let files = f.files.iter().map(|x| {
                        format!(
                            "{} ({} bytes, header {}, data sample {})",
                            x.name,
                            x.size,
                            short(&x.header_sha256),
                            short(&x.sample_sha256)
                        )
                    });
                    files.collect::<Vec<_>>().join(", ")
                };
                problems.push(format!(
                    "{}: the recipe was made from {}, but this is {}",
                    now.role,
                    names(then),
                    names(&now)
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::RecipeMismatch { problems })
        }
    }

    /// The same merge as a mergekit `linear` config, where mergekit can
    /// express it (copy-only methods and alpha blends, not QK-Pro).
    pub fn to_mergekit_yaml(&self, pre_path: &str, sft_path: &str, dtype: &str) -> Result<String> {
        if self.spec.method == Method::QkPro {
            return Err(Error::Usage("mergekit cannot express QK-Pro (it needs a least-squares solve): use the JSON recipe".into()));
        }
        if let Some(r) = self.restored.iter().find(|r| r.rows.is_some()) {
            return Err(Error::Usage(format!(
                "mergekit cannot express this merge: it restores only some rows of {} ({}), and mergekit weighs whole tensors; \
                 use the JSON recipe, or restore the gate rows too (--restore-gate-rows) to take q_proj whole",
                r.tensor,
                r.note.as_deref().unwrap_or("a row range")
            )));
        }
        let layers = self.spec.layers.clone().unwrap_or_default();
        let mut names = Vec::new();
        if !self.restored.is_empty() {
            // The merge's own list names the tensors as this checkpoint does
            // (Qwen3.5's wrapper nests them); biases stay unlisted, as below.
            names.extend(
                self.restored
                    .iter()
                    .map(|r| r.tensor.clone())
                    .filter(|n| !n.ends_with(".bias")),
            );
        }
        for l in layers.into_iter().filter(|_| self.restored.is_empty()) {
            let layer_names = LayerNames::of(l);
            for &p in self.spec.method.projections() {
                names.push(layer_names.proj(p).weight.clone());
                if let Some(norm) = layer_names.norm_of(p).filter(|_| self.spec.include_norms) {
                    names.push(norm.to_string());
                }
            }
        }
        let alpha = self.spec.alpha;
        let weights = |inside: f32, outside: f32| {
            let mut s = String::new();
            for n in &names {
                s.push_str(&format!(
                    "          - filter: \"{n}\"\n            value: {inside}\n"
                ));
            }
            s.push_str(&format!("          - value: {outside}\n"));
            s
        };
        let q = |s: &str| serde_json::to_string(s).expect("string");
        Ok(format!(
            "# mergekit config equivalent to this qklab recipe ({method}, alpha {alpha}), made by {tool}.\n\
             # Filters are substring matches where the first match wins, so every tensor is named in full\n\
             # (\"layers.1.\" would also hit layers 10-19). Biases, if the model has them, are not listed.\n\
             #\n\
             # Measured with mergekit 0.1.5: it refuses `model_type: hypenet`. Relabelled as qwen3 in both\n\
             # config.json files it runs, but silently drops every o_gate, z_proj and o_norm tensor, so its\n\
             # output is NOT a working HypeNet. Prefer `qklab merge --recipe`, which keeps every tensor.\n\
             merge_method: linear\n\
             dtype: {dtype}\n\
             parameters:\n  normalize: false\n\
             models:\n\
             \x20 - model: {pre}\n    parameters:\n      weight:\n{wpre}\
             \x20 - model: {sft}\n    parameters:\n      weight:\n{wsft}",
            method = self.spec.method.name(),
            tool = self.tool,
            pre = q(pre_path),
            sft = q(sft_path),
            wpre = weights(alpha, 0.0),
            wsft = weights(1.0 - alpha, 1.0),
        ))
    }
}
