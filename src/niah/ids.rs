//! The token-id task, for checkpoints that come without a tokenizer: a
//! haystack of random token ids holding one needle (a run of key ids, then
//! a run of value ids), and at the end the key again. The model is right
//! when it continues with the value. It needs no text, so it runs in any
//! vocabulary; what it measures is the copy-from-context that retrieval
//! rests on, not instruction following.

use std::ops::Range;

use super::pyrandom::PyRandom;
use crate::error::{Error, Result};

/// The task's name in sweeps and on the command line.
pub const ID_TASK: &str = "ids";
const KEY_LEN: usize = 4;
const VALUE_LEN: usize = 6;
/// Tokens allowed for the answer: the value and a little slack.
const MAX_NEW: usize = VALUE_LEN + 2;

#[derive(Debug, Clone, PartialEq)]
pub struct IdPrompt {
    pub ids: Vec<u32>,
    pub key: Vec<u32>,
    pub value: Vec<u32>,
    /// Positions of the needle (key and value) in `ids`.
    pub needle: Range<usize>,
    pub max_new: usize,
}

/// The shortest length the task fits in: one haystack token, the needle,
/// the key again and the answer's allowance.
pub fn min_id_length() -> u32 {
    (1 + 2 * KEY_LEN + VALUE_LEN + MAX_NEW) as u32
}

/// One prompt whose `ids.len() + max_new` equals `length`, with the needle
/// after `depth` of the haystack. Ids come from `0..vocab` less `avoid`
/// (the special tokens); the haystack never uses a key or value id, so the
/// key appears exactly twice.
pub fn id_prompt(
    vocab: u32,
    avoid: &[u32],
    length: u32,
    depth: f64,
    seed: u64,
) -> Result<IdPrompt> {
    if !(0.0..=1.0).contains(&depth) {
        return Err(Error::Usage(format!("depth {depth} is outside [0, 1]")));
    }
    if length < min_id_length() {
        return Err(Error::Usage(format!(
            "the token-id task needs a length of at least {} tokens, not {length}",
            min_id_length()
        )));
    }
    let usable: Vec<u32> = (0..vocab).filter(|i| !avoid.contains(i)).collect();
    if usable.len() < 2 * (KEY_LEN + VALUE_LEN) {
        return Err(Error::Usage(format!(
            "a vocabulary of {vocab} ids leaves too few for the token-id task"
        )));
    }
    let mut rng = PyRandom::new(seed);
    let needle_ids = rng.sample(&usable, KEY_LEN + VALUE_LEN);
    let (key, value) = (
        needle_ids[..KEY_LEN].to_vec(),
        needle_ids[KEY_LEN..].to_vec(),
    );
    let filler: Vec<u32> = usable
        .iter()
        .copied()
        .filter(|i| !needle_ids.contains(i))
        .collect();
    let haystack = length as usize - MAX_NEW - 2 * KEY_LEN - VALUE_LEN;
    let at = (depth * haystack as f64).round() as usize;
    let mut ids: Vec<u32> = (0..haystack)
        .map(|_| filler[rng.randbelow(filler.len() as u64) as usize])
        .collect();
    ids.splice(at..at, needle_ids.iter().copied());
    ids.extend_from_slice(&key);
    Ok(IdPrompt {
        ids,
        key,
        value,
        needle: at..at + KEY_LEN + VALUE_LEN,
        max_new: MAX_NEW,
    })
}

/// Generated ids as text for scoring: each id between spaces, so that a
/// value matches only whole ids (" 12 34 " is not inside " 112 345 ").
pub fn ids_text(ids: &[u32]) -> String {
    let mut s = String::from(" ");
    for id in ids {
        s += &format!("{id} ");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_depth_and_the_two_keys_hold() {
        for (length, depth, seed) in [
            (100u32, 0.0, 1u64),
            (257, 0.5, 2),
            (1000, 1.0, 3),
            (min_id_length(), 0.3, 4),
        ] {
            let p = id_prompt(259, &[256, 257, 258], length, depth, seed).unwrap();
            assert_eq!(p.ids.len() + p.max_new, length as usize);
            assert!(p.ids.iter().all(|&i| i < 256), "no special ids");
            assert_eq!(
                &p.ids[p.needle.start..p.needle.start + KEY_LEN],
                p.key.as_slice()
            );
            assert_eq!(
                &p.ids[p.needle.start + KEY_LEN..p.needle.end],
                p.value.as_slice()
            );
            assert_eq!(
                &p.ids[p.ids.len() - KEY_LEN..],
                p.key.as_slice(),
                "the prompt ends with the key"
            );
            let haystack = p.ids.len() - KEY_LEN - KEY_LEN - VALUE_LEN;
            assert_eq!(p.needle.start, (depth * haystack as f64).round() as usize);
            let keys = p
                .ids
                .windows(KEY_LEN)
                .filter(|w| *w == p.key.as_slice())
                .count();
            assert_eq!(keys, 2, "the key appears at the needle and at the end only");
            assert_eq!(
                p,
                id_prompt(259, &[256, 257, 258], length, depth, seed).unwrap(),
                "deterministic"
            );
        }
        assert!(id_prompt(259, &[], min_id_length() - 1, 0.5, 0).is_err());
        assert!(id_prompt(10, &[], 100, 0.5, 0).is_err());
        assert!(
            ids_text(&[112, 345]).contains(&ids_text(&[112]))
                && !ids_text(&[112, 345]).contains(&ids_text(&[12]))
        );
    }
}
