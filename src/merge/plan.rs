//! Turning a [`MergeSpec`] into an output plan over (sft, pre).

use std::sync::Arc;

use super::compat::check_pair;
use super::qkpro::{qk_pro, QkShape};
use super::recipe::{Recipe, RECIPE_FILE};
use super::{MergeSpec, Method, PRE, SFT};
use crate::checkpoint::{Checkpoint, TensorEntry};
use crate::config::{Arch, Mixer};
use crate::error::{Error, Result};
use crate::safetensors::encode_f32;
use crate::source::ByteSource;
use crate::writer::{OutputFile, OutputPlan, Part, PlanBuilder, Provenance, TensorData};

/// A planned merge: the output, the recipe that reproduces it, and what it did.
pub struct Merge {
    pub plan: OutputPlan,
    pub recipe: Recipe,
    /// Tensors whose output differs from sft's (taken or computed from pre).
    pub changed: Vec<String>,
    /// Things the user should know (a singular Gram matrix, …).
    pub notes: Vec<String>,
}

/// The softmax layers a spec touches, checked against the architecture.
/// A hybrid's default is all of its softmax layers; a pure softmax model
/// has no default short of its ranking (restoring every layer would undo
/// the fine-tune's attention wholesale), so it needs them named.
pub fn resolve_layers(spec: &MergeSpec, arch: &Arch) -> Result<Vec<usize>> {
    let softmax = arch.softmax_layers();
    let Some(layers) = &spec.layers else {
        if arch.is_pure_softmax() {
            return Err(Error::Usage(format!(
                "{} is a pure softmax-attention model ({} layers), so there is no default set of layers to restore: \
                 name them (--layers 3,7, or the page's Layers field), or take the top of a ranking \
                 (`qklab layers --json layers.json`, then --ranking layers.json; in the page, \"Find the retrieval layers\")",
                arch.family.name(),
                arch.num_layers()
            )));
        }
        return Ok(softmax);
    };
    let mut out = layers.clone();
    out.sort_unstable();
    out.dedup();
    for &l in &out {
        if l >= arch.num_layers() {
            return Err(Error::Usage(format!(
                "layer {l} does not exist (the model has {} layers)",
                arch.num_layers()
            )));
        }
        if arch.mixers[l] != Mixer::Softmax {
            return Err(Error::Usage(format!(
                "layer {l} is a Lightning layer; the softmax layers are {softmax:?}"
            )));
        }
    }
    Ok(out)
}

fn entry<'a, S: ByteSource>(ck: &'a Checkpoint<S>, name: &str) -> Result<&'a TensorEntry> {
    ck.tensor(name).ok_or_else(|| Error::NoSuchTensor {
        tensor: name.into(),
    })
}

fn copy_from_pre<S: ByteSource>(pre: &Checkpoint<S>, name: &str) -> Result<TensorData> {
    let e = entry(pre, name)?.clone();
    Ok(TensorData::Copy {
        source: PRE,
        file: pre.shard_of(&e).file.name.clone(),
        entry: e,
    })
}

/// W_sft + alpha (W_pre - W_sft) in f32, in the tensor's dtype.
async fn blend<S: ByteSource>(
    pre: &Checkpoint<S>,
    sft: &Checkpoint<S>,
    name: &str,
    alpha: f32,
) -> Result<TensorData> {
    let what = "a blend (alpha < 1)";
    let (p, s) = (
        pre.read_tensor_f32(name, what).await?,
        sft.read_tensor_f32(name, what).await?,
    );
    let out: Vec<f32> = s.iter().zip(&p).map(|(s, p)| s + alpha * (p - s)).collect();
    Ok(TensorData::Bytes(Arc::new(encode_f32(
        name,
        entry(sft, name)?.dtype,
        &out,
        what,
    )?)))
}

/// The tensors a spec takes or computes from pre, before any output is
/// planned: what a merged checkpoint holds in place of sft's, and what
/// `qklab tune` swaps into a loaded sft.
pub struct Replacements {
    /// The softmax layers touched, resolved and sorted.
    pub layers: Vec<usize>,
    /// Each replaced tensor's name and its new data, in the order computed.
    pub tensors: Vec<(String, TensorData)>,
    /// Things the user should know (a singular Gram matrix, …).
    pub notes: Vec<String>,
}

/// The replacements of `spec` for the pair (checked compatible).
pub async fn replacements<S: ByteSource>(
    pre: &Checkpoint<S>,
    sft: &Checkpoint<S>,
    spec: &MergeSpec,
) -> Result<Replacements> {
    spec.validate()?;
    let arch = check_pair(pre, sft)?;
    let layers = resolve_layers(spec, &arch)?;
    let mut tensors = Vec::new();
    let mut notes = Vec::new();

    for &layer in &layers {
        let layer_names = arch.layer_names(layer);
        let mut names = Vec::new();
        for &proj in spec.method.projections() {
            let linear = layer_names.proj(proj);
            names.push(linear.weight.clone());
            if sft.tensor(&linear.bias).is_some() {
                names.push(linear.bias.clone());
            }
            if let Some(norm) = layer_names.norm_of(proj).filter(|_| spec.include_norms) {
                names.push(norm.to_string());
            }
        }
        for name in names {
            let q_weight = spec.method == Method::QkPro && name == layer_names.q.weight;
            let data = if q_weight {
                let what = "QK-Pro";
                let q_sft = sft.read_tensor_f32(&name, what).await?;
                let q_pre = pre.read_tensor_f32(&name, what).await?;
                let k_pre = pre.read_tensor_f32(&layer_names.k.weight, what).await?;
                let shape = QkShape {
                    heads: arch.attn.heads as usize,
                    kv_heads: arch.attn.kv_heads as usize,
                    head_dim: arch.attn.head_dim as usize,
                    hidden: arch.hidden_size as usize,
                };
                let (q, grams) = qk_pro(&q_sft, &q_pre, &k_pre, shape, spec.beta as f64);
                for g in grams.iter().filter(|g| g.pseudo) {
                    notes.push(format!(
                        "layer {layer}, kv head {}: K_pre K_pre^T is singular (rank {} of {}): used its pseudo-inverse",
                        g.kv_head, g.rank, shape.head_dim
                    ));
                }
                TensorData::Bytes(Arc::new(encode_f32(
                    &name,
                    entry(sft, &name)?.dtype,
                    &q,
                    what,
                )?))
            } else if spec.alpha == 1.0 {
                copy_from_pre(pre, &name)?
            } else {
                blend(pre, sft, &name, spec.alpha).await?
            };
            tensors.push((name, data));
        }
    }
    Ok(Replacements {
        layers,
        tensors,
        notes,
    })
}

/// Plans the merge of `pre` into `sft` described by `spec`.
pub async fn plan_merge<S: ByteSource>(
    pre: &Checkpoint<S>,
    sft: &Checkpoint<S>,
    spec: &MergeSpec,
) -> Result<Merge> {
    let Replacements {
        layers,
        tensors,
        notes,
    } = replacements(pre, sft, spec).await?;
    let mut builder = PlanBuilder::new(sft, SFT);
    let mut changed = Vec::new();
    for (name, data) in tensors {
        builder.replace(&name, data)?;
        changed.push(name);
    }

    let spec = MergeSpec {
        layers: Some(layers),
        ..spec.clone()
    };
    let recipe = Recipe::new(spec, pre, sft).await?;
    let params = serde_json::to_value(&recipe.spec).expect("spec serializes");
    let provenance = Provenance::new(recipe.spec.method.name(), params, recipe.sources.clone());
    let mut plan = builder.build(&provenance)?;
    // The recipe travels with the output; one carried over from an earlier merge is replaced.
    plan.files.retain(|f| f.name != RECIPE_FILE);
    plan.files.push(OutputFile {
        name: RECIPE_FILE.into(),
        parts: vec![Part::Bytes(Arc::new(recipe.to_json().into_bytes()))],
        tensors: None,
    });
    Ok(Merge {
        plan,
        recipe,
        changed,
        notes,
    })
}
