//! One error type for the whole crate. Every variant names the file or
//! tensor it is about, so the page and the CLI can print it as is; only the
//! wasm boundary turns it into a JavaScript error.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: cannot read: {reason}")]
    Io { file: String, reason: String },

    #[error("{file}: empty file (0 bytes), not a safetensors checkpoint")]
    EmptyFile { file: String },

    #[error("{file}: this is {what}, not a safetensors file")]
    WrongFileKind { file: String, what: &'static str },

    #[error(
        "{file}: file is {size} bytes, too short to hold the 8-byte safetensors header length"
    )]
    TooShort { file: String, size: u64 },

    #[error("{file}: header length {len} bytes exceeds the {limit}-byte limit (corrupt or not a safetensors file)")]
    HeaderTooLarge { file: String, len: u64, limit: u64 },

    #[error("{file}: header length {len} bytes runs past the end of the file ({size} bytes): the file is truncated or corrupt")]
    HeaderPastEnd { file: String, len: u64, size: u64 },

    #[error("{file}: header is not valid JSON: {reason}")]
    HeaderJson { file: String, reason: String },

    #[error("{file}: tensor {tensor:?} has unknown dtype {dtype:?}")]
    UnknownDtype {
        file: String,
        tensor: String,
        dtype: String,
    },

    #[error("{file}: tensor {tensor:?} appears twice in the header")]
    DuplicateTensor { file: String, tensor: String },

    #[error("{file}: tensor {tensor:?}: data_offsets [{begin}, {end}] are reversed")]
    ReversedOffsets {
        file: String,
        tensor: String,
        begin: u64,
        end: u64,
    },

    #[error("{file}: tensor {tensor:?}: shape {shape:?} of {dtype} needs {expected} bytes but data_offsets span {got}")]
    LengthMismatch {
        file: String,
        tensor: String,
        shape: Vec<u64>,
        dtype: String,
        expected: u64,
        got: u64,
    },

    #[error("{file}: tensor {tensor:?}: size arithmetic overflows 64 bits (shape {shape:?})")]
    SizeOverflow {
        file: String,
        tensor: String,
        shape: Vec<u64>,
    },

    #[error("{file}: the tensors need {needed} bytes of data but the file holds {data_len}: the file is truncated")]
    Truncated {
        file: String,
        needed: u64,
        data_len: u64,
    },

    #[error("{file}: tensor {tensor:?} ends at byte {end} of the data section, outside it ({data_len} bytes)")]
    OffsetOutOfBounds {
        file: String,
        tensor: String,
        end: u64,
        data_len: u64,
    },

    #[error("{file}: tensors {first:?} and {second:?} overlap in the data section")]
    Overlap {
        file: String,
        first: String,
        second: String,
    },

    #[error(
        "{file}: {gap} bytes of the data section before tensor {tensor:?} belong to no tensor"
    )]
    Gap {
        file: String,
        tensor: String,
        gap: u64,
    },

    #[error("{file}: {extra} bytes after the last tensor belong to no tensor")]
    TrailingBytes { file: String, extra: u64 },

    #[error("{file}: tensor {tensor:?} holds {count} non-finite values (NaN or infinity), first at element {first}")]
    NonFinite {
        file: String,
        tensor: String,
        count: u64,
        first: u64,
    },

    #[error("{file}: invalid index: {reason}")]
    Index { file: String, reason: String },

    #[error("index {index} names shard {shard:?}, which is not among the files given")]
    MissingShard { index: String, shard: String },

    #[error("index {index} places tensor {tensor:?} in shard {shard:?}, but that shard does not hold it")]
    IndexTensorMissing {
        index: String,
        tensor: String,
        shard: String,
    },

    #[error("tensor {tensor:?} is in shard {shard:?} but not in the index {index}")]
    TensorNotIndexed {
        index: String,
        tensor: String,
        shard: String,
    },

    #[error("tensor {tensor:?} appears in two shards: {first:?} and {second:?}")]
    TensorInTwoShards {
        tensor: String,
        first: String,
        second: String,
    },

    #[error("no .safetensors file among the files given ({files})")]
    NoWeights { files: String },

    #[error("{file}: invalid config.json: {reason}")]
    Config { file: String, reason: String },

    #[error("the checkpoint does not match its config:\n{}", lines(.problems))]
    ConfigMismatch { problems: Vec<String> },

    /// Activations that turned NaN or infinite: `at` says where ("at layer
    /// 3 (softmax)", or the logits where the engine cannot tell the layer).
    #[error("the model produced NaN/inf {at}: its weights or its config's numbers (rms_norm_eps, rope_theta, the scales) cannot be right")]
    BrokeNumerically { at: String },

    #[error("the two checkpoints cannot be merged:\n{}", lines(.problems))]
    Incompatible { problems: Vec<String> },

    #[error("the recipe does not match these checkpoints:\n{}", lines(.problems))]
    RecipeMismatch { problems: Vec<String> },

    #[error("cannot infer a HypeNet architecture from the tensors: {reason}")]
    Infer { reason: String },

    #[error("tensor {tensor:?} is {dtype}, which {what} cannot use (only BF16, F16 and F32)")]
    UnsupportedDtype {
        tensor: String,
        dtype: String,
        what: String,
    },

    #[error("no tensor named {tensor:?} in the checkpoint")]
    NoSuchTensor { tensor: String },

    #[error("output check failed for {file}: {reason}")]
    OutputCheck { file: String, reason: String },

    #[error("GPU: {0}")]
    Gpu(String),

    /// The model (or the context asked for) exceeds what the GPU adapter
    /// allows; the message names the limit and by how much.
    #[error("the model does not fit here: {0}")]
    TooLarge(String),

    /// Something the user asked for or gave that cannot be done as asked.
    #[error("{0}")]
    Usage(String),

    /// The page's own machinery failed: a part of the DOM missing, a
    /// browser API refusing, the engine's worker unreachable or speaking
    /// out of turn. Never the user's doing, unlike [`Error::Usage`], so
    /// the page can tell a bug from a mistake; printed as is.
    #[error("{0}")]
    Page(String),
}

fn lines(items: &[String]) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str("  - ");
        out.push_str(item);
    }
    out
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(file: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Error::Io {
            file: file.to_string(),
            reason: reason.to_string(),
        }
    }
}
