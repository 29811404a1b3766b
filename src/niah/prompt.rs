//! data.py's niah_prompt and its helpers, step for step (the function
//! names are the Python ones). Lengths are byte counts, which are data.py's
//! character counts because every text here is ASCII.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::essay::{py_space, split_sentences, EssayGen};
use super::pyrandom::PyRandom;
use super::tables::{ADJECTIVES, NOUNS};
use super::task::{NiahPrompt, Options, Source, Task, DEFAULT_MK_DISTRACTORS};
use crate::error::{Error, Result};

/// reference/assets/essays.txt, compiled in (the `File` source).
pub const ESSAYS_TXT: &str = include_str!("../../reference/assets/essays.txt");

/// S1's haystack unit (RULER's noise passage), one copy per line.
const NOISE: &str =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

fn value_kind(task: Task) -> &'static str {
    if task == Task::S3 {
        "uuid"
    } else {
        "number"
    }
}

/// The first line of the prompt.
pub fn intro(task: Task) -> String {
    let t = value_kind(task);
    format!("A special magic {t} is hidden within the following text. Make sure to memorize it. I will quiz you about the {t} afterwards.")
}

/// `One of the special magic numbers for {key} is: {value}.`
pub fn needle_text(task: Task, key: &str, value: &str) -> String {
    format!(
        "One of the special magic {}s for {key} is: {value}.",
        value_kind(task)
    )
}

pub fn question(task: Task, key: &str) -> String {
    format!(
        "What is the special magic {} for {key} mentioned in the provided text?",
        value_kind(task)
    )
}

/// The pre-filled start of the answer (it follows the question directly).
pub fn answer_prefix(task: Task, key: &str) -> String {
    format!(
        " The special magic {} for {key} mentioned in the provided text is",
        value_kind(task)
    )
}

/// A 64-bit sub-seed for one purpose ("kv", "haystack") of a sample seed:
/// the first 8 bytes, little-endian, of SHA-256("{label}:{seed}").
pub fn derive_seed(seed: u64, label: &str) -> u64 {
    let d = Sha256::digest(format!("{label}:{seed}").as_bytes());
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

fn make_value(task: Task, rng: &mut PyRandom) -> String {
    if task != Task::S3 {
        return rng.randrange(1_000_000, 10_000_000).to_string();
    }
    // str(uuid.UUID(int=getrandbits(128), version=4)): variant and version bits set
    let mut x = rng.getrandbits(128);
    x &= !(0xc000u128 << 48);
    x |= 0x8000u128 << 48;
    x &= !(0xf000u128 << 64);
    x |= 4u128 << 76;
    let h = format!("{x:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// RULER's rule: 1.0 if the value appears in the generated text,
/// case-insensitively, else 0.0.
pub fn score(generated: &str, value: &str) -> f64 {
    if generated.to_lowercase().contains(&value.to_lowercase()) {
        1.0
    } else {
        0.0
    }
}

fn n_distractors(task: Task, distractors: Option<u32>) -> u32 {
    distractors.unwrap_or(if task == Task::Mk {
        DEFAULT_MK_DISTRACTORS
    } else {
        0
    })
}

/// Smallest length niah_prompt accepts for every seed (computed with the
/// longest key words), default answer budget and BOS.
pub fn min_length(task: Task, distractors: Option<u32>) -> u32 {
    min_length_with(task, distractors, None, true)
}

/// min_length with data.py's other arguments.
pub fn min_length_with(
    task: Task,
    distractors: Option<u32>,
    max_new_tokens: Option<u32>,
    bos: bool,
) -> u32 {
    let nd = n_distractors(task, distractors) as usize;
    let longest = |w: &[&str]| {
        w.iter()
            .fold("", |b, x| if x.len() > b.len() { x } else { b })
            .to_string()
    };
    let key = longest(ADJECTIVES) + "-" + &longest(NOUNS);
    let value = "9".repeat(task.value_len() as usize);
    let mnt = max_new_tokens.unwrap_or(task.default_max_new_tokens()) as usize;
    let fixed = bos as usize
        + intro(task).len()
        + 2
        + question(task, &key).len()
        + answer_prefix(task, &key).len()
        + mnt;
    (fixed + (nd + 1) * (needle_text(task, &key, &value).len() + 1) - 1) as u32
}

fn file_sentences() -> &'static [String] {
    static SENTS: OnceLock<Vec<String>> = OnceLock::new();
    SENTS.get_or_init(|| split_sentences(ESSAYS_TXT))
}

/// `haystack_units`: the endless stream of haystack units of a sample.
fn haystack_units<'a>(
    task: Task,
    seed: u64,
    source: &'a Source,
) -> Result<Box<dyn Iterator<Item = String> + 'a>> {
    if task == Task::S1 {
        return Ok(Box::new(std::iter::repeat(NOISE.to_string())));
    }
    let hs = derive_seed(seed, "haystack");
    let sents: Vec<String> = match source {
        Source::Grammar => return Ok(Box::new(EssayGen::new(hs))),
        Source::File => {
            let s = file_sentences();
            let start = (hs % s.len() as u64) as usize;
            return Ok(Box::new(s.iter().cycle().skip(start).cloned()));
        }
        Source::Text(t) => {
            if !t.is_ascii() {
                return Err(Error::Usage(
                    "the essay text must be ASCII (one byte per character, as data.py counts)"
                        .into(),
                ));
            }
            split_sentences(t)
        }
    };
    if sents.is_empty() {
        return Err(Error::Usage("the essay text has no sentences".into()));
    }
    let start = (hs % sents.len() as u64) as usize;
    Ok(Box::new(sents.into_iter().cycle().skip(start)))
}

/// `_fragments`: padding candidates cut from a unit: sentence prefixes and,
/// for essays, word prefixes closed with '.'.
fn fragments(unit: &str, words_ok: bool) -> Vec<String> {
    let mut out = Vec::new();
    let sents = split_sentences(unit);
    for k in 1..sents.len() {
        out.push(sents[..k].join(" "));
    }
    if words_ok {
        let words: Vec<&str> = unit
            .split(|c: char| c.is_ascii() && py_space(c as u8))
            .filter(|w| !w.is_empty())
            .collect();
        for k in 1..words.len() {
            let joined = words[..k].join(" ");
            let w = joined.trim_end_matches([',', ';', ':']);
            out.push(if w.ends_with('.') {
                w.to_string()
            } else {
                format!("{w}.")
            });
        }
    }
    out
}

/// `_fill`: units whose join plus `used` bytes of needles and separators is
/// exactly `budget` bytes (data.py's docstring, steps 1-4).
fn fill(
    units_iter: &mut dyn Iterator<Item = String>,
    budget: usize,
    mut used: usize,
    words_ok: bool,
) -> Vec<String> {
    let mut units = Vec::new();
    let mut look = Vec::new();
    // 1. whole units while they fit
    for u in &mut *units_iter {
        if used + u.len() + 1 > budget {
            look.push(u);
            break;
        }
        used += u.len() + 1;
        units.push(u);
    }
    look.extend((&mut *units_iter).take(31));
    // 2. the longest whole units of the look-ahead that fit (first on ties,
    // as Python's max)
    loop {
        let gap = budget - used;
        let mut best: Option<usize> = None;
        for (i, u) in look.iter().enumerate() {
            if u.len() < gap && best.is_none_or(|b| u.len() > look[b].len()) {
                best = Some(i);
            }
        }
        let Some(b) = best else { break };
        let u = look.remove(b);
        used += u.len() + 1;
        units.push(u);
    }
    // 3. one fragment
    let gap = budget - used;
    let mut best: Option<String> = None;
    for u in &look {
        for f in fragments(u, words_ok) {
            if f.len() < gap && best.as_ref().is_none_or(|b| f.len() > b.len()) {
                best = Some(f);
            }
        }
    }
    if let Some(f) = best {
        used += f.len() + 1;
        units.push(f);
    }
    // 4. spaces
    let r = budget - used;
    if r > 0 {
        match units.last_mut() {
            Some(last) => last.push_str(&" ".repeat(r)),
            None => units.push(" ".repeat(r - 1)),
        }
    }
    units
}

/// `_insertion_index`: the boundary (0..=len) whose relative byte offset is
/// nearest `depth` (first on ties), and the depth an item put there has.
fn insertion_index(units: &[String], depth: f64) -> (usize, f64) {
    let d_total: usize = units.iter().map(|u| u.len() + 1).sum();
    if d_total == 0 {
        return (0, 0.0);
    }
    let (mut best_i, mut best_err, mut off) = (0, f64::INFINITY, 0usize);
    for i in 0..=units.len() {
        let err = (off as f64 / d_total as f64 - depth).abs();
        if i == 0 || err < best_err {
            best_i = i;
            best_err = err;
        }
        if i < units.len() {
            off += units[i].len() + 1;
        }
    }
    let off: usize = units[..best_i].iter().map(|u| u.len() + 1).sum();
    (best_i, off as f64 / d_total as f64)
}

/// One NIAH sample with data.py's defaults (grammar essays, BOS counted,
/// value_len + 8 tokens reserved for the answer). `distractors`: None = 8
/// for mk, 0 otherwise. Usage errors: depth outside [0, 1], too many
/// distractors, or a length too short for this sample's key (every length
/// of at least [`min_length`] works for every seed; a shorter one may work
/// for a seed with a short key, exactly as in data.py).
pub fn niah_prompt(
    task: Task,
    length: u32,
    depth: f64,
    seed: u64,
    distractors: Option<u32>,
) -> Result<NiahPrompt> {
    niah_prompt_with(
        task,
        length,
        depth,
        seed,
        &Options {
            distractors,
            ..Options::default()
        },
    )
}

/// niah_prompt with all of data.py's arguments.
pub fn niah_prompt_with(
    task: Task,
    length: u32,
    depth: f64,
    seed: u64,
    opts: &Options,
) -> Result<NiahPrompt> {
    if !(0.0..=1.0).contains(&depth) {
        return Err(Error::Usage(format!(
            "NIAH depth must be in [0, 1], got {depth}"
        )));
    }
    let nd = n_distractors(task, opts.distractors) as usize;
    if nd > NOUNS.len() - 1 {
        return Err(Error::Usage(format!(
            "too many distractors: {nd} (at most {})",
            NOUNS.len() - 1
        )));
    }

    let mut rng = PyRandom::new(derive_seed(seed, "kv"));
    let adj = *rng.choice(ADJECTIVES);
    let noun = *rng.choice(NOUNS);
    let key = format!("{adj}-{noun}");
    let value = make_value(task, &mut rng);
    let others: Vec<&str> = NOUNS.iter().copied().filter(|n| *n != noun).collect();
    let d_nouns = rng.sample(&others, nd);
    let mut d_values: Vec<String> = Vec::with_capacity(nd);
    while d_values.len() < nd {
        let v = make_value(task, &mut rng);
        if v != value && !d_values.contains(&v) {
            d_values.push(v);
        }
    }
    let d_depths: Vec<f64> = (0..nd).map(|_| rng.random()).collect();
    let distr: Vec<(String, String)> = d_nouns
        .iter()
        .zip(d_values)
        .map(|(n, v)| (format!("{adj}-{n}"), v))
        .collect();

    let mnt = opts.max_new_tokens.unwrap_or(task.default_max_new_tokens());
    let head = intro(task) + "\n";
    let tail = "\n".to_string() + &question(task, &key) + &answer_prefix(task, &key);
    let target = needle_text(task, &key, &value);
    let mut needles = vec![target.clone()];
    needles.extend(distr.iter().map(|(k, v)| needle_text(task, k, v)));
    let budget =
        length as i64 - (opts.bos as i64 + head.len() as i64 + tail.len() as i64 + mnt as i64);
    let used = (needles.iter().map(|n| n.len()).sum::<usize>() + needles.len() - 1) as i64;
    if budget < used {
        return Err(Error::Usage(format!(
            "length {length} too small for task {task} with {nd} distractors (needs >= {})",
            length as i64 - budget + used
        )));
    }

    let mut units_iter = haystack_units(task, seed, &opts.source)?;
    let mut units = fill(
        &mut *units_iter,
        budget as usize,
        used as usize,
        task != Task::S1,
    );
    for (nt, &dd) in needles[1..].iter().zip(&d_depths) {
        let (i, _) = insertion_index(&units, dd);
        units.insert(i, nt.clone());
    }
    let (i, depth_actual) = insertion_index(&units, depth);
    units.insert(i, target.clone());

    let sep = if task == Task::S1 { "\n" } else { " " };
    let prompt = head.clone() + &units.join(sep) + &tail;
    let start = head.len() + units[..i].iter().map(|u| u.len() + 1).sum::<usize>();
    debug_assert_eq!(&prompt[start..start + target.len()], target);
    let n_tokens = opts.bos as u32 + prompt.len() as u32 + mnt;
    debug_assert_eq!(n_tokens, length);
    Ok(NiahPrompt {
        task,
        seed,
        length,
        depth,
        depth_actual,
        key,
        value,
        needle_span: (start, start + target.len()),
        prompt,
        needle: target,
        distractors: distr,
        max_new_tokens: mnt,
        bos: opts.bos,
        n_tokens,
    })
}

/// The sample seeds of a sweep: sample s uses seed0 + s (data.py's
/// niah_sweep), so one sample has the same key, value and haystack text at
/// every length and depth.
pub fn sweep_seeds(seed0: u64, samples: u32) -> Result<Vec<u64>> {
    (0..samples as u64)
        .map(|s| {
            seed0
                .checked_add(s)
                .ok_or_else(|| Error::Usage(format!("sweep seeds {seed0} + {s} overflow 64 bits")))
        })
        .collect()
}

/// `niah_sweep`: niah_prompt for every (length, depth, sample), in that
/// nesting order (lengths outermost), lazily.
pub fn niah_sweep<'a>(
    task: Task,
    lengths: &'a [u32],
    depths: &'a [f64],
    samples: u32,
    seed0: u64,
    opts: &'a Options,
) -> Result<impl Iterator<Item = Result<NiahPrompt>> + 'a> {
    let seeds = sweep_seeds(seed0, samples)?;
    Ok(lengths.iter().flat_map(move |&l| {
        let seeds = seeds.clone();
        depths.iter().flat_map(move |&d| {
            seeds
                .clone()
                .into_iter()
                .map(move |s| niah_prompt_with(task, l, d, s, opts))
        })
    }))
}
