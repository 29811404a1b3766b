//! Turning a [`MergeSpec`] into an output plan over (sft, pre).

use std::sync::Arc;

use super::compat::check_pair;
use super::qkpro::{qk_pro, QkShape};
use super::recipe::{Recipe, RECIPE_FILE};
use super::rows::{gated_rows, put_rows, take_rows, Restored};
use super::{MergeSpec, Method, PRE, SFT};
use crate::checkpoint::{Checkpoint, TensorEntry};
use crate::config::{Arch, Mixer};
use crate::error::{Error, Result};
use crate::safetensors::encode_f32;
use crate::source::ByteSource;
use crate::writer::{OutputFile, OutputPlan, Part, PlanBuilder, Provenance, TensorData};
use std::ops::Range;

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
        return Ok(arch.full_attention_layers());
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
        let kind = match arch.mixers[l] {
            Mixer::Softmax => continue,
            Mixer::Lightning => "a Lightning layer",
            Mixer::GatedDelta => "a gated-delta (linear_attention) layer",
            Mixer::Jet => {
                "a JetBlock (its q_proj and k_proj feed the gated delta rule, not softmax routing)"
            }
        };
        return Err(Error::Usage(format!(
            "layer {l} is {kind}: {} restores the query and key projections of softmax layers only \
             (they route over the whole context); the softmax layers are {softmax:?}",
            spec.method.name()
        )));
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
    /// What each replaced tensor took from pre, rows included (in the same order).
    pub restored: Vec<Restored>,
    /// Things the user should know (a singular Gram matrix, …).
    pub notes: Vec<String>,
}

/// `ranges` of a tensor's rows from `from`, every other row from `rest`,
/// as byte ranges of the two inputs: nothing decoded, every byte kept.
fn splice_rows<S: ByteSource>(
    from: (&Checkpoint<S>, usize),
    rest: (&Checkpoint<S>, usize),
    name: &str,
    ranges: &[Range<u64>],
) -> Result<TensorData> {
    let (a, b) = (entry(from.0, name)?, entry(rest.0, name)?);
    let rows = a.shape.first().copied().unwrap_or(1).max(1);
    let row_bytes = (a.end - a.start) / rows;
    let range = |ck: &Checkpoint<S>, e: &TensorEntry, source: usize, r: Range<u64>| Part::Range {
        source,
        file: ck.shard_of(e).file.name.clone(),
        start: e.start + r.start * row_bytes,
        end: e.start + r.end * row_bytes,
    };
    let mut parts = Vec::new();
    let mut at = 0;
    for r in ranges {
        if r.start > at {
            parts.push(range(rest.0, b, rest.1, at..r.start));
        }
        parts.push(range(from.0, a, from.1, r.clone()));
        at = r.end;
    }
    if at < rows {
        parts.push(range(rest.0, b, rest.1, at..rows));
    }
    Ok(TensorData::Parts(parts))
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
    if spec.restore_gate_rows && !arch.attn_gate_in_q {
        return Err(Error::Usage(format!(
            "restoring the gate rows applies to Qwen3.5, whose q_proj holds its output gate's rows; {} has none",
            arch.family.name()
        )));
    }
    let (heads, head_dim) = (arch.attn.heads, arch.attn.head_dim);
    // Qwen3.5's q_proj rows that route (the queries) and those that gate the output.
    let query_rows = gated_rows(heads, head_dim, false);
    let gate_rows = gated_rows(heads, head_dim, true);
    let d = arch.hidden_size as usize;
    let mut tensors = Vec::new();
    let mut restored = Vec::new();
    let mut notes: Vec<String> = layers
        .iter()
        .filter_map(|&l| {
            arch.window(l).map(|w| {
                format!(
                    "layer {l} is a sliding-window layer: its queries reach only the last {w} tokens, so restoring it changes routing within that window only"
                )
            })
        })
        .collect();

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
            let is_q = name == layer_names.q.weight;
            // Only the query rows change, unless the gate rows are asked for too.
            let partial = is_q && arch.attn_gate_in_q && !spec.restore_gate_rows;
            let data = if is_q && spec.method == Method::QkPro {
                let what = "QK-Pro";
                let q_sft = sft.read_tensor_f32(&name, what).await?;
                let q_pre = pre.read_tensor_f32(&name, what).await?;
                let k_pre = pre.read_tensor_f32(&layer_names.k.weight, what).await?;
                let shape = QkShape {
                    heads: heads as usize,
                    kv_heads: arch.attn.kv_heads as usize,
                    head_dim: head_dim as usize,
                    hidden: d,
                };
                // QK-Pro acts on the query rows; a gated q_proj's gate rows are sft's or pre's whole.
                let (q, grams) = if arch.attn_gate_in_q {
                    let (qs, qp) = (
                        take_rows(&q_sft, &query_rows, d),
                        take_rows(&q_pre, &query_rows, d),
                    );
                    let (q, grams) = qk_pro(&qs, &qp, &k_pre, shape, spec.beta as f64);
                    let mut out = if spec.restore_gate_rows { q_pre } else { q_sft };
                    put_rows(&mut out, &query_rows, d, &q);
                    (out, grams)
                } else {
                    qk_pro(&q_sft, &q_pre, &k_pre, shape, spec.beta as f64)
                };
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
            } else if spec.alpha == 1.0 && partial {
                splice_rows((pre, PRE), (sft, SFT), &name, &query_rows)?
            } else if spec.alpha == 1.0 {
                copy_from_pre(pre, &name)?
            } else if partial {
                let what = "a blend (alpha < 1)";
                let (p, s) = (
                    pre.read_tensor_f32(&name, what).await?,
                    sft.read_tensor_f32(&name, what).await?,
                );
                let mut out = s.clone();
                let (qp, qs) = (take_rows(&p, &query_rows, d), take_rows(&s, &query_rows, d));
                let q: Vec<f32> = qs
                    .iter()
                    .zip(&qp)
                    .map(|(s, p)| s + spec.alpha * (p - s))
                    .collect();
                put_rows(&mut out, &query_rows, d, &q);
                TensorData::Bytes(Arc::new(encode_f32(
                    &name,
                    entry(sft, &name)?.dtype,
                    &out,
                    what,
                )?))
            } else {
                blend(pre, sft, &name, spec.alpha).await?
            };
            restored.push(if partial {
                Restored::rows(
                    &name,
                    &query_rows,
                    format!(
                        "the query rows of {heads} heads of {head_dim}; the gate rows {} are sft's",
                        gate_rows
                            .iter()
                            .map(|r| format!("{}..{}", r.start, r.end))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            } else {
                Restored::whole(&name)
            });
            tensors.push((name, data));
        }
    }
    Ok(Replacements {
        layers,
        tensors,
        restored,
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
        restored,
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
    let mut recipe = Recipe::new(spec, pre, sft).await?;
    recipe.restored = restored;
    let mut params = serde_json::to_value(&recipe.spec).expect("spec serializes");
    // What was restored, rows included, for a reader of the header alone.
    params["restored"] = recipe
        .restored
        .iter()
        .map(Restored::statement)
        .collect::<Vec<_>>()
        .into();
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
