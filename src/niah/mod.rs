//! NIAH prompts (RULER's niah_single_1/2/3 and niah_multikey_1), a port of
//! reference/data.py that is byte for byte identical to it: the same
//! (task, length, depth, seed) gives the same prompt here, natively, in wasm
//! and in the PyTorch reference, so results of the three can be compared
//! sample by sample. The contract is `../shared/SPEC-methods.md`, "NIAH
//! tasks"; data.py's module docstring says how the length is fitted and
//! where the needle goes. tests/niah_gen.rs checks the port against the
//! Python on many prompts.
//!
//! Tokens are bytes (the demo tokenizer: a token per UTF-8 byte, BOS =
//! 256), all text made here is ASCII, and a sample's token count is
//! `bos + prompt bytes + max_new_tokens`, which [`niah_prompt`] makes equal
//! to the requested length exactly (the answer's tokens are reserved in it).
//!
//! No filesystem: the essay file is compiled in, so wasm has it too.

mod essay;
mod ids;
mod prompt;
mod pyrandom;
mod tables;
mod task;

pub use essay::{essay_text, split_sentences, EssayGen};
pub use ids::{id_prompt, ids_text, min_id_length, IdPrompt, ID_TASK};
pub use prompt::{
    answer_prefix, derive_seed, intro, min_length, min_length_with, needle_text, niah_prompt,
    niah_prompt_with, niah_sweep, question, score, sweep_seeds, ESSAYS_TXT,
};
pub use pyrandom::PyRandom;
pub use task::{NiahPrompt, Options, Source, Task, BOS, DEFAULT_MK_DISTRACTORS};
