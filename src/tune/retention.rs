//! What a merge keeps of the fine-tune, measured two ways on an engine:
//!
//! - *task retention*: the user's prompts with answers (JSONL lines
//!   `{"prompt", "answer"}`), scored by exact match of the greedy answer
//!   as the reference scores the demo's arithmetic. It is computed
//!   teacher-forced, which is the same thing: the greedy continuation
//!   equals the answer's tokens exactly when the argmax at every answer
//!   position is the answer's next token.
//! - *agreement with sft*: sft continues a set of prompts greedily, and
//!   each candidate is scored on those continuations by the mean
//!   per-token KL(sft || candidate) and the share of tokens where its
//!   argmax is sft's token. The KL keeps sft's [`TOP`] most likely tokens
//!   apart and lumps the rest into one outcome: exact for vocabularies
//!   of up to `TOP + 1` tokens (the demo's), a lower bound of the full
//!   KL above that (coarser outcomes never raise a KL), so that sft's
//!   distributions fit in memory for any vocabulary.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::cpu::argmax;
use crate::model::engine::Engine;
use crate::model::engine::Logits;
use crate::tokenizer::Tokenizer;

/// sft's most likely tokens kept apart per position by the KL.
pub const TOP: usize = 1024;

/// Greedy tokens sft continues each agreement prompt with.
pub const CONTINUATION: usize = 32;

/// Short generic prompts sft continues when the user gives none.
pub const GENERIC_PROMPTS: [&str; 12] = [
    "The history of the city begins",
    "In the morning the market",
    "Q: 3+4=?\nA:",
    "Scientists have long wondered why",
    "The best way to learn a language is",
    "Once upon a time, in a small village,",
    "The report concludes that",
    "Q: 9-2+5=?\nA:",
    "Water boils at",
    "My favourite season is",
    "The committee met on Tuesday to",
    "Here is a short list of",
];

/// One prompt with its expected answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub prompt: String,
    pub answer: String,
}

/// The lines of a JSONL file of `{"prompt", "answer"}` (blank lines skipped).
pub fn parse_answers(text: &str) -> Result<Vec<Answer>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let a: Answer = serde_json::from_str(line).map_err(|e| {
            Error::Usage(format!(
                "answers, line {}: {e} (each line is {{\"prompt\": ..., \"answer\": ...}})",
                i + 1
            ))
        })?;
        if a.answer.is_empty() {
            return Err(Error::Usage(format!(
                "answers, line {}: the answer is empty",
                i + 1
            )));
        }
        out.push(a);
    }
    if out.is_empty() {
        return Err(Error::Usage(
            "the answers file holds no {\"prompt\", \"answer\"} line".into(),
        ));
    }
    Ok(out)
}

/// The prompts of a plain text file, one per line (blank lines skipped).
pub fn parse_prompts(text: &str) -> Result<Vec<String>> {
    let out: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.replace("\\n", "\n"))
        .collect();
    if out.is_empty() {
        return Err(Error::Usage("the prompts file holds no prompt".into()));
    }
    Ok(out)
}

/// A prompt and the continuation scored after it, as token ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Forced {
    pub prompt: Vec<u32>,
    pub target: Vec<u32>,
}

/// `answer`'s ids after `prompt`'s: the tail of the whole text's ids
/// where the prompt's are a prefix of them (the byte-level demo
/// tokenizer, most BPEs at a space), else the answer encoded alone.
pub fn forced_answer(tok: &Tokenizer, a: &Answer) -> Result<Forced> {
    let prompt = tok.encode(&a.prompt)?;
    let whole = tok.encode(&format!("{}{}", a.prompt, a.answer))?;
    let target = match whole.strip_prefix(prompt.as_slice()) {
        Some(tail) if !tail.is_empty() => tail.to_vec(),
        _ => {
            let alone = tok.encode(&a.answer)?;
            let bos = tok.encode("")?;
            alone
                .strip_prefix(bos.as_slice())
                .unwrap_or(&alone)
                .to_vec()
        }
    };
    Ok(Forced { prompt, target })
}

/// Token-id prompts for a model without a tokenizer: 12 prompts of 16
/// ids drawn with a fixed seed, avoiding `special`.
pub fn id_prompts(vocab: u32, special: &[u32]) -> Vec<Vec<u32>> {
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as u32
    };
    (0..GENERIC_PROMPTS.len())
        .map(|_| {
            let mut ids = Vec::with_capacity(16);
            while ids.len() < 16 {
                let id = next() % vocab.max(1);
                if !special.contains(&id) {
                    ids.push(id);
                }
            }
            ids
        })
        .collect()
}

/// Runs every item teacher-forced (prompt and target in one prefill, as
/// many together as the engine takes) and calls `row(item, t, logits)`
/// with the logits that predict `target[t]`.
pub async fn forced_rows(
    engine: &Engine,
    items: &[Forced],
    row: &mut dyn FnMut(usize, usize, &[f32]),
) -> Result<()> {
    let v = engine.arch().vocab_size as usize;
    let longest = items
        .iter()
        .map(|f| f.prompt.len() + f.target.len())
        .max()
        .unwrap_or(1);
    let size = engine.max_batch(longest).max(1);
    for (g, group) in items.chunks(size).enumerate() {
        let seqs: Vec<Vec<u32>> = group
            .iter()
            .map(|f| [f.prompt.as_slice(), f.target.as_slice()].concat())
            .collect();
        let ids: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let mut batch = engine.batch(group.len(), false).await?;
        let logits = engine.prefill_batch(&mut batch, &ids, Logits::All).await?;
        for (j, (f, rows)) in group.iter().zip(&logits).enumerate() {
            if f.prompt.is_empty() {
                return Err(Error::Usage("a scored prompt is empty".into()));
            }
            for t in 0..f.target.len() {
                row(g * size + j, t, &rows[(f.prompt.len() - 1 + t) * v..][..v]);
            }
        }
    }
    Ok(())
}

/// Exact match of each item's target under greedy decoding.
pub async fn exact_matches(engine: &Engine, items: &[Forced]) -> Result<Vec<bool>> {
    let mut ok: Vec<bool> = items.iter().map(|f| !f.target.is_empty()).collect();
    forced_rows(engine, items, &mut |i, t, row| {
        if argmax(row) != items[i].target[t] {
            ok[i] = false;
        }
    })
    .await?;
    Ok(ok)
}

/// sft's distribution at one position: its top tokens' log-probabilities
/// and the log-probability of all the others together.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    top: Vec<(u32, f32)>,
    rest: f32,
}

fn log_sum_exp(values: impl Iterator<Item = f32> + Clone) -> f32 {
    let m = values.clone().fold(f32::NEG_INFINITY, f32::max);
    if m == f32::NEG_INFINITY {
        return m;
    }
    m + values.map(|x| ((x - m) as f64).exp()).sum::<f64>().ln() as f32
}

/// Log-probabilities of `top` tokens and of the rest lumped, under `row`.
fn partition(row: &[f32], top: &[u32]) -> (Vec<f32>, f32) {
    let lse = log_sum_exp(row.iter().copied());
    let mut is_top = vec![false; row.len()];
    for &t in top {
        is_top[t as usize] = true;
    }
    let rest = log_sum_exp(
        row.iter()
            .zip(&is_top)
            .filter(|(_, &k)| !k)
            .map(|(x, _)| *x),
    ) - lse;
    (top.iter().map(|&t| row[t as usize] - lse).collect(), rest)
}

impl Reference {
    pub fn of(row: &[f32]) -> Reference {
        let mut idx: Vec<u32> = (0..row.len() as u32).collect();
        let k = TOP.min(row.len());
        idx.select_nth_unstable_by(k.saturating_sub(1), |&a, &b| {
            row[b as usize].total_cmp(&row[a as usize])
        });
        idx.truncate(k);
        let (logp, rest) = partition(row, &idx);
        Reference {
            top: idx.into_iter().zip(logp).collect(),
            rest,
        }
    }

    /// KL(this || `row`) over the top tokens and the lumped rest.
    pub fn kl(&self, row: &[f32]) -> f64 {
        let ids: Vec<u32> = self.top.iter().map(|t| t.0).collect();
        let (logq, rest_q) = partition(row, &ids);
        let term = |lp: f32, lq: f32| {
            if lp == f32::NEG_INFINITY {
                0.0
            } else {
                (lp as f64).exp() * (lp as f64 - lq as f64)
            }
        };
        let kl: f64 = self
            .top
            .iter()
            .zip(&logq)
            .map(|(&(_, lp), &lq)| term(lp, lq))
            .sum::<f64>()
            + term(self.rest, rest_q);
        kl.max(0.0)
    }
}

/// sft's greedy continuations of `prompts` and its distributions along them.
pub struct SftReference {
    pub items: Vec<Forced>,
    /// Per item, per continuation token.
    pub refs: Vec<Vec<Reference>>,
}

impl SftReference {
    /// Continues each prompt greedily on `engine` (loaded with sft) for up
    /// to [`CONTINUATION`] tokens, ending after a `stop` token, then reads
    /// sft's own distributions along the continuations.
    pub async fn make(engine: &Engine, prompts: &[Vec<u32>], stop: &[u32]) -> Result<SftReference> {
        let mut items = Vec::with_capacity(prompts.len());
        for p in prompts {
            let mut s = engine.batch(1, false).await?;
            let target = engine
                .generate_greedy(&mut s, p, CONTINUATION, stop)
                .await?;
            items.push(Forced {
                prompt: p.clone(),
                target,
            });
        }
        let mut refs: Vec<Vec<Reference>> = items
            .iter()
            .map(|f| Vec::with_capacity(f.target.len()))
            .collect();
        forced_rows(engine, &items, &mut |i, _, row| {
            refs[i].push(Reference::of(row))
        })
        .await?;
        Ok(SftReference { items, refs })
    }

    /// (mean per-token KL(sft || engine), share of tokens whose argmax is sft's, in %).
    pub async fn agreement(&self, engine: &Engine) -> Result<(f64, f64)> {
        let (mut kl, mut agree, mut n) = (0.0, 0usize, 0usize);
        forced_rows(engine, &self.items, &mut |i, t, row| {
            kl += self.refs[i][t].kl(row);
            agree += usize::from(argmax(row) == self.items[i].target[t]);
            n += 1;
        })
        .await?;
        let n = n.max(1) as f64;
        Ok((kl / n, 100.0 * agree as f64 / n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The full KL, the plain way.
    fn full_kl(p: &[f32], q: &[f32]) -> f64 {
        let lp = log_sum_exp(p.iter().copied());
        let lq = log_sum_exp(q.iter().copied());
        p.iter()
            .zip(q)
            .map(|(&a, &b)| ((a - lp) as f64).exp() * ((a - lp) as f64 - (b - lq) as f64))
            .sum()
    }

    fn row(seed: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761) ^ seed.wrapping_mul(40503)) % 1000) as f32
                    / 100.0
            })
            .collect()
    }

    #[test]
    fn kl_is_exact_for_small_vocabularies_and_a_lower_bound_above() {
        let (p, q) = (row(1, 200), row(2, 200));
        assert!((Reference::of(&p).kl(&q) - full_kl(&p, &q)).abs() < 1e-5);
        assert!(Reference::of(&p).kl(&p).abs() < 1e-6);
        let (p, q) = (row(3, 5000), row(4, 5000));
        let (lumped, full) = (Reference::of(&p).kl(&q), full_kl(&p, &q));
        assert!(lumped <= full + 1e-6 && lumped > 0.0, "{lumped} vs {full}");
    }

    #[test]
    fn answers_parse_with_line_numbers() {
        let a = parse_answers(
            "{\"prompt\": \"Q: 1+1=?\\nA:\", \"answer\": \" 1+1=2. So the answer is 2.\"}\n\n",
        )
        .unwrap();
        assert_eq!(a[0].prompt, "Q: 1+1=?\nA:");
        let e = parse_answers("{\"prompt\": \"x\", \"answer\": \"y\"}\n{\"prompt\": 3}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(parse_answers("\n").is_err());
    }
}
