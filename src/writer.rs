//! Writing checkpoints by composing byte ranges.
//!
//! An output is a plan: for each file, a list of parts, each either new
//! bytes (a header, a recomputed tensor, a JSON file) or a byte range of an
//! input file. Natively the plan streams to disk; in the browser it becomes
//! a `Blob` of `Blob.slice()`s, so untouched tensors never pass through wasm
//! memory. Every header is re-parsed before the plan is returned, and
//! [`verify_written`] re-reads what was actually written.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use crate::checkpoint::{Checkpoint, TensorEntry, INDEX_FILE};
use crate::error::{Error, Result};
use crate::safetensors::{
    byte_len, encode_header, parse_header, parse_header_len, read_header, TensorInfo,
};
use crate::source::ByteSource;

/// Key of our provenance record in a written header's `__metadata__`.
pub const PROVENANCE_KEY: &str = "qklab.provenance";

/// One piece of an output file.
#[derive(Debug, Clone)]
pub enum Part {
    /// Bytes made by us.
    Bytes(Arc<Vec<u8>>),
    /// Bytes `[start, end)` of file `file` of input number `source`.
    Range {
        source: usize,
        file: String,
        start: u64,
        end: u64,
    },
}

impl Part {
    pub fn len(&self) -> u64 {
        match self {
            Part::Bytes(b) => b.len() as u64,
            Part::Range { start, end, .. } => end - start,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone)]
pub struct OutputFile {
    pub name: String,
    pub parts: Vec<Part>,
    /// For safetensors files: the tensors the header announces, to check
    /// what was written against.
    pub tensors: Option<Vec<TensorInfo>>,
}

impl OutputFile {
    pub fn size(&self) -> u64 {
        self.parts.iter().map(Part::len).sum()
    }

    fn push(&mut self, part: Part) {
        // Adjacent ranges of one input file become one read.
        if let (
            Some(Part::Range {
                source, file, end, ..
            }),
            Part::Range {
                source: s2,
                file: f2,
                start: b2,
                end: e2,
            },
        ) = (self.parts.last_mut(), &part)
        {
            if source == s2 && file == f2 && end == b2 {
                *end = *e2;
                return;
            }
        }
        self.parts.push(part);
    }
}

#[derive(Debug, Clone, Default)]
pub struct OutputPlan {
    pub files: Vec<OutputFile>,
}

impl OutputPlan {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(OutputFile::size).sum()
    }

    /// Bytes that are copied from inputs rather than made anew.
    pub fn copied_bytes(&self) -> u64 {
        self.files
            .iter()
            .flat_map(|f| &f.parts)
            .filter(|p| matches!(p, Part::Range { .. }))
            .map(Part::len)
            .sum()
    }
}

/// What produced an output, recorded in every written header.
#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    pub tool: String,
    pub method: String,
    pub params: serde_json::Value,
    pub sources: Vec<SourceFingerprint>,
}

/// An input checkpoint, identified by its weight files' names, sizes,
/// header hashes, and a hash of a sample of their data: headers alone
/// cannot tell pre from sft (same tensors, same layout), and hashing whole
/// files would mean reading gigabytes.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SourceFingerprint {
    pub role: String,
    pub files: Vec<FileFingerprint>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FileFingerprint {
    pub name: String,
    pub size: u64,
    pub header_sha256: String,
    /// SHA-256 of up to three 64 KiB windows of the data section (start, middle, end).
    pub sample_sha256: String,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes per sampled window of a fingerprint.
const SAMPLE: u64 = 64 << 10;

impl SourceFingerprint {
    pub async fn of<S: ByteSource>(role: &str, ckpt: &Checkpoint<S>) -> Result<Self> {
        use sha2::Digest;
        let mut files = Vec::with_capacity(ckpt.shards.len());
        for s in &ckpt.shards {
            let (start, end) = (s.header.data_start(), s.file.size);
            let len = end - start;
            let mut windows = Vec::with_capacity(3);
            windows.push(start..start + len.min(SAMPLE));
            if len > SAMPLE {
                let mid = start + len / 2 - (SAMPLE / 2).min(len / 2);
                windows.push(mid..(mid + SAMPLE).min(end));
                windows.push(end - SAMPLE..end);
            }
            let mut hasher = sha2::Sha256::new();
            for w in windows {
                hasher.update(ckpt.read_raw(&s.file.name, w).await?);
            }
            files.push(FileFingerprint {
                name: s.file.name.clone(),
                size: s.file.size,
                header_sha256: hex(&s.header_sha256),
                sample_sha256: hex(&hasher.finalize()),
            });
        }
        Ok(SourceFingerprint {
            role: role.into(),
            files,
        })
    }
}

impl Provenance {
    pub fn new(method: &str, params: serde_json::Value, sources: Vec<SourceFingerprint>) -> Self {
        Provenance {
            tool: format!("qklab {}", env!("CARGO_PKG_VERSION")),
            method: method.into(),
            params,
            sources,
        }
    }
}

/// New data for one output tensor.
#[derive(Debug, Clone)]
pub enum TensorData {
    /// Freshly computed bytes, already in the tensor's dtype.
    Bytes(Arc<Vec<u8>>),
    /// The bytes of a tensor of another input (QK-Restore copies pre's W_Q, W_K).
    Copy {
        source: usize,
        file: String,
        entry: TensorEntry,
    },
    /// Pieces of several inputs side by side, in order: a tensor whose rows
    /// come from different checkpoints (Qwen3.5's q_proj, query rows from
    /// pre and gate rows from sft) without decoding either.
    Parts(Vec<Part>),
}

/// Builds a plan that mirrors one input checkpoint (its sharding, tensor
/// order, and other files) with some tensors replaced.
pub struct PlanBuilder<'a, S> {
    base: &'a Checkpoint<S>,
    base_source: usize,
    replaced: HashMap<String, TensorData>,
}

impl<'a, S: ByteSource> PlanBuilder<'a, S> {
    /// `base_source` is the number the writer will know `base`'s source by.
    pub fn new(base: &'a Checkpoint<S>, base_source: usize) -> Self {
        PlanBuilder {
            base,
            base_source,
            replaced: HashMap::new(),
        }
    }

    /// Replaces tensor `name`; the new data must have the same dtype and shape.
    pub fn replace(&mut self, name: &str, data: TensorData) -> Result<()> {
        let t = self.base.tensor(name).ok_or_else(|| Error::NoSuchTensor {
            tensor: name.into(),
        })?;
        let (dtype, shape, len) = match &data {
            TensorData::Bytes(b) => (t.dtype, t.shape.clone(), b.len() as u64),
            TensorData::Copy { entry, .. } => {
                (entry.dtype, entry.shape.clone(), entry.end - entry.start)
            }
            TensorData::Parts(parts) => {
                (t.dtype, t.shape.clone(), parts.iter().map(Part::len).sum())
            }
        };
        if dtype != t.dtype || shape != t.shape || Some(len) != byte_len(t.dtype, &t.shape) {
            return Err(Error::OutputCheck {
                file: self.base.shard_of(t).file.name.clone(),
                reason: format!(
                    "replacement for {name} is {dtype} {shape:?} ({len} bytes), expected {} {:?}",
                    t.dtype, t.shape
                ),
            });
        }
        self.replaced.insert(name.to_string(), data);
        Ok(())
    }

    pub fn build(self, provenance: &Provenance) -> Result<OutputPlan> {
        let provenance_json = serde_json::to_string(provenance).expect("provenance serializes");
        let mut plan = OutputPlan::default();
        let mut weight_map = BTreeMap::new();
        let mut total_size = 0u64;
        for shard in &self.base.shards {
            let name = shard.file.name.clone();
            let mut infos = Vec::with_capacity(shard.header.tensors.len());
            let mut body = OutputFile {
                name: name.clone(),
                parts: Vec::new(),
                tensors: None,
            };
            let mut offset = 0u64;
            for t in &shard.header.tensors {
                let len = t.end - t.begin;
                infos.push(TensorInfo {
                    begin: offset,
                    end: offset + len,
                    ..t.clone()
                });
                offset += len;
                weight_map.insert(t.name.clone(), name.clone());
                let parts = match self.replaced.get(&t.name) {
                    Some(TensorData::Parts(parts)) => parts.clone(),
                    Some(TensorData::Bytes(b)) => vec![Part::Bytes(b.clone())],
                    Some(TensorData::Copy {
                        source,
                        file,
                        entry,
                    }) => vec![Part::Range {
                        source: *source,
                        file: file.clone(),
                        start: entry.start,
                        end: entry.end,
                    }],
                    None => {
                        let start = shard.header.data_start() + t.begin;
                        vec![Part::Range {
                            source: self.base_source,
                            file: name.clone(),
                            start,
                            end: start + len,
                        }]
                    }
                };
                parts.into_iter().for_each(|p| body.push(p));
            }
            total_size += offset;
            let mut metadata = shard.header.metadata.clone();
            metadata.insert(PROVENANCE_KEY.into(), provenance_json.clone());
            let header = encode_header(&infos, &metadata);
            check_header_bytes(&name, &header, header.len() as u64 + offset, &infos)?;
            let mut file = OutputFile {
                name,
                parts: vec![Part::Bytes(Arc::new(header))],
                tensors: Some(infos),
            };
            body.parts.into_iter().for_each(|p| file.push(p));
            plan.files.push(file);
        }
        if self.base.indexed || self.base.shards.len() > 1 {
            let index = serde_json::json!({ "metadata": { "total_size": total_size }, "weight_map": weight_map });
            let bytes = serde_json::to_vec_pretty(&index).expect("index serializes");
            plan.files.push(OutputFile {
                name: INDEX_FILE.into(),
                parts: vec![Part::Bytes(Arc::new(bytes))],
                tensors: None,
            });
        }
        for f in &self.base.other_files {
            let part = Part::Range {
                source: self.base_source,
                file: f.name.clone(),
                start: 0,
                end: f.size,
            };
            plan.files.push(OutputFile {
                name: f.name.clone(),
                parts: vec![part],
                tensors: None,
            });
        }
        Ok(plan)
    }
}

/// Re-parses a header we made, as a reader of the written file would.
fn check_header_bytes(file: &str, header: &[u8], size: u64, expected: &[TensorInfo]) -> Result<()> {
    let fail = |reason: String| Error::OutputCheck {
        file: file.into(),
        reason,
    };
    let len = parse_header_len(file, header, size).map_err(|e| fail(e.to_string()))?;
    let parsed =
        parse_header(file, &header[8..8 + len as usize], size).map_err(|e| fail(e.to_string()))?;
    if parsed.tensors != expected {
        return Err(fail(
            "the re-parsed header lists other tensors than planned".into(),
        ));
    }
    Ok(())
}

/// Re-reads what was written (from disk, or from the browser's Blobs) and
/// checks every file's size and every safetensors header against the plan.
pub async fn verify_written<W: ByteSource>(plan: &OutputPlan, written: &W) -> Result<()> {
    for f in &plan.files {
        let fail = |reason: String| Error::OutputCheck {
            file: f.name.clone(),
            reason,
        };
        let info = written
            .file(&f.name)
            .ok_or_else(|| fail("missing from the output".into()))?;
        if info.size != f.size() {
            return Err(fail(format!(
                "written size {} differs from the planned {}",
                info.size,
                f.size()
            )));
        }
        if let Some(expected) = &f.tensors {
            let read = read_header(written, &f.name)
                .await
                .map_err(|e| fail(e.to_string()))?;
            if &read.header.tensors != expected {
                return Err(fail(
                    "the written header lists other tensors than planned".into(),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::write_to_dir;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::fs::{self, File};
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::path::Path;

    use super::{verify_written, OutputPlan, Part};
    use crate::error::{Error, Result};
    use crate::source::{ByteSource, FsSource};

    /// Copies are streamed in chunks of this size.
    const CHUNK: u64 = 64 << 20;

    /// Appends bytes `[at, at + n)` of file `src` to `out`. `io::copy` from a
    /// `Take<File>` to a `File` lets std use `copy_file_range` on Linux, so
    /// the bytes need not pass through this process at all.
    fn copy_range(src: &Path, at: u64, n: u64, out: &mut File) -> std::io::Result<()> {
        let mut f = File::open(src)?;
        f.seek(SeekFrom::Start(at))?;
        let copied = std::io::copy(&mut f.take(n), out)?;
        if copied != n {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the input file changed or is truncated",
            ));
        }
        Ok(())
    }

    /// Writes `plan` into `dir`, which must be new or empty (so an input can
    /// never be overwritten). Files are written under a temporary name,
    /// verified, then renamed; `progress(done, total)` follows the bytes.
    pub async fn write_to_dir<S: ByteSource>(
        plan: &OutputPlan,
        sources: &[&S],
        dir: &Path,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<()> {
        if dir.exists() {
            let mut entries = fs::read_dir(dir).map_err(|e| Error::io(dir.display(), e))?;
            if entries.next().is_some() {
                return Err(Error::Usage(format!(
                    "output folder {} is not empty: choose a new folder (inputs are never overwritten)",
                    dir.display()
                )));
            }
        }
        let created = !dir.exists();
        let staging = dir.join(".qklab-partial");
        fs::create_dir_all(&staging).map_err(|e| Error::io(staging.display(), e))?;
        // A failed write leaves nothing behind, so the same command can simply be rerun.
        if let Err(e) = write_staged(plan, sources, &staging, &mut progress).await {
            let _ = fs::remove_dir_all(&staging);
            if created {
                let _ = fs::remove_dir(dir);
            }
            return Err(e);
        }
        for f in &plan.files {
            fs::rename(staging.join(&f.name), dir.join(&f.name))
                .map_err(|e| Error::io(dir.display(), e))?;
        }
        fs::remove_dir(&staging).map_err(|e| Error::io(staging.display(), e))?;
        let total = plan.total_bytes();
        progress(total, total);
        Ok(())
    }

    /// Writes every file of the plan into `staging`, synced, then re-reads and checks them.
    async fn write_staged<S: ByteSource>(
        plan: &OutputPlan,
        sources: &[&S],
        staging: &Path,
        progress: &mut impl FnMut(u64, u64),
    ) -> Result<()> {
        let total = plan.total_bytes();
        let mut done = 0u64;
        for f in &plan.files {
            let path = staging.join(&f.name);
            let mut out = File::create(&path).map_err(|e| Error::io(path.display(), e))?;
            for part in &f.parts {
                match part {
                    Part::Bytes(b) => {
                        out.write_all(b).map_err(|e| Error::io(path.display(), e))?;
                        done += b.len() as u64;
                    }
                    Part::Range {
                        source,
                        file,
                        start,
                        end,
                    } => {
                        let src = sources
                            .get(*source)
                            .ok_or_else(|| Error::io(file, "plan names an unknown input"))?;
                        let mut at = *start;
                        while at < *end {
                            let n = (*end - at).min(CHUNK);
                            match src.local_path(file) {
                                Some(p) => copy_range(p, at, n, &mut out)
                                    .map_err(|e| Error::io(file, e))?,
                                None => out
                                    .write_all(&src.read(file, at..at + n).await?)
                                    .map_err(|e| Error::io(path.display(), e))?,
                            }
                            at += n;
                            done += n;
                            progress(done, total);
                        }
                    }
                }
            }
            out.sync_all().map_err(|e| Error::io(path.display(), e))?;
        }
        verify_written(plan, &FsSource::open(staging)?).await
    }
}
