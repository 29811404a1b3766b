//! A checkpoint: one `.safetensors` file, or a Hugging Face folder with
//! `config.json`, shards and `model.safetensors.index.json`.
//!
//! Opening reads only headers (and the small JSON files); tensors are read
//! one at a time, on request. Every byte that comes in is counted, so the
//! CLI can prove that a summary of a 4 GB checkpoint touched only headers.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::safetensors::{decode_f32, read_header, Dtype, Header};
use crate::source::{ByteSource, FileInfo};

pub const INDEX_FILE: &str = "model.safetensors.index.json";
pub const CONFIG_FILE: &str = "config.json";
/// JSON files larger than this are refused rather than read into memory.
const MAX_JSON_FILE: u64 = 64 << 20;

/// One shard: a `.safetensors` file and its validated header.
#[derive(Debug, Clone)]
pub struct Shard {
    pub file: FileInfo,
    pub header: Header,
    pub header_sha256: [u8; 32],
}

/// Where a tensor lives: its shard and its absolute byte range in that file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    pub shard: usize,
    pub start: u64,
    pub end: u64,
}

impl TensorEntry {
    pub fn numel(&self) -> u64 {
        crate::safetensors::numel(&self.shape).unwrap_or(0)
    }
}

#[derive(Deserialize)]
struct IndexFile {
    weight_map: BTreeMap<String, String>,
}

pub struct Checkpoint<S> {
    source: S,
    pub shards: Vec<Shard>,
    /// All tensors, in shard order then offset order.
    pub tensors: Vec<TensorEntry>,
    by_name: HashMap<String, usize>,
    /// `config.json` text, when the checkpoint has one.
    pub config_json: Option<String>,
    /// Whether the shards came with an index file.
    pub indexed: bool,
    /// Companion files carried into outputs: config, tokenizer, remote code, …
    pub other_files: Vec<FileInfo>,
    /// Weight files that are not part of this checkpoint (a `.bin` beside
    /// the safetensors, a `.safetensors` the index does not name): never
    /// carried into an output, where they would hold unmerged weights.
    pub ignored_files: Vec<FileInfo>,
    bytes_read: Cell<u64>,
}

impl<S: ByteSource> Checkpoint<S> {
    /// Opens a checkpoint, reading and validating every shard header.
    pub async fn open(source: S) -> Result<Self> {
        let files = source.files().to_vec();
        let weight_files: Vec<&FileInfo> = files
            .iter()
            .filter(|f| f.name.ends_with(".safetensors"))
            .collect();
        let bytes_read = Cell::new(0);

        let index_info = files.iter().find(|f| f.name == INDEX_FILE);
        let index = match index_info {
            Some(info) => Some(read_index(&source, info, &bytes_read).await?),
            None => None,
        };
        if weight_files.is_empty() {
            let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
            return Err(Error::NoWeights {
                files: if names.is_empty() {
                    "no files".into()
                } else {
                    names.join(", ")
                },
            });
        }

        // With an index, the shards are exactly the files it names; without
        // one, every .safetensors file given is a shard.
        let shard_files: Vec<FileInfo> = match &index {
            Some(index) => {
                let mut names: Vec<&String> = index.weight_map.values().collect();
                names.sort();
                names.dedup();
                let mut out = Vec::new();
                for name in names {
                    let info = source.file(name).ok_or_else(|| Error::MissingShard {
                        index: INDEX_FILE.into(),
                        shard: name.clone(),
                    })?;
                    out.push(info.clone());
                }
                out
            }
            None => weight_files.iter().map(|f| (*f).clone()).collect(),
        };

        let mut shards = Vec::with_capacity(shard_files.len());
        for file in shard_files {
            let read = read_header(&source, &file.name).await?;
            bytes_read.set(bytes_read.get() + read.bytes_read);
            shards.push(Shard {
                file,
                header: read.header,
                header_sha256: read.sha256,
            });
        }

        let mut tensors = Vec::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for (si, shard) in shards.iter().enumerate() {
            let base = shard.header.data_start();
            for t in &shard.header.tensors {
                if let Some(&other) = by_name.get(&t.name) {
                    let first: &TensorEntry = &tensors[other];
                    return Err(Error::TensorInTwoShards {
                        tensor: t.name.clone(),
                        first: shards[first.shard].file.name.clone(),
                        second: shard.file.name.clone(),
                    });
                }
                by_name.insert(t.name.clone(), tensors.len());
                tensors.push(TensorEntry {
                    name: t.name.clone(),
                    dtype: t.dtype,
                    shape: t.shape.clone(),
                    shard: si,
                    start: base + t.begin,
                    end: base + t.end,
                });
            }
        }

        if let Some(index) = &index {
            for (tensor, shard) in &index.weight_map {
                let held = by_name
                    .get(tensor)
                    .map(|&i| shards[tensors[i].shard].file.name.as_str());
                if held != Some(shard.as_str()) {
                    return Err(Error::IndexTensorMissing {
                        index: INDEX_FILE.into(),
                        tensor: tensor.clone(),
                        shard: shard.clone(),
                    });
                }
            }
            if let Some(t) = tensors
                .iter()
                .find(|t| !index.weight_map.contains_key(&t.name))
            {
                return Err(Error::TensorNotIndexed {
                    index: INDEX_FILE.into(),
                    tensor: t.name.clone(),
                    shard: shards[t.shard].file.name.clone(),
                });
            }
        }

        let config_json = match files.iter().find(|f| f.name == CONFIG_FILE) {
            Some(info) => Some(read_small_text(&source, info, &bytes_read).await?),
            None => None,
        };
        let shard_names: Vec<&str> = shards.iter().map(|s| s.file.name.as_str()).collect();
        let (ignored_files, other_files) = files
            .iter()
            .filter(|f| f.name != INDEX_FILE && !shard_names.contains(&f.name.as_str()))
            .cloned()
            .partition(|f| is_weight_file(&f.name));

        Ok(Self {
            indexed: index.is_some(),
            source,
            shards,
            tensors,
            by_name,
            config_json,
            other_files,
            ignored_files,
            bytes_read,
        })
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    /// Bytes read from the source so far, headers included.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.get()
    }

    /// Sum of the sizes of the weight files.
    pub fn bytes_on_disk(&self) -> u64 {
        self.shards.iter().map(|s| s.file.size).sum()
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorEntry> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    pub fn shard_of(&self, t: &TensorEntry) -> &Shard {
        &self.shards[t.shard]
    }

    /// An integer field of config.json (e.g. `bos_token_id`), if present.
    pub fn config_u32(&self, key: &str) -> Option<u32> {
        self.config_field(key).as_ref().and_then(as_id)
    }

    /// A field of config.json, if the file and the field are there.
    fn config_field(&self, key: &str) -> Option<serde_json::Value> {
        let mut v: serde_json::Value = serde_json::from_str(self.config_json.as_deref()?).ok()?;
        v.get_mut(key).map(serde_json::Value::take)
    }

    /// The token ids a field of config.json names: one id, or a list of
    /// them (Llama 3.1's `eos_token_id` is three).
    pub fn config_ids(&self, key: &str) -> Vec<u32> {
        match self.config_field(key) {
            Some(serde_json::Value::Array(ids)) => ids.iter().filter_map(as_id).collect(),
            Some(x) => as_id(&x).into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// The special token ids config.json names (BOS, EOS, PAD).
    pub fn special_ids(&self) -> Vec<u32> {
        ["bos_token_id", "eos_token_id", "pad_token_id"]
            .iter()
            .flat_map(|k| self.config_ids(k))
            .collect()
    }

    /// Bytes of any range of one of the checkpoint's files, counted.
    pub async fn read_raw(&self, file: &str, range: std::ops::Range<u64>) -> Result<Vec<u8>> {
        let bytes = self.source.read(file, range).await?;
        self.bytes_read
            .set(self.bytes_read.get() + bytes.len() as u64);
        Ok(bytes)
    }

    /// Bytes of `[offset, offset + len)` within a tensor's data.
    pub async fn read_tensor_range(
        &self,
        t: &TensorEntry,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>> {
        let start = t
            .start
            .checked_add(offset)
            .filter(|s| s.checked_add(len).is_some_and(|e| e <= t.end));
        let start = start.ok_or_else(|| {
            Error::io(&t.name, format!("range {offset}+{len} outside the tensor"))
        })?;
        self.read_raw(&self.shards[t.shard].file.name, start..start + len)
            .await
    }

    /// The raw bytes of a whole tensor.
    pub async fn read_tensor_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let t = self.tensor(name).ok_or_else(|| Error::NoSuchTensor {
            tensor: name.into(),
        })?;
        self.read_tensor_range(t, 0, t.end - t.start).await
    }

    /// A whole tensor decoded to f32 (BF16, F16, F32 only); `what` names the
    /// operation in the error for other dtypes.
    pub async fn read_tensor_f32(&self, name: &str, what: &str) -> Result<Vec<f32>> {
        let t = self.tensor(name).ok_or_else(|| Error::NoSuchTensor {
            tensor: name.into(),
        })?;
        if !t.dtype.is_float_readable() {
            return Err(Error::UnsupportedDtype {
                tensor: name.into(),
                dtype: t.dtype.to_string(),
                what: what.into(),
            });
        }
        let bytes = self.read_tensor_range(t, 0, t.end - t.start).await?;
        decode_f32(name, t.dtype, &bytes, what)
    }

    /// Reads every floating-point tensor in chunks and fails on the first
    /// one holding NaN or infinity. Headers were validated at open.
    pub async fn check_values(&self, mut progress: impl FnMut(u64, u64)) -> Result<()> {
        const CHUNK: u64 = 16 << 20;
        let total: u64 = self.tensors.iter().map(|t| t.end - t.start).sum();
        let mut done = 0u64;
        for t in &self.tensors {
            let len = t.end - t.start;
            let elem = t.dtype.bits() / 8;
            let mut bad = 0u64;
            let mut first = None;
            let mut offset = 0u64;
            while offset < len {
                let n = (len - offset).min(CHUNK);
                let bytes = self.read_tensor_range(t, offset, n).await?;
                if t.dtype.is_float_readable() {
                    let values = decode_f32(&t.name, t.dtype, &bytes, "the value check")?;
                    for (i, v) in values.iter().enumerate() {
                        if !v.is_finite() {
                            bad += 1;
                            first.get_or_insert(offset / elem + i as u64);
                        }
                    }
                }
                offset += n;
                done += n;
                progress(done, total);
            }
            if let Some(first) = first {
                let file = self.shards[t.shard].file.name.clone();
                return Err(Error::NonFinite {
                    file,
                    tensor: t.name.clone(),
                    count: bad,
                    first,
                });
            }
        }
        Ok(())
    }
}

/// Files that hold weights in some format.
/// A config field's value as a token id.
fn as_id(v: &serde_json::Value) -> Option<u32> {
    v.as_u64().and_then(|x| u32::try_from(x).ok())
}

fn is_weight_file(name: &str) -> bool {
    const EXTENSIONS: [&str; 10] = [
        ".safetensors",
        ".bin",
        ".pt",
        ".pth",
        ".ckpt",
        ".gguf",
        ".h5",
        ".msgpack",
        ".onnx",
        ".npz",
    ];
    let lower = name.to_ascii_lowercase();
    EXTENSIONS.iter().any(|e| lower.ends_with(e))
}

async fn read_small_text<S: ByteSource>(
    source: &S,
    info: &FileInfo,
    counter: &Cell<u64>,
) -> Result<String> {
    if info.size > MAX_JSON_FILE {
        return Err(Error::io(
            &info.name,
            format!(
                "{} bytes is too large for a JSON file of a checkpoint",
                info.size
            ),
        ));
    }
    let bytes = source.read(&info.name, 0..info.size).await?;
    counter.set(counter.get() + info.size);
    String::from_utf8(bytes).map_err(|_| Error::io(&info.name, "not UTF-8 text"))
}

async fn read_index<S: ByteSource>(
    source: &S,
    info: &FileInfo,
    counter: &Cell<u64>,
) -> Result<IndexFile> {
    let text = read_small_text(source, info, counter).await?;
    serde_json::from_str(&text).map_err(|e| Error::Index {
        file: info.name.clone(),
        reason: e.to_string(),
    })
}
