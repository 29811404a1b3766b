//! A model's exact match on prompts with answers, by greedy decoding: the
//! independent check of the teacher-forced retention score `tune` ranks
//! merges by (the two must agree answer for answer; tests/tune.rs holds
//! them to it). Decoding is batched, so each answer of a batch decodes as
//! long as the batch's longest and is cut to its own length after.

use serde::Serialize;

use super::model::{Backend, OpenModel};
use crate::error::{Error, Result};
use crate::model::engine::Engine;
use crate::source::ByteSource;
use crate::sweep::percent_true;
use crate::tune::retention::{forced_answer, Answer, Forced};

/// How many of the answers a model gives exactly.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnswersReport {
    /// Exact match, % of the answers.
    pub exact: f64,
    /// Per answer, whether the greedy answer is its tokens exactly.
    pub answers: Vec<bool>,
    /// The engine that decoded them. Left out of the JSON, which has
    /// always held the scores alone.
    #[serde(skip)]
    pub engine: String,
}

/// The context one item needs at most: the longest prompt, then the
/// longest answer (a batch decodes all its items that far).
fn context(items: &[Forced]) -> usize {
    items.iter().map(|f| f.prompt.len()).max().unwrap_or(1)
        + items.iter().map(|f| f.target.len()).max().unwrap_or(1)
}

/// Loads `m` on `backend` and scores its greedy answers to `answers`.
pub async fn score_answers<S: ByteSource>(
    backend: &Backend,
    m: &OpenModel<S>,
    answers: &[Answer],
) -> Result<AnswersReport> {
    let tok = m.tokenizer.as_ref().ok_or_else(|| {
        Error::Usage("scoring answers needs the checkpoint's tokenizer.json".into())
    })?;
    let items = answers
        .iter()
        .map(|x| forced_answer(tok, x))
        .collect::<Result<Vec<_>>>()?;
    let engine = backend.load(m, context(&items) as u32, false).await?;
    let matched = greedy_matches(&engine, &items).await?;
    Ok(AnswersReport {
        exact: percent_true(&matched),
        answers: matched,
        engine: engine.backend(),
    })
}

/// Per item, whether greedy decoding after its prompt gives its target
/// token for token; as many items together as the engine takes.
pub async fn greedy_matches(engine: &Engine, items: &[Forced]) -> Result<Vec<bool>> {
    let longest = context(items);
    let mut matched = Vec::with_capacity(items.len());
    for group in items.chunks(engine.max_batch(longest).max(1)) {
        let mut b = engine.batch(group.len(), false).await?;
        let prompts: Vec<&[u32]> = group.iter().map(|f| f.prompt.as_slice()).collect();
        let first = engine.next_tokens(&mut b, &prompts).await?;
        // The first token came with the prompt's prefill.
        let steps = group
            .iter()
            .map(|f| f.target.len())
            .max()
            .unwrap_or(1)
            .saturating_sub(1);
        let seqs: Vec<usize> = (0..group.len()).collect();
        let rest = engine.decode(&mut b, &seqs, &first, steps).await?;
        for ((f, t0), more) in group.iter().zip(first).zip(rest) {
            let got: Vec<u32> = std::iter::once(t0)
                .chain(more)
                .take(f.target.len())
                .collect();
            matched.push(got == f.target);
        }
    }
    Ok(matched)
}
