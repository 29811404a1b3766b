//! The architecture summary shown by `qklab inspect` and the page: layers
//! with their mixer and heads, dtypes, parameter count, size on disk, and
//! every way the tensors disagree with the config.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::config::{Arch, Mixer};
use crate::source::ByteSource;
use crate::units::{human_bytes, human_count};

#[derive(Debug, Clone, Serialize)]
pub struct LayerSummary {
    pub index: usize,
    /// The config's mixer string ("attn", "lightning-attn", …).
    pub mixer: String,
    pub softmax: bool,
    /// A sliding-window softmax layer's window, in tokens.
    pub window: Option<u64>,
    /// The layer map's letter: S softmax, W sliding-window softmax,
    /// L Lightning, G gated delta, J JetBlock.
    pub letter: char,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub parameters: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub files: Vec<FileSummary>,
    /// The model family (HypeNet, Qwen2, Qwen3, Qwen3.5, Llama, Mistral).
    pub family: &'static str,
    /// How the checkpoint holds it, where that is not plain: Qwen3.5's
    /// vision-language wrapper.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packaging: Option<&'static str>,
    /// One letter per layer by its mixer (S softmax, L Lightning, G gated
    /// delta), in groups of four: a hybrid's pattern at a glance.
    pub layer_map: String,
    pub config: &'static str,
    pub guesses: Vec<String>,
    pub vocab_size: u64,
    pub hidden_size: u64,
    pub intermediate_size: u64,
    pub layers: Vec<LayerSummary>,
    pub softmax_layers: Vec<usize>,
    /// Those of them with a sliding window (Jet-Nemotron's `swa`).
    pub window_layers: Vec<usize>,
    pub tie_word_embeddings: bool,
    pub logits_scaling: crate::config::LogitsScaling,
    pub tensors: usize,
    /// Elements per dtype name.
    pub dtypes: BTreeMap<String, u64>,
    pub parameters: u64,
    pub bytes_on_disk: u64,
    pub bytes_read: u64,
    /// Ways the tensors disagree with the architecture; empty when they match.
    pub problems: Vec<String>,
    /// Tensors the architecture does not use (carried through merges as
    /// they are), but for a vision tower's, counted in `vision`.
    pub extra_tensors: Vec<String>,
    /// Qwen3.5's wrapper: its `model.visual.*` tensors, not used by the
    /// text model (carried through merges untouched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vision: Option<VisionSummary>,
    /// Weight files given but not part of the checkpoint (not carried into outputs).
    pub ignored_files: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VisionSummary {
    pub tensors: usize,
    pub parameters: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileSummary {
    pub name: String,
    pub size: u64,
    pub tensors: usize,
}

pub fn summarize<S: ByteSource>(ckpt: &Checkpoint<S>, arch: &Arch) -> Summary {
    let (problems, extra) = arch.check(&ckpt.tensors);
    let (vision, extra_tensors): (Vec<String>, Vec<String>) =
        extra.into_iter().partition(|n| crate::names::is_vision(n));
    let vision = (!vision.is_empty()).then(|| {
        let entries = vision.iter().filter_map(|n| ckpt.tensor(n));
        VisionSummary {
            tensors: vision.len(),
            parameters: entries.clone().map(|t| t.numel()).sum(),
            bytes: entries.map(|t| t.end - t.start).sum(),
        }
    });
    let letter = |l: usize| match arch.mixers[l] {
        Mixer::Softmax if arch.window(l).is_some() => 'W',
        Mixer::Softmax => 'S',
        Mixer::Lightning => 'L',
        Mixer::GatedDelta => 'G',
        Mixer::Jet => 'J',
    };
    let letters: Vec<char> = (0..arch.num_layers()).map(letter).collect();
    let layer_map = letters
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ");
    let mut layer_params = vec![0u64; arch.num_layers()];
    let mut dtypes = BTreeMap::new();
    for t in &ckpt.tensors {
        *dtypes.entry(t.dtype.to_string()).or_insert(0u64) += t.numel();
        if let Some(slot) = crate::names::layer_of(&t.name).and_then(|l| layer_params.get_mut(l)) {
            *slot += t.numel();
        }
    }
    let layers = arch
        .mixers
        .iter()
        .enumerate()
        .map(|(index, &m)| {
            let h = arch.heads(m);
            LayerSummary {
                index,
                mixer: arch.mixer_names[index].clone(),
                softmax: m == Mixer::Softmax,
                window: arch.window(index),
                letter: letter(index),
                heads: h.heads,
                kv_heads: h.kv_heads,
                head_dim: h.head_dim,
                parameters: layer_params[index],
            }
        })
        .collect();
    Summary {
        files: ckpt
            .shards
            .iter()
            .map(|s| FileSummary {
                name: s.file.name.clone(),
                size: s.file.size,
                tensors: s.header.tensors.len(),
            })
            .collect(),
        family: arch.family.name(),
        packaging: (arch.root == crate::names::Root::Wrapped).then_some(
            "vision-language wrapper (qwen3_5): the text model under model.language_model.",
        ),
        layer_map,
        config: if arch.from_config {
            "config.json"
        } else {
            "inferred"
        },
        guesses: arch.guesses.clone(),
        vocab_size: arch.vocab_size,
        hidden_size: arch.hidden_size,
        intermediate_size: arch.intermediate_size,
        layers,
        softmax_layers: arch.softmax_layers(),
        window_layers: arch
            .softmax_layers()
            .into_iter()
            .filter(|&l| arch.window(l).is_some())
            .collect(),
        tie_word_embeddings: arch.tie_word_embeddings,
        logits_scaling: arch.logits_scaling,
        tensors: ckpt.tensors.len(),
        dtypes,
        parameters: ckpt.tensors.iter().map(|t| t.numel()).sum(),
        bytes_on_disk: ckpt.bytes_on_disk(),
        bytes_read: ckpt.bytes_read(),
        problems,
        extra_tensors,
        vision,
        ignored_files: ckpt.ignored_files.iter().map(|f| f.name.clone()).collect(),
    }
}

impl Summary {
    /// The plain-text report of `qklab inspect`.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "family: {}  config: {}", self.family, self.config);
        if let Some(p) = self.packaging {
            let _ = writeln!(s, "  {p}");
        }
        for g in &self.guesses {
            let _ = writeln!(s, "  guess: {g}");
        }
        for f in &self.files {
            let _ = writeln!(
                s,
                "file {} ({}, {} tensors)",
                f.name,
                human_bytes(f.size),
                f.tensors
            );
        }
        let _ = writeln!(
            s,
            "vocab {}  hidden {}  intermediate {}  layers {}  tied embeddings: {}",
            self.vocab_size,
            self.hidden_size,
            self.intermediate_size,
            self.layers.len(),
            self.tie_word_embeddings
        );
        let _ = writeln!(s, "layer  mixer            heads  kv  head_dim  parameters");
        for l in &self.layers {
            let mark = if l.softmax { " *" } else { "" };
            let _ = writeln!(
                s,
                "{:>5}  {:<15}  {:>5}  {:>2}  {:>8}  {:>10}{mark}",
                l.index,
                l.mixer,
                l.heads,
                l.kv_heads,
                l.head_dim,
                human_count(l.parameters)
            );
        }
        let _ = writeln!(s, "softmax layers (*): {:?}", self.softmax_layers);
        if self.layers.iter().any(|l| !l.softmax) {
            let mut kinds = Vec::new();
            for (letter, what) in [
                ('G', "gated delta"),
                ('J', "JetBlock"),
                ('L', "Lightning"),
                ('S', "softmax"),
                ('W', "sliding-window softmax"),
            ] {
                let n = self.layer_map.chars().filter(|&c| c == letter).count();
                if n > 0 {
                    kinds.push(format!("{letter} {what} ({n})"));
                }
            }
            let _ = writeln!(s, "layer map: {}  ({})", self.layer_map, kinds.join(", "));
        }
        let dtypes: Vec<String> = self
            .dtypes
            .iter()
            .map(|(d, n)| format!("{d} {}", human_count(*n)))
            .collect();
        let _ = writeln!(s, "dtypes: {}", dtypes.join(", "));
        let _ = writeln!(
            s,
            "parameters: {} ({})  on disk: {}  read: {}",
            self.parameters,
            human_count(self.parameters),
            human_bytes(self.bytes_on_disk),
            human_bytes(self.bytes_read)
        );
        if !self.ignored_files.is_empty() {
            let _ = writeln!(
                s,
                "ignored (weights not part of this checkpoint): {}",
                self.ignored_files.join(", ")
            );
        }
        if !self.extra_tensors.is_empty() {
            let _ = writeln!(
                s,
                "tensors the architecture does not use: {}",
                self.extra_tensors.join(", ")
            );
        }
        if let Some(v) = &self.vision {
            let _ = writeln!(
                s,
                "vision tower: {} model.visual.* tensors ({} parameters, {}), not used by the text model; carried through merges untouched",
                v.tensors,
                human_count(v.parameters),
                human_bytes(v.bytes)
            );
        }
        if self.problems.is_empty() {
            let _ = writeln!(s, "tensors match the architecture");
        } else {
            let _ = writeln!(s, "{} problems:", self.problems.len());
            for p in &self.problems {
                let _ = writeln!(s, "  - {p}");
            }
        }
        s
    }
}
