//! Text to token ids and back through a checkpoint's `tokenizer.json`
//! (Hugging Face's format: the demo's byte-level tokenizer, Qwen3's BPE).

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::source::ByteSource;

pub const TOKENIZER_FILE: &str = "tokenizer.json";

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Prepended to every encoded text when the tokenizer does not add it.
    bos: Option<u32>,
}

impl Tokenizer {
    /// Parses `tokenizer.json`; `bos` is the config's `bos_token_id`, put
    /// in front of encoded text unless the tokenizer already does so (the
    /// demo models were trained with it).
    pub fn from_json(json: &str, bos: Option<u32>) -> Result<Tokenizer> {
        let inner = json
            .parse::<tokenizers::Tokenizer>()
            .map_err(|e| Error::Usage(format!("{TOKENIZER_FILE} cannot be read: {e}")))?;
        Ok(Tokenizer { inner, bos })
    }

    /// The checkpoint's tokenizer.json with its config's `bos_token_id`,
    /// or None when the checkpoint has no tokenizer.
    pub async fn of_checkpoint<S: ByteSource>(ck: &Checkpoint<S>) -> Result<Option<Tokenizer>> {
        let Some(size) = ck.source().file(TOKENIZER_FILE).map(|f| f.size) else {
            return Ok(None);
        };
        let bytes = ck.read_raw(TOKENIZER_FILE, 0..size).await?;
        let json = String::from_utf8(bytes)
            .map_err(|_| Error::Usage(format!("{TOKENIZER_FILE} is not UTF-8")))?;
        Tokenizer::from_json(&json, ck.config_u32("bos_token_id")).map(Some)
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| Error::Usage(format!("cannot tokenize the text: {e}")))?;
        let ids = enc.get_ids();
        match self.bos {
            Some(b) if ids.first() != Some(&b) => {
                Ok(std::iter::once(b).chain(ids.iter().copied()).collect())
            }
            _ => Ok(ids.to_vec()),
        }
    }

    /// Text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| Error::Usage(format!("cannot decode ids: {e}")))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}
