//! Prompts for a checkpoint: the NIAH task, parsed once, and what a
//! checkpoint offers (its tokenizer, its vocabulary) to turn a task into
//! token ids: every sample of a sweep, or the one prompt a routing
//! picture is drawn on, with where its needle and question fall.

use std::ops::Range;

use crate::checkpoint::Checkpoint;
use crate::config::Arch;
use crate::error::{Error, Result};
use crate::niah::{id_prompt, ids_text, niah_prompt, IdPrompt, NiahPrompt, Task, ID_TASK};
use crate::source::ByteSource;
use crate::tokenizer::{Tokenizer, TOKENIZER_FILE};

/// What a sweep or a routing picture asks: one of the text tasks, or the
/// token-id task for checkpoints without a tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    Text(Task),
    Ids,
}

impl TaskKind {
    /// "s1", "s2", "s3", "mk" or "ids".
    pub fn parse(s: &str) -> Result<TaskKind> {
        if s == ID_TASK {
            return Ok(TaskKind::Ids);
        }
        Task::parse(s).map(TaskKind::Text).map_err(|_| {
            Error::Usage(format!(
                "unknown NIAH task {s:?}; one of s1, s2, s3, mk, {ID_TASK}"
            ))
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Text(t) => t.name(),
            TaskKind::Ids => ID_TASK,
        }
    }
}

impl serde::Serialize for TaskKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for TaskKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TaskKind::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TaskKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<TaskKind> {
        TaskKind::parse(s)
    }
}

/// One prompt to run.
#[derive(Debug, Clone)]
pub struct Sample {
    pub task: TaskKind,
    pub length: u32,
    pub depth: f64,
    pub seed: u64,
    pub ids: Vec<u32>,
    pub value: String,
    pub max_new: usize,
}

/// The reference evaluation's seeds (reference/train.py `niah_suite`):
/// sample s of depth index d at `length` uses seed + 1000 s + 17 d + length,
/// so seed 12345 gives the prompts behind docs/demo-reproduction.md.
pub fn sample_seed(seed: u64, sample: u32, depth_index: usize, length: u32) -> u64 {
    seed + 1000 * sample as u64 + 17 * depth_index as u64 + length as u64
}

/// Every (length, depth, sample) of a sweep with its seed, in sweep order.
fn grid<'a>(
    lengths: &'a [u32],
    depths: &'a [f64],
    samples: u32,
    seed: u64,
) -> impl Iterator<Item = (u32, f64, u64)> + 'a {
    lengths.iter().flat_map(move |&length| {
        depths.iter().enumerate().flat_map(move |(d, &depth)| {
            (0..samples).map(move |s| (length, depth, sample_seed(seed, s, d, length)))
        })
    })
}

/// Every (length, depth, sample) prompt of a sweep, tokenized by `tok`.
pub fn niah_samples(
    task: Task,
    lengths: &[u32],
    depths: &[f64],
    samples: u32,
    seed: u64,
    distractors: Option<u32>,
    tok: &Tokenizer,
) -> Result<Vec<Sample>> {
    grid(lengths, depths, samples, seed)
        .map(|(length, depth, seed)| {
            let (p, ids) = fitted_prompt(task, length, depth, seed, distractors, tok)?;
            Ok(Sample {
                task: TaskKind::Text(task),
                length,
                depth,
                seed,
                ids,
                value: p.value,
                max_new: p.max_new_tokens as usize,
            })
        })
        .collect()
}

/// A prompt of `length` tokens under `tok`, and its ids. The generator
/// counts bytes (the demo's tokens, where this is exact at once); for other
/// tokenizers the byte budget is rescaled until the token count, answer
/// allowance included, is within 1% of `length` (at most 8 tries; the
/// closest is kept).
pub fn fitted_prompt(
    task: Task,
    length: u32,
    depth: f64,
    seed: u64,
    distractors: Option<u32>,
    tok: &Tokenizer,
) -> Result<(NiahPrompt, Vec<u32>)> {
    let mut budget = length;
    let mut best: Option<(u32, NiahPrompt, Vec<u32>)> = None;
    for _ in 0..8 {
        let p = match niah_prompt(task, budget, depth, seed, distractors) {
            Ok(p) => p,
            // A budget rescaled below the template's size: keep the closest so far.
            Err(_) if best.is_some() => break,
            Err(e) => return Err(e),
        };
        let ids = tok.encode(&p.prompt)?;
        let tokens = ids.len() as u32 + p.max_new_tokens;
        let miss = tokens.abs_diff(length);
        let next = (budget as f64 * length as f64 / tokens.max(1) as f64).round() as u32;
        if best.as_ref().is_none_or(|b| miss < b.0) {
            best = Some((miss, p, ids));
        }
        if miss as f64 <= 0.01 * length as f64 || next == budget {
            break;
        }
        budget = next;
    }
    let (_, p, ids) = best.expect("the first try either succeeds or returns");
    Ok((p, ids))
}

/// What a checkpoint offers for making prompts: its tokenizer, if it has
/// one, and its vocabulary for the token-id task.
pub struct PromptMaker<'a> {
    pub tokenizer: Option<&'a Tokenizer>,
    pub vocab: u32,
    /// Special ids (BOS, EOS, PAD) the token-id task must not use.
    pub special: Vec<u32>,
}

impl<'a> PromptMaker<'a> {
    /// What `ck` offers, with `arch` (its architecture, already resolved:
    /// the vocabulary comes from it) and `tokenizer` (its tokenizer.json,
    /// if any).
    pub fn of<S: ByteSource>(
        ck: &Checkpoint<S>,
        arch: &Arch,
        tokenizer: Option<&'a Tokenizer>,
    ) -> PromptMaker<'a> {
        PromptMaker {
            tokenizer,
            vocab: arch.vocab_size as u32,
            special: ck.special_ids(),
        }
    }

    fn tokenizer_for(&self, what: &str) -> Result<&'a Tokenizer> {
        self.tokenizer
            .ok_or_else(|| Error::Usage(format!("no {TOKENIZER_FILE}: {what}")))
    }

    /// Every sample of a sweep of `task`: a text task needs the tokenizer;
    /// the token-id task does not.
    pub fn samples(
        &self,
        task: TaskKind,
        lengths: &[u32],
        depths: &[f64],
        samples: u32,
        seed: u64,
        distractors: Option<u32>,
    ) -> Result<Vec<Sample>> {
        match task {
            TaskKind::Text(t) => {
                let tok = self.tokenizer_for(&format!("text tasks cannot be tokenized; without one only the token-id task ({ID_TASK}) runs"))?;
                niah_samples(t, lengths, depths, samples, seed, distractors, tok)
            }
            TaskKind::Ids => grid(lengths, depths, samples, seed)
                .map(|(length, depth, seed)| {
                    let p = id_prompt(self.vocab, &self.special, length, depth, seed)?;
                    Ok(Sample {
                        task,
                        length,
                        depth,
                        seed,
                        ids: p.ids,
                        value: ids_text(&p.value),
                        max_new: p.max_new,
                    })
                })
                .collect(),
        }
    }

    /// Generated ids as the text a sample of `task` is scored on.
    pub fn text(&self, task: TaskKind, ids: &[u32]) -> Result<String> {
        match (task, self.tokenizer) {
            (TaskKind::Ids, _) | (_, None) => Ok(ids_text(ids)),
            (_, Some(tok)) => tok.decode(ids),
        }
    }

    /// The prompt a routing picture of `task` is drawn on, as this
    /// checkpoint sees it (a text task fitted to its tokenizer's tokens).
    pub fn routing_prompt(
        &self,
        task: TaskKind,
        length: u32,
        depth: f64,
        seed: u64,
    ) -> Result<RoutingPrompt> {
        match task {
            TaskKind::Ids => {
                let p = id_prompt(self.vocab, &self.special, length, depth, seed)?;
                Ok(RoutingPrompt {
                    positions: PromptPositions::of_ids(&p),
                    key: ids_text(&p.key),
                    value: ids_text(&p.value),
                })
            }
            TaskKind::Text(t) => {
                let tok = self.tokenizer_for(&format!(
                    "text prompts cannot be tokenized; use the token-id task ({ID_TASK})"
                ))?;
                let (p, ids) = fitted_prompt(t, length, depth, seed, None, tok)?;
                Ok(RoutingPrompt {
                    positions: PromptPositions::of(tok, &p, ids)?,
                    key: p.key,
                    value: p.value,
                })
            }
        }
    }
}

/// Rows of the question a text prompt's needle mass averages over.
pub const QUESTION_ROWS: usize = 8;

/// Where a NIAH prompt's parts fall in its tokens: the prompt's ids, the
/// needle's token range, and the question's (the tail after the haystack,
/// whose queries the needle mass averages over). Positions are counted by
/// tokenizing the text before each part.
#[derive(Debug, Clone)]
pub struct PromptPositions {
    pub ids: Vec<u32>,
    pub needle: Range<u32>,
    pub queries: Range<usize>,
}

/// The prompt one routing picture is drawn on, with its answer.
#[derive(Debug, Clone)]
pub struct RoutingPrompt {
    pub positions: PromptPositions,
    pub key: String,
    pub value: String,
}

impl PromptPositions {
    /// A token-id prompt's positions: the question is the key at its end.
    pub fn of_ids(p: &IdPrompt) -> PromptPositions {
        let needle = p.needle.start as u32..p.needle.end as u32;
        PromptPositions {
            ids: p.ids.clone(),
            needle,
            queries: p.ids.len() - p.key.len()..p.ids.len(),
        }
    }

    /// A text prompt's positions, given its ids under `tok`. The queries
    /// are the question's last [`QUESTION_ROWS`] positions, where the
    /// answer is about to be produced: the rows a retrieval head looks
    /// back to the needle from (earlier question tokens still read it).
    pub fn of(tok: &Tokenizer, p: &NiahPrompt, ids: Vec<u32>) -> Result<PromptPositions> {
        let tokens_before =
            |byte: usize| -> Result<u32> { Ok(tok.encode(&p.prompt[..byte])?.len() as u32) };
        let needle = tokens_before(p.needle_span.0)?..tokens_before(p.needle_span.1)?;
        let tail = p.prompt.rfind('\n').unwrap_or(0);
        let question = tokens_before(tail)? as usize;
        let queries = question.max(ids.len().saturating_sub(QUESTION_ROWS))..ids.len();
        Ok(PromptPositions {
            ids,
            needle,
            queries,
        })
    }
}
