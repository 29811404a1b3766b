//! What a NIAH prompt is made of: the tasks, the generator's options and
//! the prompt it returns (data.py's names and defaults).

use crate::error::{Error, Result};

/// Token id of BOS in the byte-level vocabulary (data.py's `BOS`).
pub const BOS: u32 = 256;

/// Distractor needles of `mk` when the caller gives none (data.py's
/// `DEFAULT_MK_DISTRACTORS`).
pub const DEFAULT_MK_DISTRACTORS: u32 = 8;

/// The four tasks: S1 (noise haystack, 7-digit value), S2 (essay, 7-digit
/// value), S3 (essay, UUID value), Mk (S2 plus distractor needles whose keys
/// share the target's adjective).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    S1,
    S2,
    S3,
    Mk,
}

impl Task {
    pub const ALL: [Task; 4] = [Task::S1, Task::S2, Task::S3, Task::Mk];

    /// "s1" | "s2" | "s3" | "mk": data.py's task names.
    pub fn parse(s: &str) -> Result<Task> {
        Task::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| Error::Usage(format!("unknown NIAH task {s:?}; one of s1, s2, s3, mk")))
    }

    pub fn name(self) -> &'static str {
        match self {
            Task::S1 => "s1",
            Task::S2 => "s2",
            Task::S3 => "s3",
            Task::Mk => "mk",
        }
    }

    /// Bytes of the value: 36 for a UUID (S3), else 7 digits.
    pub fn value_len(self) -> u32 {
        if self == Task::S3 {
            36
        } else {
            7
        }
    }

    /// Tokens reserved for the answer when the caller gives none:
    /// value_len + 8 (data.py's `default_max_new_tokens`).
    pub fn default_max_new_tokens(self) -> u32 {
        self.value_len() + 8
    }
}

impl std::str::FromStr for Task {
    type Err = Error;
    fn from_str(s: &str) -> Result<Task> {
        Task::parse(s)
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the essay haystack (s2, s3, mk) comes from; s1 always uses the
/// noise passage. data.py's `source` argument.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Source {
    /// The seeded grammar (the default).
    #[default]
    Grammar,
    /// reference/assets/essays.txt (compiled in), from a seeded sentence on.
    File,
    /// Another essay text (what data.py reads from a path): ASCII, since
    /// data.py counts characters as tokens.
    Text(String),
}

/// Everything niah_prompt takes besides task, length, depth and seed, with
/// data.py's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Distractor needles; None = 8 for mk, 0 otherwise.
    pub distractors: Option<u32>,
    /// Tokens reserved for the answer; None = value_len + 8.
    pub max_new_tokens: Option<u32>,
    /// Whether BOS counts in the length (the caller prepends it).
    pub bos: bool,
    pub source: Source,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            distractors: None,
            max_new_tokens: None,
            bos: true,
            source: Source::Grammar,
        }
    }
}

/// One NIAH sample: the fields of the dict data.py's niah_prompt returns.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NiahPrompt {
    pub task: Task,
    pub seed: u64,
    /// Token budget: bos + prompt bytes + max_new_tokens == length.
    pub length: u32,
    /// The depth asked for, in [0, 1].
    pub depth: f64,
    /// The depth the needle got: (needle start - haystack start) /
    /// (haystack bytes - needle bytes), at the nearest unit boundary.
    pub depth_actual: f64,
    /// `adjective-noun`.
    pub key: String,
    /// 7 digits, or a UUID4 for S3.
    pub value: String,
    pub prompt: String,
    /// The target needle sentence.
    pub needle: String,
    /// Byte offsets [start, end) of the needle in the prompt.
    pub needle_span: (usize, usize),
    /// (key, value) of each distractor needle.
    pub distractors: Vec<(String, String)>,
    pub max_new_tokens: u32,
    pub bos: bool,
    /// bos + prompt bytes + max_new_tokens (== length).
    pub n_tokens: u32,
}

impl NiahPrompt {
    /// Token ids of the prompt for the byte-level tokenizer: BOS (if bos)
    /// then one id per byte (data.py's `encode`).
    pub fn ids(&self) -> Vec<u32> {
        let bos = self.bos.then_some(BOS);
        bos.into_iter()
            .chain(self.prompt.bytes().map(u32::from))
            .collect()
    }
}
