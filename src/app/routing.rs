//! Where the softmax heads look on one NIAH prompt, for several models:
//! each model's per-row statistics of every softmax layer, and how the
//! first two models (before and after SFT) compare.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::model::{Backend, OpenModel};
use crate::error::{Error, Result};
use crate::model::engine::Logits;
use crate::prompts::TaskKind;
use crate::routing::{log_ratio, most_affected};
use crate::source::ByteSource;

/// How the pooled maps cut the prompt into blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Blocks {
    /// Blocks of this many tokens.
    Tokens(u32),
    /// This many blocks per side, whatever the prompt's length.
    PerSide(usize),
}

/// The prompt to profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingSpec {
    pub task: TaskKind,
    pub length: u32,
    pub depth: f64,
    pub seed: u64,
    pub blocks: Blocks,
}

/// One model's routing on the prompt: what the pictures and rankings need
/// of every softmax layer's per-row statistics, small enough to send
/// from the engine's worker to the page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub model: String,
    pub tokens: usize,
    /// The needle's tokens, and the question's (whose rows the needle mass averages).
    pub needle: Range<u32>,
    pub queries: Range<usize>,
    pub key: String,
    pub value: String,
    /// Tokens per block of the pooled maps, and blocks per side.
    pub block: usize,
    pub blocks: usize,
    /// Every softmax layer, in layer order.
    pub layers: Vec<LayerRouting>,
}

/// One softmax layer's numbers per head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRouting {
    pub layer: usize,
    /// A sliding-window layer's window, in tokens: no query reaches keys
    /// further back.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub window: Option<u64>,
    /// Eq. 17: the mean over queries of each row's expected distance.
    pub mean_distance: Vec<f32>,
    /// Attention from the question's rows on the needle's keys.
    pub needle_mass: Vec<f32>,
    /// Each head's block-pooled map, `[blocks, blocks]`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub maps: Vec<Vec<f32>>,
    /// Each head's attention from the question's rows on each block of
    /// keys (the mean over those rows), `[blocks]`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub question: Vec<Vec<f32>>,
}

impl Profile {
    pub fn layer(&self, layer: usize) -> Option<&LayerRouting> {
        self.layers.iter().find(|l| l.layer == layer)
    }

    /// Mean attention distance (Eq. 17) per head of every layer.
    pub fn distances(&self) -> Vec<(usize, Vec<f32>)> {
        self.layers
            .iter()
            .map(|l| (l.layer, l.mean_distance.clone()))
            .collect()
    }

    /// The same without the maps (for reports).
    pub fn summary(&self) -> Vec<LayerRouting> {
        self.layers
            .iter()
            .map(|l| LayerRouting {
                maps: Vec::new(),
                question: Vec::new(),
                ..l.clone()
            })
            .collect()
    }
}

/// Checks that `layer` is a softmax layer and `head` one of its heads.
pub fn check_focus<S: ByteSource>(m: &OpenModel<S>, layer: usize, head: usize) -> Result<()> {
    let softmax = m.arch.softmax_layers();
    if !softmax.contains(&layer) {
        return Err(Error::Usage(format!(
            "layer {layer} is not a softmax layer; those are {softmax:?}"
        )));
    }
    if head as u64 >= m.arch.attn.heads {
        return Err(Error::Usage(format!(
            "head {head} does not exist; the layer has {} heads",
            m.arch.attn.heads
        )));
    }
    Ok(())
}

/// Runs `spec`'s prompt through `m` and reduces every softmax layer's
/// attention to its per-row statistics.
pub async fn profile<S: ByteSource>(
    backend: &Backend,
    m: &OpenModel<S>,
    spec: &RoutingSpec,
) -> Result<Profile> {
    let named = |e: Error| Error::Usage(format!("{}: {e}", m.name));
    let prompt = m
        .prompts()?
        .routing_prompt(spec.task, spec.length, spec.depth, spec.seed)
        .map_err(named)?;
    let ids = &prompt.positions.ids;
    let block = match spec.blocks {
        Blocks::Tokens(t) => t.max(1) as usize,
        Blocks::PerSide(n) => ids.len().div_ceil(n.max(1)).max(1),
    };
    let engine = backend.load(m, ids.len() as u32, true).await?;
    let mut s = engine.session(true);
    engine.prefill(&mut s, ids, Logits::None).await?;
    let (needle, queries) = (
        prompt.positions.needle.clone(),
        prompt.positions.queries.clone(),
    );
    let mut layers = Vec::new();
    let mut blocks = 1;
    for l in m.arch.softmax_layers() {
        let stats = engine
            .routing_stats(&s, l, block as u32, needle.clone())
            .await?;
        blocks = stats.blocks;
        layers.push(LayerRouting {
            layer: l,
            window: m.arch.window(l),
            mean_distance: stats.mean_distance(),
            needle_mass: stats.needle_mass(queries.clone()),
            maps: (0..stats.heads).map(|h| stats.pooled_map(h)).collect(),
            question: (0..stats.heads)
                .map(|h| stats.question_blocks(h, queries.clone()))
                .collect(),
        });
    }
    Ok(Profile {
        model: m.name.clone(),
        tokens: ids.len(),
        needle,
        queries,
        key: prompt.key,
        value: prompt.value,
        block,
        blocks,
        layers,
    })
}

/// A softmax layer ranked by how much attention its heads' question rows
/// pay the needle lost from the first model to the second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Affected {
    pub layer: usize,
    /// The head that lost the most needle mass, and how much (before - after).
    pub head: usize,
    pub needle_mass_drop: f32,
    /// Heads whose mean attention distance shrank, of how many.
    pub heads_closer: usize,
    pub heads: usize,
}

/// How the second profile differs from the first (after SFT against
/// before): the layers ranked by their largest loss of needle mass from
/// the question (where the retrieval heads show the shift; mean distances
/// over the whole prompt hardly move), and the layer and head to show first.
pub struct Comparison {
    pub ranking: Vec<Affected>,
    pub layer: usize,
    pub head: usize,
}

pub fn compare(before: &Profile, after: &Profile) -> Comparison {
    let closer: Vec<(usize, usize, usize)> = most_affected(&before.distances(), &after.distances());
    let mut ranking: Vec<Affected> = before
        .layers
        .iter()
        .filter_map(|b| {
            let a = after.layer(b.layer)?;
            let (head, drop) = b
                .needle_mass
                .iter()
                .zip(&a.needle_mass)
                .map(|(x, y)| x - y)
                .enumerate()
                .max_by(|x, y| x.1.total_cmp(&y.1))?;
            let &(_, heads_closer, heads) = closer.iter().find(|c| c.0 == b.layer)?;
            Some(Affected {
                layer: b.layer,
                head,
                needle_mass_drop: drop,
                heads_closer,
                heads,
            })
        })
        .collect();
    ranking.sort_by(|x, y| y.needle_mass_drop.total_cmp(&x.needle_mass_drop));
    let (layer, head) = ranking
        .first()
        .map_or((before.layers.first().map_or(0, |l| l.layer), 0), |r| {
            (r.layer, r.head)
        });
    Comparison {
        ranking,
        layer,
        head,
    }
}

/// Figure 4's fourth panel: ln(last / second to last) of the pooled maps
/// of `layer`, `head` (what the merge changed against sft).
pub fn last_log_ratio(profiles: &[Profile], layer: usize, head: usize) -> Option<Vec<f32>> {
    let n = profiles.len();
    if n < 2 {
        return None;
    }
    let map = |p: &Profile| p.layer(layer).and_then(|l| l.maps.get(head)).cloned();
    Some(log_ratio(
        &map(&profiles[n - 1])?,
        &map(&profiles[n - 2])?,
        1e-9,
    ))
}

/// A routing computation as saved: what `qklab routing --json` writes and
/// the page's "Export report" carries under `routing` (README, "The
/// routing report"). The maps of one layer and head only: every map of
/// every layer would be most of the file and says nothing the numbers
/// of `models` do not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingReport {
    pub prompt: PromptReport,
    /// The softmax layer and head whose maps are given.
    pub layer: usize,
    pub head: usize,
    /// Tokens per block of the pooled maps.
    pub block: usize,
    pub models: Vec<ModelRouting>,
    /// `layer`, `head`'s block-pooled map in each model, `[blocks, blocks]`.
    pub pooled_maps: Vec<Vec<f32>>,
    /// With two models or more: the first against the second, most
    /// affected layer first ([`compare`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub most_affected: Option<Vec<Affected>>,
    /// With two models or more: ln(last / second to last) of `pooled_maps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_ratio: Option<Vec<f32>>,
}

/// The prompt profiled, and its answer (None without a model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptReport {
    pub task: TaskKind,
    pub length: u32,
    pub depth: f64,
    pub seed: u64,
    pub key: Option<String>,
    pub value: Option<String>,
}

/// One model's numbers: every softmax layer's per-head distances and
/// needle mass, and where the prompt's parts fell in its tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRouting {
    pub model: String,
    pub layers: Vec<LayerRouting>,
    pub tokens: usize,
    /// [start, end) of the needle's tokens, and of the question's rows.
    pub needle_tokens: [u32; 2],
    pub query_tokens: [usize; 2],
}

impl RoutingReport {
    /// The report of `profiles` (in the order given: before SFT first) of
    /// `spec`'s prompt, with the maps of `layer`, `head`.
    pub fn of(
        spec: &RoutingSpec,
        profiles: &[Profile],
        layer: usize,
        head: usize,
    ) -> RoutingReport {
        let last = profiles.last();
        let prompt = PromptReport {
            task: spec.task,
            length: spec.length,
            depth: spec.depth,
            seed: spec.seed,
            key: last.map(|p| p.key.clone()),
            value: last.map(|p| p.value.clone()),
        };
        // The block asked for, as the command line says it; for a number
        // of blocks per side, the tokens per block it came to.
        let block = match spec.blocks {
            Blocks::Tokens(t) => t as usize,
            Blocks::PerSide(_) => last.map_or(1, |p| p.block),
        };
        let models = profiles
            .iter()
            .map(|p| ModelRouting {
                model: p.model.clone(),
                layers: p.summary(),
                tokens: p.tokens,
                needle_tokens: [p.needle.start, p.needle.end],
                query_tokens: [p.queries.start, p.queries.end],
            })
            .collect();
        let pooled_maps = profiles
            .iter()
            .filter_map(|p| p.layer(layer).and_then(|l| l.maps.get(head)).cloned())
            .collect();
        let (most_affected, log_ratio) = match profiles {
            [before, after, ..] => (
                Some(compare(before, after).ranking),
                last_log_ratio(profiles, layer, head),
            ),
            _ => (None, None),
        };
        RoutingReport {
            prompt,
            layer,
            head,
            block,
            models,
            pooled_maps,
            most_affected,
            log_ratio,
        }
    }
}
