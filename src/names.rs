//! Tensor names: the one place that knows how a checkpoint names its
//! weights (SPEC-hypenet, "Tensor names and shapes"; SPEC-gdn for the
//! gated delta rule's and Qwen3.5's wrapper). The CPU reference, the GPU
//! engine, the architecture check, the merge plan and drift all ask here,
//! so a family with other names needs one change.

use serde::{Deserialize, Serialize};

pub const EMBED: &str = "model.embed_tokens.weight";
pub const FINAL_NORM: &str = "model.norm.weight";
pub const LM_HEAD: &str = "lm_head.weight";

/// What every layer's tensor names start with, before the layer index.
pub const LAYER_PREFIX: &str = "model.layers.";
/// The same inside Qwen3.5's vision-language wrapper.
const WRAPPED_LAYER_PREFIX: &str = "model.language_model.layers.";
/// Between a layer's index and the leaf of its attention tensors.
const ATTN: &str = ".self_attn.";
/// Between a layer's index and the leaf of its gated-delta tensors.
const LINEAR_ATTN: &str = ".linear_attn.";

/// Where a checkpoint keeps its text model's tensors: under `model.`, or
/// under `model.language_model.` in Qwen3.5's vision-language wrapper
/// (whose `model.visual.*` tensors the text model does not use). The LM
/// head is `lm_head.weight` in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Root {
    #[default]
    Plain,
    Wrapped,
}

impl Root {
    fn model(self) -> &'static str {
        match self {
            Root::Plain => "model.",
            Root::Wrapped => "model.language_model.",
        }
    }

    pub fn embed(self) -> String {
        format!("{}embed_tokens.weight", self.model())
    }

    pub fn final_norm(self) -> String {
        format!("{}norm.weight", self.model())
    }

    pub fn layer_prefix(self) -> &'static str {
        match self {
            Root::Plain => LAYER_PREFIX,
            Root::Wrapped => WRAPPED_LAYER_PREFIX,
        }
    }
}

/// The wrapper's vision tower: carried through a merge, never computed with.
pub fn is_vision(name: &str) -> bool {
    name.starts_with("model.visual.")
}

/// The projections of a layer's attention block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proj {
    Q,
    K,
    V,
    O,
}

impl Proj {
    /// "q", "k", "v", "o": the letter in `{p}_proj`.
    pub fn letter(self) -> &'static str {
        match self {
            Proj::Q => "q",
            Proj::K => "k",
            Proj::V => "v",
            Proj::O => "o",
        }
    }
}

/// A linear map's weight and the name its bias has where a model has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linear {
    pub weight: String,
    pub bias: String,
}

/// Every name a layer's tensors can have; which of them a checkpoint
/// holds depends on the layer's mixer and the config
/// ([`crate::config::Arch::layer_tensors`] says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerNames {
    pub input_norm: String,
    pub post_norm: String,
    pub mlp_gate: String,
    pub mlp_up: String,
    pub mlp_down: String,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub q_norm: String,
    pub k_norm: String,
    /// The softmax layer's sigmoid output gate.
    pub o_gate: String,
    /// The Lightning layer's output RMSNorm and its gate.
    pub o_norm: String,
    pub z_proj: String,
    /// A gated-delta layer's tensors (Qwen3.5's `linear_attn.*`).
    pub gdn: GdnNames,
    /// A JetBlock's tensors beside its q/k/v/o projections and `o_norm`
    /// (Jet-Nemotron keeps them all under `self_attn.*`).
    pub jet: JetNames,
}

/// The tensors of a Jet-Nemotron JetBlock (SPEC-gdn, "JetBlock") that
/// [`LayerNames`] has no other name for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetNames {
    /// beta's and the decay's projections, `[nh, D]` each.
    pub b_proj: String,
    pub a_proj: String,
    pub a_log: String,
    pub dt_bias: String,
    /// The dynamic convolution's kernel generator, `W2 silu(W1 x) + b2`:
    /// `w1` is `[C / reduction, D]`, `w2` `[C * W, C / reduction]`.
    pub gen_w1: String,
    pub gen_w2: String,
    pub gen_b2: String,
    /// The output gate z, `[nh dv, D]`.
    pub g_proj: String,
}

/// The tensors of a Qwen3.5 gated-delta layer (SPEC-gdn, "GDN layer").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GdnNames {
    /// q, k and v rows, `[2 nk dk + nv dv, D]`.
    pub in_qkv: String,
    /// The depthwise causal convolution over q, k, v, `[C, 1, K]`.
    pub conv: String,
    /// The output gate z, `[nv dv, D]`.
    pub in_z: String,
    /// beta's and the decay's projections, `[nv, D]` each.
    pub in_b: String,
    pub in_a: String,
    pub a_log: String,
    pub dt_bias: String,
    /// The gated RMSNorm over each value head, `[dv]`.
    pub norm: String,
    pub out: String,
}

/// A tensor of layer `layer`'s attention block by its leaf name
/// (`"q_proj.weight"`, `"o_gate.weight"`); [`attn_leaf`] is its inverse.
pub fn attn_tensor(layer: usize, leaf: &str) -> String {
    format!("{LAYER_PREFIX}{layer}{ATTN}{leaf}")
}

/// The leaf of an attention tensor's name (`"q_norm.weight"`), as
/// messages quote it; other names come back whole.
pub fn attn_leaf(name: &str) -> &str {
    name.split_once(ATTN).map_or(name, |(_, leaf)| leaf)
}

impl LayerNames {
    /// Layer `layer`'s names in a plain (unwrapped) checkpoint.
    pub fn of(layer: usize) -> LayerNames {
        LayerNames::at(Root::Plain, layer)
    }

    pub fn at(root: Root, layer: usize) -> LayerNames {
        let prefix = root.layer_prefix();
        let p = |s: &str| format!("{prefix}{layer}.{s}");
        let a = |leaf: &str| format!("{prefix}{layer}{ATTN}{leaf}");
        let g = |leaf: &str| format!("{prefix}{layer}{LINEAR_ATTN}{leaf}");
        let linear = |proj: Proj| Linear {
            weight: a(&format!("{}_proj.weight", proj.letter())),
            bias: a(&format!("{}_proj.bias", proj.letter())),
        };
        LayerNames {
            input_norm: p("input_layernorm.weight"),
            post_norm: p("post_attention_layernorm.weight"),
            mlp_gate: p("mlp.gate_proj.weight"),
            mlp_up: p("mlp.up_proj.weight"),
            mlp_down: p("mlp.down_proj.weight"),
            q: linear(Proj::Q),
            k: linear(Proj::K),
            v: linear(Proj::V),
            o: linear(Proj::O),
            q_norm: a("q_norm.weight"),
            k_norm: a("k_norm.weight"),
            o_gate: a("o_gate.weight"),
            o_norm: a("o_norm.weight"),
            z_proj: a("z_proj.weight"),
            gdn: GdnNames {
                in_qkv: g("in_proj_qkv.weight"),
                conv: g("conv1d.weight"),
                in_z: g("in_proj_z.weight"),
                in_b: g("in_proj_b.weight"),
                in_a: g("in_proj_a.weight"),
                a_log: g("A_log"),
                dt_bias: g("dt_bias"),
                norm: g("norm.weight"),
                out: g("out_proj.weight"),
            },
            jet: JetNames {
                b_proj: a("b_proj.weight"),
                a_proj: a("a_proj.weight"),
                a_log: a("A_log"),
                dt_bias: a("dt_bias"),
                gen_w1: a("dynamic_conv1d.kernel_generator.w1.weight"),
                gen_w2: a("dynamic_conv1d.kernel_generator.w2.weight"),
                gen_b2: a("dynamic_conv1d.kernel_generator.w2.bias"),
                g_proj: a("g_proj.weight"),
            },
        }
    }

    pub fn proj(&self, p: Proj) -> &Linear {
        match p {
            Proj::Q => &self.q,
            Proj::K => &self.k,
            Proj::V => &self.v,
            Proj::O => &self.o,
        }
    }

    /// The per-head RMSNorm applied after projection `p` (q and k only).
    pub fn norm_of(&self, p: Proj) -> Option<&str> {
        match p {
            Proj::Q => Some(&self.q_norm),
            Proj::K => Some(&self.k_norm),
            Proj::V | Proj::O => None,
        }
    }
}

/// What a tensor of a layer does, read off its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    InputNorm,
    PostNorm,
    /// One of the three MLP matrices.
    Mlp,
    ProjWeight(Proj),
    ProjBias(Proj),
    QNorm,
    KNorm,
    OGate,
    ONorm,
    ZProj,
}

/// The root and layer of a layer's tensor.
fn root_and_layer(name: &str) -> Option<(Root, usize)> {
    let (root, rest) = [Root::Plain, Root::Wrapped]
        .into_iter()
        .find_map(|r| Some((r, name.strip_prefix(r.layer_prefix())?)))?;
    Some((root, rest.split('.').next()?.parse().ok()?))
}

/// The layer a tensor belongs to, if it is a layer's.
pub fn layer_of(name: &str) -> Option<usize> {
    root_and_layer(name).map(|(_, l)| l)
}

/// The layer and role of a tensor named as [`LayerNames`] names them;
/// `None` for model-level tensors and names this schema does not know.
pub fn role_of(name: &str) -> Option<(usize, Role)> {
    let (root, layer) = root_and_layer(name)?;
    let n = LayerNames::at(root, layer);
    let role = [
        (&n.input_norm, Role::InputNorm),
        (&n.post_norm, Role::PostNorm),
        (&n.mlp_gate, Role::Mlp),
        (&n.mlp_up, Role::Mlp),
        (&n.mlp_down, Role::Mlp),
        (&n.q_norm, Role::QNorm),
        (&n.k_norm, Role::KNorm),
        (&n.o_gate, Role::OGate),
        (&n.o_norm, Role::ONorm),
        (&n.z_proj, Role::ZProj),
    ]
    .into_iter()
    .find(|(s, _)| s.as_str() == name)
    .map(|(_, r)| r)
    .or_else(|| {
        [Proj::Q, Proj::K, Proj::V, Proj::O]
            .into_iter()
            .find_map(|p| {
                let l = n.proj(p);
                (l.weight == name)
                    .then_some(Role::ProjWeight(p))
                    .or((l.bias == name).then_some(Role::ProjBias(p)))
            })
    })?;
    Some((layer, role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_as_their_roles() {
        let n = LayerNames::of(7);
        assert_eq!(n.q.weight, "model.layers.7.self_attn.q_proj.weight");
        assert_eq!(n.o.bias, "model.layers.7.self_attn.o_proj.bias");
        assert_eq!(n.mlp_down, "model.layers.7.mlp.down_proj.weight");
        assert_eq!(role_of(&n.k.weight), Some((7, Role::ProjWeight(Proj::K))));
        assert_eq!(role_of(&n.v.bias), Some((7, Role::ProjBias(Proj::V))));
        assert_eq!(role_of(&n.z_proj), Some((7, Role::ZProj)));
        assert_eq!(role_of(&n.mlp_up), Some((7, Role::Mlp)));
        assert_eq!(role_of(EMBED), None);
        assert_eq!(role_of("model.layers.7.self_attn.rotary.inv_freq"), None);
        assert_eq!(layer_of("model.layers.12.mlp.up_proj.weight"), Some(12));
        assert_eq!(layer_of("model.layersX.1"), None);
    }

    #[test]
    fn wrapped_names_read_back_like_plain_ones() {
        let n = LayerNames::at(Root::Wrapped, 3);
        assert_eq!(
            n.q.weight,
            "model.language_model.layers.3.self_attn.q_proj.weight"
        );
        assert_eq!(
            n.gdn.conv,
            "model.language_model.layers.3.linear_attn.conv1d.weight"
        );
        assert_eq!(role_of(&n.k.weight), Some((3, Role::ProjWeight(Proj::K))));
        assert_eq!(layer_of(&n.gdn.a_log), Some(3));
        assert_eq!(
            Root::Wrapped.embed(),
            "model.language_model.embed_tokens.weight"
        );
        assert!(is_vision("model.visual.blocks.0.attn.qkv.weight"));
        assert_eq!(layer_of("model.visual.blocks.0.attn.qkv.weight"), None);
    }

    #[test]
    fn attention_leaves_read_off_full_names() {
        assert_eq!(attn_leaf(&LayerNames::of(3).q_norm), "q_norm.weight");
        assert_eq!(attn_leaf(&attn_tensor(0, "o_gate.weight")), "o_gate.weight");
        assert_eq!(attn_leaf(EMBED), EMBED);
    }
}
