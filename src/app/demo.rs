//! The demo pairs the page ships, and the results recorded with each
//! (`www/<dir>/results.json`, written by `scripts/record-demo.sh`): what the
//! page shows the moment a demo opens, and what its guide says about it.
//! Nothing here names a layer: the recording says which layers the pair
//! has and which head retrieves.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::sweep::{table_cell, SweepReport};
use crate::prompts::TaskKind;
use crate::writer::SourceFingerprint;

/// A demo pair: its files lie in `www/<dir>/{pre,sft}`, its recording in
/// `www/<dir>/results.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoPair {
    /// How a link names it (`demo=<key>` in the URL fragment).
    pub key: &'static str,
    /// Its folder under `www/`.
    pub dir: &'static str,
    /// The family, as buttons and tables name it.
    pub name: &'static str,
    /// The held-out arithmetic its SFT taught, as the Tune step's answers
    /// (the pairs share one set: the same SFT data).
    pub answers: &'static str,
}

/// Every demo pair, in the order the page offers them.
pub const DEMO_PAIRS: [DemoPair; 2] = [
    DemoPair {
        key: "hypenet",
        dir: "demo",
        name: "HypeNet",
        answers: "demo/arithmetic.jsonl",
    },
    DemoPair {
        key: "jet",
        dir: "demo-jet",
        name: "Jet-Nemotron",
        answers: "demo/arithmetic.jsonl",
    },
];

/// The pair a link names; `1` is the HypeNet pair (links made when it was
/// the only one).
pub fn demo_pair(key: &str) -> Option<&'static DemoPair> {
    let key = if key == "1" { "hypenet" } else { key };
    DEMO_PAIRS.iter().find(|p| p.key == key)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recorded {
    pub recorded: Provenance,
    /// The checkpoints they were recorded with (tests/demo_results.rs checks them).
    pub checkpoints: HashMap<String, SourceFingerprint>,
    pub models: Vec<String>,
    /// By task (s1, mk): every sample, at 2048 tokens.
    pub niah: HashMap<TaskKind, SweepReport>,
    /// The SFT skill in % by model, and `source`: how it was scored
    /// (empty where the pair's skill was not scored).
    pub arithmetic: HashMap<String, serde_json::Value>,
    /// The architecture: family and every layer's kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<PairLayers>,
    /// The head the guide shows retrieving, and its needle mass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<RetrievalHead>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provenance {
    pub command: String,
    pub adapter: String,
    pub date: String,
}

/// What the recorded checkpoints are, from `qklab inspect --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairLayers {
    /// The family as qklab names it ("HypeNet", "Jet-Nemotron").
    pub family: String,
    /// Every layer, in order.
    pub layers: Vec<RecordedLayer>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedLayer {
    pub index: usize,
    /// The config's mixer string ("attn", "swa", "lightning-attn", "jet", …).
    pub mixer: String,
    pub kind: LayerKind,
    /// A sliding-window layer's window, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u64>,
}

/// What a layer is, as the story tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerKind {
    /// Softmax attention over the whole prefix: what QK-Restore restores.
    Full,
    /// Softmax attention within a window.
    Window,
    /// A linear-attention mixer (Lightning, the gated delta rule, a JetBlock).
    Linear,
}

/// The retrieval head and the attention its question rows pay the needle
/// (the mean over `prompts`), by recorded model (pre, sft, qk-restore).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalHead {
    pub layer: usize,
    pub head: usize,
    pub needle_mass: BTreeMap<String, f64>,
    /// The prompts it was measured on, in words.
    pub prompts: String,
}

impl Recorded {
    /// NIAH accuracy (%) of `model` on `task` at 2048 tokens.
    pub fn accuracy(&self, task: TaskKind, model: &str) -> Option<f64> {
        table_cell(&self.niah.get(&task)?.samples, model, task, 2048)
    }

    /// Arithmetic (%) of `model`, where it was scored.
    pub fn arithmetic(&self, model: &str) -> Option<f64> {
        self.arithmetic.get(model).and_then(|v| v.as_f64())
    }

    /// The family, where the recording says it.
    pub fn family(&self) -> Option<&str> {
        self.pair.as_ref().map(|p| p.family.as_str())
    }

    /// The indices of the layers of `kind`.
    pub fn layers_of(&self, kind: LayerKind) -> Vec<usize> {
        self.pair.as_ref().map_or(Vec::new(), |p| {
            p.layers
                .iter()
                .filter(|l| l.kind == kind)
                .map(|l| l.index)
                .collect()
        })
    }

    /// The sliding-window layers with their windows.
    pub fn windows(&self) -> Vec<(usize, u64)> {
        self.pair.as_ref().map_or(Vec::new(), |p| {
            p.layers
                .iter()
                .filter_map(|l| Some((l.index, l.window?)))
                .collect()
        })
    }

    /// The linear mixers in words ("Lightning linear attention"), the
    /// first linear layer's.
    pub fn linear_name(&self) -> Option<&'static str> {
        let mixer = &self
            .pair
            .as_ref()?
            .layers
            .iter()
            .find(|l| l.kind == LayerKind::Linear)?
            .mixer;
        Some(match mixer.as_str() {
            "lightning-attn" | "lightning_attn" => "Lightning linear attention",
            "jet" => "JetBlock linear attention",
            "linear_attention" => "gated-delta-rule linear attention",
            _ => "linear attention",
        })
    }
}

/// "layer 5", "layers 3 and 6".
fn layers_phrase(items: &[usize]) -> String {
    match items {
        [one] => format!("layer {one}"),
        _ => format!("layers {}", and_list(items)),
    }
}

/// The pair's layers in one sentence, from its recording: "8 layers:
/// full softmax attention at layers 3 and 6; a sliding window of 64 tokens
/// at layer 5; JetBlock linear attention at the other 5".
pub fn describe_layers(r: &Recorded) -> Option<String> {
    let pair = r.pair.as_ref()?;
    let full = r.layers_of(LayerKind::Full);
    let linear = r.layers_of(LayerKind::Linear);
    let mut parts = Vec::new();
    if !full.is_empty() {
        parts.push(format!(
            "full softmax attention at {}",
            layers_phrase(&full)
        ));
    }
    let windows = r.windows();
    let mut sizes: Vec<u64> = windows.iter().map(|w| w.1).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes {
        let at: Vec<usize> = windows
            .iter()
            .filter(|w| w.1 == size)
            .map(|w| w.0)
            .collect();
        let a = if at.len() == 1 {
            "a sliding window"
        } else {
            "sliding windows"
        };
        parts.push(format!("{a} of {size} tokens at {}", layers_phrase(&at)));
    }
    if !linear.is_empty() {
        let name = r.linear_name().unwrap_or("linear attention");
        parts.push(
            if linear.len() > 1
                && linear.len() + full.len() + windows.len() == pair.layers.len()
                && !parts.is_empty()
            {
                format!("{name} at the other {}", linear.len())
            } else {
                format!("{name} at {}", layers_phrase(&linear))
            },
        );
    }
    Some(format!(
        "{} layers: {}",
        pair.layers.len(),
        parts.join("; ")
    ))
}

/// What the guide says at each of its four steps (what SFT changed, the
/// repair, the retrieval test, where the heads look), every number and
/// layer from the opened pair's recording; `mlp_moved`: whether any MLP
/// weight moved in the fine-tune (the drift the page computed), where known.
pub fn guide_texts(r: Option<&Recorded>, mlp_moved: Option<bool>) -> [String; 4] {
    let s1 = TaskKind::Text(crate::niah::Task::S1);
    let cell = |m: &str| {
        r.and_then(|r| r.accuracy(s1, m))
            .map_or("?".into(), |a| format!("{a:.0}%"))
    };
    let skill = |m: &str| r.and_then(|r| r.arithmetic(m)).map(|a| format!("{a:.0}%"));
    let full = r.map_or(Vec::new(), |r| r.layers_of(LayerKind::Full));
    let full_named = if full.is_empty() {
        "the full softmax layers".to_string()
    } else {
        format!("the full-attention {}", layers_phrase(&full))
    };
    let windows = r.map_or(Vec::new(), |r| r.windows());
    let family = r.and_then(|r| r.family()).unwrap_or("The model");

    let mut drift = String::from(
        "Each cell is how far one weight matrix moved during the chain-of-thought fine-tune.",
    );
    if mlp_moved == Some(false) {
        drift += " The MLPs did not move: only the attention blocks were trained.";
    }
    if let Some(layers) = r.and_then(describe_layers) {
        drift += &format!(" {family} has {layers}.");
    }
    drift += &format!(
        " The paper traces long-context amnesia to the drift of q and k in the softmax layers: {full_named} here."
    );

    let mut repair = format!(
        "QK-Restore copies W_Q and W_K of {full_named} back from the checkpoint before SFT and leaves everything else as SFT made it"
    );
    if !windows.is_empty() {
        let at: Vec<usize> = windows.iter().map(|w| w.0).collect();
        let widest = windows.iter().map(|w| w.1).max().unwrap_or(0);
        let which = if at.len() == 1 { "layer" } else { "layers" };
        repair += &format!(
            ", the sliding-window {which} {} included: {} only the last {widest} tokens, too few to reach a needle far back",
            and_list(&at),
            if at.len() == 1 { "it sees" } else { "they see" }
        );
    }
    repair += ". One click merges; the files are checked and offered for download.";

    let mut test = format!(
        "The model must find one number hidden in 2048 tokens of noise (S1). Before SFT it does so {}, after SFT {}, after QK-Restore {}. \
         Restoring q alone gives {}, k alone {}, v alone {}.",
        cell("pre"),
        cell("sft"),
        cell("qk-restore"),
        cell("q-restore"),
        cell("k-restore"),
        cell("v-restore"),
    );
    match (skill("sft"), skill("qk-restore")) {
        (Some(sft), Some(qk)) => {
            test += &format!(
                " The arithmetic SFT taught: {sft} right after SFT, {qk} after QK-Restore"
            );
            if let Some(pro) = skill("qk-pro") {
                test += &format!(", {pro} after QK-Pro (which retrieves {})", cell("qk-pro"));
            }
            test += ".";
        }
        _ => test += " The arithmetic SFT taught was not scored for this pair.",
    }
    test += " Run some of the same prompts here to check the recording.";

    let shown = "The table gives its needle mass (the share of the question's attention on the needle) in each model on one prompt, \
                 the line where the question looks along the prompt, the orange-blue map what the merge changed.";
    let heads = match r.and_then(|r| r.retrieval.as_ref()) {
        Some(h) => {
            let mass = |m: &str| {
                h.needle_mass
                    .get(m)
                    .map_or("?".into(), |x| format!("{x:.3}"))
            };
            format!(
                "Head {} of layer {} (full attention) is the retrieval head: from the question it pays {} of its attention to the needle before SFT, \
                 {} after SFT and {} after QK-Restore (the mean over {}). {shown}",
                h.head,
                h.layer,
                mass("pre"),
                mass("sft"),
                mass("qk-restore"),
                h.prompts
            )
        }
        None => format!(
            "The head whose attention on the needle falls most after SFT is shown first. {shown}"
        ),
    };
    [drift, repair, test, heads]
}

/// "3", "3 and 6", "0, 1 and 2": layer numbers as a sentence says them.
pub fn and_list(items: &[usize]) -> String {
    let words: Vec<String> = items.iter().map(|i| i.to_string()).collect();
    match words.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_by_key() {
        assert_eq!(demo_pair("1").map(|p| p.dir), Some("demo"));
        assert_eq!(demo_pair("hypenet").map(|p| p.dir), Some("demo"));
        assert_eq!(demo_pair("jet").map(|p| p.dir), Some("demo-jet"));
        assert_eq!(demo_pair("0"), None);
        assert_eq!(demo_pair("<b>"), None);
    }

    fn pair_of(kinds: &[(&str, LayerKind, Option<u64>)]) -> Recorded {
        Recorded {
            recorded: Provenance {
                command: String::new(),
                adapter: String::new(),
                date: String::new(),
            },
            checkpoints: HashMap::new(),
            models: Vec::new(),
            niah: HashMap::new(),
            arithmetic: HashMap::new(),
            pair: Some(PairLayers {
                family: "Jet-Nemotron".into(),
                layers: kinds
                    .iter()
                    .enumerate()
                    .map(|(index, &(mixer, kind, window))| RecordedLayer {
                        index,
                        mixer: mixer.into(),
                        kind,
                        window,
                    })
                    .collect(),
            }),
            retrieval: None,
        }
    }

    #[test]
    fn layers_in_one_sentence() {
        use LayerKind::*;
        let r = pair_of(&[
            ("jet", Linear, None),
            ("swa", Window, Some(64)),
            ("attn", Full, None),
            ("swa", Window, Some(128)),
            ("swa", Window, Some(64)),
        ]);
        assert_eq!(
            describe_layers(&r).unwrap(),
            "5 layers: full softmax attention at layer 2; sliding windows of 64 tokens at layers 1 and 4; \
             a sliding window of 128 tokens at layer 3; JetBlock linear attention at layer 0"
        );
        let r = pair_of(&[
            ("lightning-attn", Linear, None),
            ("lightning-attn", Linear, None),
        ]);
        assert_eq!(
            describe_layers(&r).unwrap(),
            "2 layers: Lightning linear attention at layers 0 and 1"
        );
        let texts = guide_texts(Some(&r), None);
        assert!(
            texts[1].contains("of the full softmax layers back"),
            "{}",
            texts[1]
        );
        assert!(texts[2].contains("was not scored"), "{}", texts[2]);
        assert!(
            texts[3].starts_with("The head whose attention"),
            "{}",
            texts[3]
        );
        // Without a recording the guide still reads, with no number in it.
        assert!(guide_texts(None, None)[2].contains("Before SFT it does so ?,"));
    }

    #[test]
    fn lists_read_as_sentences() {
        assert_eq!(and_list(&[]), "");
        assert_eq!(and_list(&[6]), "6");
        assert_eq!(and_list(&[3, 6]), "3 and 6");
        assert_eq!(and_list(&[0, 1, 2]), "0, 1 and 2");
    }
}
