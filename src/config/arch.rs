//! The architecture the engines and the merge work from: resolved from a
//! parsed config per family, and the tensors it expects (names and
//! shapes), checked against a checkpoint's.

use std::collections::BTreeMap;

use serde::Serialize;

use super::mirror::{cfg_err, Family, HypeNetConfig, LightningScale, LogitsScaling, RopeScaling};
use crate::checkpoint::TensorEntry;
use crate::error::Result;
use crate::names::{self, LayerNames, Root};

/// How a layer mixes tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mixer {
    Softmax,
    Lightning,
    /// The gated delta rule (Gated DeltaNet; SPEC-gdn), Qwen3.5's linear layers.
    #[serde(rename = "gated_delta")]
    GatedDelta,
    /// Jet-Nemotron's JetBlock (SPEC-gdn): SiLU q and k, v through a
    /// dynamic convolution whose kernel each token generates, then the
    /// gated delta rule.
    Jet,
}

/// Head layout of one kind of mixer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Heads {
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
}

/// Sizes of a gated-delta layer (SPEC-gdn): `key_heads` query/key heads
/// of `key_dim`, `value_heads` value heads of `value_dim` (value head j
/// reads key head `j / (value_heads / key_heads)`), and the depthwise
/// causal convolution's kernel over q, k and v. A JetBlock has as many
/// value heads as key heads, convolves v only, with a kernel generated
/// per token through `generator` hidden units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct GdnShape {
    pub key_heads: u64,
    pub value_heads: u64,
    pub key_dim: u64,
    pub value_dim: u64,
    pub conv_kernel: u64,
    /// The dynamic convolution's generator width (`value_width /
    /// dconv_generator_reduction`); 0 for Qwen3.5's static convolution.
    pub generator: u64,
}

impl Heads {
    /// Refuses a layout no mixer can run: sizes of zero, or query heads
    /// that kv heads do not divide (`what` names the mixer).
    fn check(&self, what: &str) -> Result<()> {
        if self.heads == 0
            || self.kv_heads == 0
            || self.head_dim == 0
            || self.heads % self.kv_heads != 0
        {
            return Err(cfg_err(format!(
                "{what} heads {} / kv heads {} / head dim {}: heads must be a positive multiple of kv heads",
                self.heads, self.kv_heads, self.head_dim
            )));
        }
        Ok(())
    }
}

impl GdnShape {
    /// Channels of Qwen3.5's convolution: q, k and v side by side.
    pub fn conv_channels(&self) -> u64 {
        2 * self.key_heads * self.key_dim + self.value_heads * self.value_dim
    }

    pub fn key_width(&self) -> u64 {
        self.key_heads * self.key_dim
    }

    pub fn value_width(&self) -> u64 {
        self.value_heads * self.value_dim
    }
}

/// The architecture the engine and the merge work from, resolved from a
/// config or inferred from tensors. `guesses` lists every value that did
/// not come from a config file, for the user to see.
#[derive(Debug, Clone, Serialize)]
pub struct Arch {
    pub vocab_size: u64,
    pub hidden_size: u64,
    pub intermediate_size: u64,
    /// The config's mixer string of each layer ("attn", "lightning-attn", …).
    pub mixer_names: Vec<String>,
    pub mixers: Vec<Mixer>,
    pub attn: Heads,
    pub lightning: Heads,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub attn_use_rope: bool,
    pub lightning_use_rope: bool,
    pub attn_use_output_gate: bool,
    pub logits_scaling: LogitsScaling,
    pub lightning_use_qk_norm: bool,
    pub lightning_use_output_norm: bool,
    pub lightning_use_output_gate: bool,
    pub lightning_scale: LightningScale,
    /// Biases on q, k and v (HypeNet's and Llama's `attention_bias`, Qwen2 always).
    pub attention_bias: bool,
    /// A bias on o as well (`attention_bias` except in Qwen2).
    pub o_bias: bool,
    /// Per-head RMSNorm of queries and keys in softmax layers (HypeNet, Qwen3).
    pub attn_use_qk_norm: bool,
    pub rope_scaling: RopeScaling,
    /// The share of each softmax head's dims that RoPE rotates (the first
    /// ones): Qwen3.5's `partial_rotary_factor`, 1 elsewhere.
    pub rope_fraction: f64,
    /// Every RMSNorm but the gated one scales by `1 + w` (Qwen3.5's
    /// zero-centred weights); the engines read such weights as `1 + w`.
    pub norm_plus_one: bool,
    /// The softmax layers' output gate sits in `q_proj`: per head, the
    /// query rows, then as many gate rows (Qwen3.5's gated attention).
    pub attn_gate_in_q: bool,
    /// Sizes of the gated-delta layers or the JetBlocks (a family has one
    /// or the other, or neither).
    pub gdn: GdnShape,
    /// The epsilon of their gated output norm: the layers' own in Qwen3.5,
    /// the JetBlock's `norm_eps` in Jet-Nemotron.
    pub gdn_norm_eps: f64,
    /// Each layer's sliding window (Jet-Nemotron's `swa` layers): a query
    /// at position i attends to keys at positions in (i - w, i]. `None`
    /// for every other layer.
    pub windows: Vec<Option<u64>>,
    /// Where the text model's tensors live (Qwen3.5's wrapper nests them).
    pub root: Root,
    pub family: Family,
    pub tie_word_embeddings: bool,
    pub from_config: bool,
    pub guesses: Vec<String>,
}

impl Mixer {
    /// The name a config's `mixer_types` gives this mixer (the spelling
    /// HypeNet writes; [`mixer_of`] also reads "lightning_attn").
    pub fn config_name(self) -> &'static str {
        match self {
            Mixer::Softmax => "attn",
            Mixer::Lightning => "lightning-attn",
            Mixer::GatedDelta => "linear_attention",
            Mixer::Jet => "jet",
        }
    }
}

fn mixer_of(name: &str) -> Option<Mixer> {
    match name {
        "attn" => Some(Mixer::Softmax),
        "lightning-attn" | "lightning_attn" => Some(Mixer::Lightning),
        _ => None,
    }
}

impl Arch {
    /// Values in the widest activation row the engines hold (hidden,
    /// MLP, or a mixer's heads side by side).
    pub fn widest(&self) -> u64 {
        let (a, l, g) = (&self.attn, &self.lightning, &self.gdn);
        let gate_in_q = if self.attn_gate_in_q { 2 } else { 1 };
        [
            self.hidden_size,
            self.intermediate_size,
            gate_in_q * a.heads * a.head_dim,
            l.heads * l.head_dim,
            g.conv_channels(),
            // A JetBlock's generated kernels, conv_kernel taps a channel.
            if g.generator > 0 {
                g.value_width() * g.conv_kernel
            } else {
                0
            },
            // The chunked gated delta rule's scratch (w and the chunk's
            // scores) lives in a pass buffer (GpuModel::spare).
            g.value_heads * (g.key_dim + 64),
        ]
        .into_iter()
        .max()
        .unwrap_or(1)
    }

    /// A HypeNet config (`model_type` "hypenet" or none); `has_lm_head`
    /// decides tying when the config is silent.
    pub(super) fn from_hypenet_config(c: &HypeNetConfig, has_lm_head: bool) -> Result<Arch> {
        let mut guesses = Vec::new();
        let layers = c.num_hidden_layers as usize;
        let mixer_names: Vec<String> = if c.mixer_types.is_empty() {
            vec![Mixer::Softmax.config_name().to_string(); layers]
        } else {
            c.mixer_types.clone()
        };
        if mixer_names.len() != layers {
            return Err(cfg_err(format!(
                "mixer_types has {} entries but num_hidden_layers is {}",
                mixer_names.len(),
                layers
            )));
        }
        let mut mixers = Vec::with_capacity(layers);
        for (i, m) in mixer_names.iter().enumerate() {
            mixers.push(mixer_of(m).ok_or_else(|| {
                cfg_err(format!(
                    "mixer_types[{i}] is {m:?}; expected \"attn\" or \"lightning-attn\""
                ))
            })?);
        }
        if c.lightning_use_short_conv == Some(true) {
            return Err(cfg_err("lightning_use_short_conv is true: the short convolution is not supported (no released HypeNet uses it)"));
        }
        if c.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(cfg_err(
                "rope_scaling is set: only null (plain RoPE) is supported",
            ));
        }
        if c.num_attention_heads == 0 || c.hidden_size == 0 {
            return Err(cfg_err(
                "hidden_size and num_attention_heads must be positive",
            ));
        }
        let head_dim = c.head_dim.unwrap_or(c.hidden_size / c.num_attention_heads);
        let attn = Heads {
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads.unwrap_or(c.num_attention_heads),
            head_dim,
        };
        let lightning = Heads {
            heads: c.lightning_nh.unwrap_or(attn.heads),
            kv_heads: c.lightning_nkv.unwrap_or(attn.kv_heads),
            head_dim: c.lightning_head_dim.unwrap_or(attn.head_dim),
        };
        for (what, h) in [("softmax", attn), ("lightning", lightning)] {
            h.check(what)?;
            if h.head_dim % 2 != 0 {
                return Err(cfg_err(format!(
                    "{what} head dim {} must be even for RoPE",
                    h.head_dim
                )));
            }
        }
        let logits_scaling = match &c.attn_logits_scaling {
            Some(v) => LogitsScaling::parse(v).map_err(cfg_err)?,
            None => LogitsScaling::None,
        };
        let mut flag = |name: &str, v: Option<bool>, default: bool| {
            v.unwrap_or_else(|| {
                guesses.push(format!("{name} missing from config.json: using {default}"));
                default
            })
        };
        let attn_use_rope = flag("attn_use_rope", c.attn_use_rope, false);
        let lightning_use_rope = flag("lightning_use_rope", c.lightning_use_rope, true);
        let attn_use_output_gate = flag("attn_use_output_gate", c.attn_use_output_gate, true);
        let lightning_use_qk_norm = flag("lightning_use_qk_norm", c.lightning_use_qk_norm, true);
        let lightning_use_output_norm = flag(
            "lightning_use_output_norm",
            c.lightning_use_output_norm,
            true,
        );
        let lightning_use_output_gate = flag(
            "lightning_use_output_gate",
            c.lightning_use_output_gate,
            true,
        );
        let attention_bias = c.attention_bias.unwrap_or(false);
        let tie_word_embeddings = c.tie_word_embeddings.unwrap_or(!has_lm_head);
        let rms_norm_eps = c.rms_norm_eps.unwrap_or_else(|| {
            guesses.push("rms_norm_eps missing from config.json: using 1e-6".into());
            1e-6
        });
        let rope_theta = c.rope_theta.unwrap_or(10000.0);
        let lightning_scale =
            LightningScale::parse(c.lightning_scale.as_deref().unwrap_or("1/sqrt(d)"));
        Ok(Arch {
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            intermediate_size: c.intermediate_size,
            mixer_names,
            mixers,
            attn,
            lightning,
            rms_norm_eps,
            rope_theta,
            attn_use_rope,
            lightning_use_rope,
            attn_use_output_gate,
            logits_scaling,
            lightning_use_qk_norm,
            lightning_use_output_norm,
            lightning_use_output_gate,
            lightning_scale,
            attention_bias,
            o_bias: attention_bias,
            attn_use_qk_norm: true,
            rope_scaling: RopeScaling::None,
            rope_fraction: 1.0,
            norm_plus_one: false,
            attn_gate_in_q: false,
            gdn: GdnShape::default(),
            gdn_norm_eps: rms_norm_eps,
            windows: vec![None; layers],
            root: Root::Plain,
            family: Family::HypeNet,
            tie_word_embeddings,
            from_config: true,
            guesses,
        })
    }

    /// A pure softmax-attention model (Qwen2, Qwen3, Llama, Mistral) as
    /// the engine's architecture: every layer softmax, RoPE on, no output
    /// gate, no logits scaling. Qwen2 adds q/k/v biases, Qwen3 per-head
    /// q/k norms. What the config asks for and the engine lacks (sliding
    /// windows, other RoPE types, experts, other activations) is refused
    /// with its name, never approximated.
    pub fn from_family_config(
        c: &HypeNetConfig,
        family: Family,
        has_lm_head: bool,
    ) -> Result<Arch> {
        let name = family.name();
        let refuse = |what: String| Err(cfg_err(format!("{name}: {what} is not supported")));
        // Jet-Nemotron's softmax layers are Qwen2's: q/k/v biases, none on o.
        let qwen2_attention = matches!(family, Family::Qwen2 | Family::Jet);
        if c.num_experts.as_ref().is_some_and(|v| !v.is_null())
            || c.num_local_experts.as_ref().is_some_and(|v| !v.is_null())
        {
            return refuse("a mixture of experts (num_experts / num_local_experts)".into());
        }
        let window = c.sliding_window.as_ref().is_some_and(|v| !v.is_null());
        let windowed = match family {
            // Qwen writes a window size but uses it only with use_sliding_window.
            Family::Qwen2 | Family::Qwen3 => window && c.use_sliding_window == Some(true),
            _ => window,
        };
        if windowed
            || c.layer_types
                .iter()
                .flatten()
                .any(|t| t != "full_attention")
        {
            return refuse("sliding-window attention".into());
        }
        if let Some(act) = c.hidden_act.as_deref().filter(|a| *a != "silu") {
            return refuse(format!("the activation {act:?} (only silu)"));
        }
        if c.mlp_bias == Some(true) {
            return refuse("mlp_bias".into());
        }
        if !c.mixer_types.is_empty() {
            return refuse("mixer_types".into());
        }
        // transformers 5 writes rope_theta and the scaling into rope_parameters.
        let params = c.rope_parameters.as_ref().filter(|v| !v.is_null());
        let rope_scaling =
            RopeScaling::parse(c.rope_scaling.as_ref().filter(|v| !v.is_null()).or(params))?;
        let rope_theta = c
            .rope_theta
            .or_else(|| {
                params
                    .and_then(|p| p.get("rope_theta"))
                    .and_then(|t| t.as_f64())
            })
            .unwrap_or(10000.0);
        let plain = HypeNetConfig {
            mixer_types: Vec::new(),
            rope_scaling: None,
            attn_logits_scaling: None,
            attn_use_rope: Some(true),
            attn_use_output_gate: Some(false),
            lightning_use_rope: Some(true),
            lightning_use_qk_norm: Some(false),
            lightning_use_output_norm: Some(false),
            lightning_use_output_gate: Some(false),
            rope_theta: Some(rope_theta),
            attention_bias: Some(qwen2_attention || c.attention_bias == Some(true)),
            rms_norm_eps: Some(c.rms_norm_eps.unwrap_or(1e-6)),
            model_type: None,
            ..c.clone()
        };
        let mut arch = Arch::from_hypenet_config(&plain, has_lm_head)?;
        arch.o_bias = !qwen2_attention && c.attention_bias == Some(true);
        arch.attn_use_qk_norm = family == Family::Qwen3;
        arch.rope_scaling = rope_scaling;
        arch.family = family;
        arch.guesses.clear();
        if c.rms_norm_eps.is_none() {
            arch.guesses
                .push("rms_norm_eps missing from config.json: using 1e-6".into());
        }
        Ok(arch)
    }

    /// Qwen3.5 (`qwen3_5_text`): gated-delta layers and softmax layers
    /// by `layer_types` (or every `full_attention_interval`-th softmax),
    /// gated attention with its gate rows in `q_proj`, per-head q/k norms,
    /// RoPE on the first `partial_rotary_factor` of each head, zero-centred
    /// norms. What transformers' Qwen3.5 takes and the engines lack is
    /// refused by name.
    pub(super) fn from_qwen35_config(c: &HypeNetConfig, has_lm_head: bool) -> Result<Arch> {
        let refuse = |what: &str| Err(cfg_err(format!("Qwen3.5: {what} is not supported")));
        if c.num_experts.as_ref().is_some_and(|v| !v.is_null()) {
            return refuse("a mixture of experts (num_experts)");
        }
        if let Some(act) = c.hidden_act.as_deref().filter(|a| *a != "silu") {
            return Err(cfg_err(format!(
                "Qwen3.5: the activation {act:?} is not supported (only silu)"
            )));
        }
        if c.attention_bias == Some(true) {
            return refuse("attention_bias (no released Qwen3.5 has projection biases)");
        }
        if !c.mixer_types.is_empty() {
            return refuse("mixer_types");
        }
        if c.attn_output_gate == Some(false) {
            return refuse("attn_output_gate false (transformers' Qwen3.5 always gates: its q_proj holds the gate rows)");
        }
        let layers = c.num_hidden_layers as usize;
        let types: Vec<String> = match &c.layer_types {
            Some(t) => t.clone(),
            None => {
                let every = c.full_attention_interval.unwrap_or(4).max(1) as usize;
                (0..layers)
                    .map(|i| {
                        if (i + 1) % every == 0 {
                            "full_attention"
                        } else {
                            "linear_attention"
                        }
                        .to_string()
                    })
                    .collect()
            }
        };
        if types.len() != layers {
            return Err(cfg_err(format!(
                "layer_types has {} entries but num_hidden_layers is {layers}",
                types.len()
            )));
        }
        let mut mixers = Vec::with_capacity(layers);
        for (i, t) in types.iter().enumerate() {
            mixers.push(match t.as_str() {
                "full_attention" => Mixer::Softmax,
                "linear_attention" => Mixer::GatedDelta,
                other => {
                    return Err(cfg_err(format!(
                        "layer_types[{i}] is {other:?}: Qwen3.5 layers are \"linear_attention\" or \"full_attention\""
                    )))
                }
            });
        }
        let params = c.rope_parameters.as_ref().filter(|v| !v.is_null());
        let rope_scaling =
            RopeScaling::parse(c.rope_scaling.as_ref().filter(|v| !v.is_null()).or(params))?;
        let param = |key: &str| params.and_then(|p| p.get(key)).and_then(|t| t.as_f64());
        let rope_theta = c
            .rope_theta
            .or_else(|| param("rope_theta"))
            .unwrap_or(10000.0);
        let rope_fraction = c
            .partial_rotary_factor
            .or_else(|| param("partial_rotary_factor"))
            .unwrap_or(0.25);
        if !(rope_fraction > 0.0 && rope_fraction <= 1.0) {
            return Err(cfg_err(format!(
                "partial_rotary_factor is {rope_fraction}: expected a share in (0, 1]"
            )));
        }
        if c.num_attention_heads == 0 {
            return Err(cfg_err("num_attention_heads must be positive"));
        }
        let attn = Heads {
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads.unwrap_or(c.num_attention_heads),
            head_dim: c.head_dim.unwrap_or(c.hidden_size / c.num_attention_heads),
        };
        attn.check("softmax")?;
        let rotary = (attn.head_dim as f64 * rope_fraction) as u64;
        if rotary == 0 || rotary % 2 != 0 {
            return Err(cfg_err(format!(
                "partial_rotary_factor {rope_fraction} of head dim {} rotates {rotary} dims: RoPE needs an even, positive number",
                attn.head_dim
            )));
        }
        // transformers' Qwen3_5TextConfig defaults, for fields a config leaves out.
        let gdn = GdnShape {
            key_heads: c.linear_num_key_heads.unwrap_or(16),
            value_heads: c.linear_num_value_heads.unwrap_or(32),
            key_dim: c.linear_key_head_dim.unwrap_or(128),
            value_dim: c.linear_value_head_dim.unwrap_or(128),
            conv_kernel: c.linear_conv_kernel_dim.unwrap_or(4),
            generator: 0,
        };
        if [
            gdn.key_heads,
            gdn.value_heads,
            gdn.key_dim,
            gdn.value_dim,
            gdn.conv_kernel,
        ]
        .contains(&0)
            || gdn.value_heads % gdn.key_heads != 0
        {
            return Err(cfg_err(format!(
                "linear attention: {} key heads of {}, {} value heads of {}, conv kernel {}: all must be positive and value heads a multiple of key heads",
                gdn.key_heads, gdn.key_dim, gdn.value_heads, gdn.value_dim, gdn.conv_kernel
            )));
        }
        let mut guesses = Vec::new();
        let rms_norm_eps = c.rms_norm_eps.unwrap_or_else(|| {
            guesses.push("rms_norm_eps missing from config.json: using 1e-6".into());
            1e-6
        });
        Ok(Arch {
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            intermediate_size: c.intermediate_size,
            mixer_names: types,
            mixers,
            attn,
            lightning: attn,
            rms_norm_eps,
            rope_theta,
            attn_use_rope: true,
            lightning_use_rope: false,
            attn_use_output_gate: true,
            logits_scaling: LogitsScaling::None,
            lightning_use_qk_norm: false,
            lightning_use_output_norm: false,
            lightning_use_output_gate: false,
            lightning_scale: LightningScale::One,
            attention_bias: false,
            o_bias: false,
            attn_use_qk_norm: true,
            rope_scaling,
            rope_fraction,
            norm_plus_one: true,
            attn_gate_in_q: true,
            gdn,
            gdn_norm_eps: rms_norm_eps,
            windows: vec![None; layers],
            root: Root::Plain,
            family: Family::Qwen35,
            tie_word_embeddings: c.tie_word_embeddings.unwrap_or(!has_lm_head),
            from_config: true,
            guesses,
        })
    }

    /// The dims RoPE rotates in a head of `dh` (the first ones).
    pub fn rope_dims(&self, dh: u64) -> u64 {
        if self.rope_fraction >= 1.0 {
            dh
        } else {
            (dh as f64 * self.rope_fraction) as u64
        }
    }

    /// RoPE's inverse frequencies for heads of `dh`, scaling applied:
    /// theta^(-2j/r) for j < r/2, where r = [`Arch::rope_dims`] of dh (all
    /// of it but in Qwen3.5). The engines' only source of them.
    pub fn rope_inv_freq(&self, dh: u64) -> Vec<f64> {
        let dh = self.rope_dims(dh);
        let base: Vec<f64> = (0..dh / 2)
            .map(|j| self.rope_theta.powf(-2.0 * j as f64 / dh as f64))
            .collect();
        match self.rope_scaling {
            RopeScaling::None => base,
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old,
            } => {
                // As transformers' _compute_llama3_parameters.
                let (low_wavelen, high_wavelen) = (old / low_freq_factor, old / high_freq_factor);
                base.into_iter()
                    .map(|f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        }
    }

    /// Layer `l`'s tensor names in this checkpoint.
    pub fn layer_names(&self, l: usize) -> LayerNames {
        LayerNames::at(self.root, l)
    }

    pub fn embed_name(&self) -> String {
        self.root.embed()
    }

    pub fn final_norm_name(&self) -> String {
        self.root.final_norm()
    }

    /// The LM head the logits come from: the embedding when tied.
    pub fn head_name(&self) -> String {
        if self.tie_word_embeddings {
            self.embed_name()
        } else {
            names::LM_HEAD.into()
        }
    }

    pub fn num_layers(&self) -> usize {
        self.mixers.len()
    }

    /// Every softmax layer, sliding-window ones included: the layers
    /// routing draws and `qklab layers` ranks.
    pub fn softmax_layers(&self) -> Vec<usize> {
        (0..self.mixers.len())
            .filter(|&i| self.mixers[i] == Mixer::Softmax)
            .collect()
    }

    /// The softmax layers that see the whole context: what a merge
    /// restores unless told otherwise (a sliding-window layer's reach is
    /// its window).
    pub fn full_attention_layers(&self) -> Vec<usize> {
        self.softmax_layers()
            .into_iter()
            .filter(|&l| self.window(l).is_none())
            .collect()
    }

    /// Layer `l`'s sliding window, if it has one.
    pub fn window(&self, l: usize) -> Option<u64> {
        self.windows.get(l).copied().flatten()
    }

    /// Every layer softmax (the Qwen, Llama and Mistral families, or a
    /// HypeNet config without Lightning layers).
    pub fn is_pure_softmax(&self) -> bool {
        !self.mixers.is_empty() && self.mixers.iter().all(|m| *m == Mixer::Softmax)
    }

    /// Every tensor the architecture needs, with its shape.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<u64>)> {
        let (v, d) = (self.vocab_size, self.hidden_size);
        let mut out: Vec<(String, Vec<u64>)> = vec![
            (self.embed_name(), vec![v, d]),
            (self.final_norm_name(), vec![d]),
        ];
        if !self.tie_word_embeddings {
            out.push((names::LM_HEAD.into(), vec![v, d]));
        }
        for l in 0..self.mixers.len() {
            out.extend(self.layer_tensors(l));
        }
        out
    }

    /// The tensors layer `l` has under this config, with their shapes.
    pub fn layer_tensors(&self, l: usize) -> Vec<(String, Vec<u64>)> {
        let (d, i) = (self.hidden_size, self.intermediate_size);
        let mixer = self.mixers[l];
        let n = self.layer_names(l);
        let mut out = vec![
            (n.input_norm.clone(), vec![d]),
            (n.post_norm.clone(), vec![d]),
            (n.mlp_gate.clone(), vec![i, d]),
            (n.mlp_up.clone(), vec![i, d]),
            (n.mlp_down.clone(), vec![d, i]),
        ];
        if mixer == Mixer::Jet {
            let g = &self.gdn;
            let (kw, vw, nh) = (g.key_width(), g.value_width(), g.value_heads);
            let t = &n.jet;
            out.extend([
                (n.q.weight, vec![kw, d]),
                (n.k.weight, vec![kw, d]),
                (n.v.weight, vec![vw, d]),
                (t.b_proj.clone(), vec![nh, d]),
                (t.a_proj.clone(), vec![nh, d]),
                (t.a_log.clone(), vec![nh]),
                (t.dt_bias.clone(), vec![nh]),
                (t.gen_w1.clone(), vec![g.generator, d]),
                (t.gen_w2.clone(), vec![vw * g.conv_kernel, g.generator]),
                (t.gen_b2.clone(), vec![vw * g.conv_kernel]),
                (t.g_proj.clone(), vec![vw, d]),
                (n.o_norm, vec![g.value_dim]),
                (n.o.weight, vec![d, vw]),
            ]);
            return out;
        }
        if mixer == Mixer::GatedDelta {
            let (g, w) = (&self.gdn, self.gdn.value_width());
            let c = g.conv_channels();
            let t = &n.gdn;
            out.extend([
                (t.in_qkv.clone(), vec![c, d]),
                (t.conv.clone(), vec![c, 1, g.conv_kernel]),
                (t.in_z.clone(), vec![w, d]),
                (t.in_b.clone(), vec![g.value_heads, d]),
                (t.in_a.clone(), vec![g.value_heads, d]),
                (t.a_log.clone(), vec![g.value_heads]),
                (t.dt_bias.clone(), vec![g.value_heads]),
                (t.norm.clone(), vec![g.value_dim]),
                (t.out.clone(), vec![d, w]),
            ]);
            return out;
        }
        let h = self.heads(mixer);
        let (q, kv) = (h.heads * h.head_dim, h.kv_heads * h.head_dim);
        // Qwen3.5's q_proj holds the output gate's rows beside the queries.
        let q_rows = if mixer == Mixer::Softmax && self.attn_gate_in_q {
            2 * q
        } else {
            q
        };
        out.extend([
            (n.q.weight, vec![q_rows, d]),
            (n.k.weight, vec![kv, d]),
            (n.v.weight, vec![kv, d]),
            (n.o.weight, vec![d, q]),
        ]);
        if self.attention_bias {
            out.extend([
                (n.q.bias, vec![q]),
                (n.k.bias, vec![kv]),
                (n.v.bias, vec![kv]),
            ]);
        }
        if self.o_bias {
            out.push((n.o.bias, vec![d]));
        }
        if self.qk_norm(mixer) {
            out.extend([(n.q_norm, vec![h.head_dim]), (n.k_norm, vec![h.head_dim])]);
        }
        match mixer {
            Mixer::Softmax if self.attn_use_output_gate && !self.attn_gate_in_q => {
                out.push((n.o_gate, vec![q, d]))
            }
            Mixer::Lightning => {
                if self.lightning_use_output_norm {
                    out.push((n.o_norm, vec![q]));
                }
                if self.lightning_use_output_gate {
                    out.push((n.z_proj, vec![q, d]));
                }
            }
            _ => {}
        }
        out
    }

    /// Whether layers of `mixer` norm their queries and keys per head.
    pub fn qk_norm(&self, mixer: Mixer) -> bool {
        match mixer {
            Mixer::Softmax => self.attn_use_qk_norm,
            Mixer::Lightning => self.lightning_use_qk_norm,
            Mixer::GatedDelta | Mixer::Jet => false,
        }
    }

    /// A mixer's heads. For the gated delta rule: its value heads as
    /// `heads`, its query/key heads as `kv_heads` and their size as
    /// `head_dim` ([`Arch::gdn`] has the value heads' size).
    pub fn heads(&self, mixer: Mixer) -> Heads {
        match mixer {
            Mixer::Softmax => self.attn,
            Mixer::Lightning => self.lightning,
            Mixer::GatedDelta | Mixer::Jet => Heads {
                heads: self.gdn.value_heads,
                kv_heads: self.gdn.key_heads,
                head_dim: self.gdn.key_dim,
            },
        }
    }

    /// Compares the checkpoint's tensors with the architecture: every missing
    /// tensor and every wrong shape, all of them. Tensors the architecture
    /// does not name come back separately (they are carried, not used).
    pub fn check(&self, tensors: &[TensorEntry]) -> (Vec<String>, Vec<String>) {
        let have: BTreeMap<&str, &[u64]> = tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice()))
            .collect();
        let expected = self.expected_tensors();
        let mut problems = Vec::new();
        for (name, shape) in &expected {
            match have.get(name.as_str()) {
                None => problems.push(format!("missing tensor {name} (expected shape {shape:?})")),
                Some(got) if *got != shape.as_slice() => problems.push(format!(
                    "tensor {name} has shape {got:?}, expected {shape:?}"
                )),
                _ => {}
            }
        }
        let known: std::collections::HashSet<&str> =
            expected.iter().map(|(n, _)| n.as_str()).collect();
        let mut extra = Vec::new();
        for t in tensors {
            if known.contains(t.name.as_str()) {
                continue;
            }
            if t.name == names::LM_HEAD && self.tie_word_embeddings {
                if t.shape != [self.vocab_size, self.hidden_size] {
                    problems.push(format!(
                        "tensor lm_head.weight has shape {:?}, expected {:?}",
                        t.shape,
                        [self.vocab_size, self.hidden_size]
                    ));
                }
                continue;
            }
            extra.push(t.name.clone());
        }
        (problems, extra)
    }
}
