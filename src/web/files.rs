//! Browser files as the core's [`ByteSource`], and output plans as Blobs.

use std::ops::Range;

use js_sys::{Array, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, File};

use super::dom::js_err;
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::source::{locate, ByteSource, FileInfo};
use crate::writer::{verify_written, OutputPlan, Part};

/// Files the user gave the page (dropped or picked), or blobs we made,
/// read by slices.
pub struct BrowserSource {
    infos: Vec<FileInfo>,
    files: Vec<Blob>,
}

impl BrowserSource {
    /// Files are known by their base names; two with one name are refused
    /// rather than one silently shadowing the other.
    pub fn new(files: Vec<File>) -> Result<Self> {
        Self::from_blobs(
            files
                .into_iter()
                .map(|f| (f.name(), Blob::from(f)))
                .collect(),
        )
    }

    pub fn from_blobs(blobs: Vec<(String, Blob)>) -> Result<Self> {
        let mut infos: Vec<FileInfo> = Vec::with_capacity(blobs.len());
        let mut files = Vec::with_capacity(blobs.len());
        for (name, blob) in blobs {
            if infos.iter().any(|i| i.name == name) {
                return Err(Error::Usage(format!(
                    "two files are named {name:?}: give one checkpoint at a time"
                )));
            }
            infos.push(FileInfo {
                name,
                size: blob.size() as u64,
            });
            files.push(blob);
        }
        Ok(BrowserSource { infos, files })
    }

    pub fn blob(&self, name: &str) -> Option<&Blob> {
        self.infos
            .iter()
            .position(|f| f.name == name)
            .map(|i| &self.files[i])
    }
}

impl ByteSource for BrowserSource {
    fn files(&self) -> &[FileInfo] {
        &self.infos
    }

    async fn read(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let i = locate(&self.infos, name, &range)?;
        // One slice per request: Chrome refuses ArrayBuffers over 2 GB, so
        // callers read per tensor or per chunk, never per file.
        let blob = self.files[i]
            .slice_with_f64_and_f64(range.start as f64, range.end as f64)
            .map_err(|e| js_err(name, e))?;
        let buf = JsFuture::from(blob.array_buffer())
            .await
            .map_err(|e| js_err(name, e))?;
        let bytes = Uint8Array::new(&buf).to_vec();
        if bytes.len() as u64 != range.end - range.start {
            return Err(Error::io(
                name,
                format!(
                    "asked for {} bytes, got {}",
                    range.end - range.start,
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }
}

/// Opens `files` as one checkpoint (headers only).
pub async fn open_files(files: Vec<File>) -> Result<Checkpoint<BrowserSource>> {
    Checkpoint::open(BrowserSource::new(files)?).await
}

/// One `Blob` per output file: our bytes become typed arrays, input ranges
/// become `Blob.slice()`s, so untouched tensors never pass through wasm
/// memory. Each result is re-read and checked against the plan before it
/// is returned.
pub async fn plan_to_blobs(
    plan: &OutputPlan,
    sources: &[&BrowserSource],
) -> Result<Vec<(String, Blob)>> {
    let mut out = Vec::with_capacity(plan.files.len());
    for f in &plan.files {
        let parts = Array::new();
        for part in &f.parts {
            match part {
                Part::Bytes(b) => {
                    parts.push(&Uint8Array::from(b.as_slice()));
                }
                Part::Range {
                    source,
                    file,
                    start,
                    end,
                } => {
                    let blob = sources
                        .get(*source)
                        .and_then(|s| s.blob(file))
                        .ok_or_else(|| Error::io(file, "the plan names a file no input has"))?;
                    let slice = blob
                        .slice_with_f64_and_f64(*start as f64, *end as f64)
                        .map_err(|e| js_err(file, e))?;
                    parts.push(&slice);
                }
            }
        }
        let blob = Blob::new_with_blob_sequence(&parts).map_err(|e| js_err(&f.name, e))?;
        out.push((f.name.clone(), blob));
    }
    let written = BrowserSource::from_blobs(out.clone())?;
    verify_written(plan, &written).await?;
    Ok(out)
}

/// Blobs as named `File`s, for JS.
pub fn to_files(blobs: Vec<(String, Blob)>) -> Result<Array> {
    let out = Array::new();
    for (name, blob) in blobs {
        let file = File::new_with_blob_sequence(&Array::of1(&blob), &name)
            .map_err(|e| js_err(&name, e))?;
        out.push(&file);
    }
    Ok(out)
}

/// Fetches `url` (of the page's own origin) as text.
pub async fn fetch_text(url: &str) -> Result<String> {
    let window = web_sys::window().ok_or_else(|| Error::Page("no window".into()))?;
    let resp: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| js_err(url, e))?
        .unchecked_into();
    if !resp.ok() {
        return Err(Error::io(url, format!("HTTP {}", resp.status())));
    }
    let text = JsFuture::from(resp.text().map_err(|e| js_err(url, e))?)
        .await
        .map_err(|e| js_err(url, e))?;
    Ok(text.as_string().unwrap_or_default())
}

/// Fetches `url` as a `File` named `name` (the demo's files).
pub async fn fetch_file(url: &str, name: &str) -> Result<File> {
    let window = web_sys::window().ok_or_else(|| Error::Page("no window".into()))?;
    let resp: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| js_err(url, e))?
        .unchecked_into();
    if !resp.ok() {
        return Err(Error::io(url, format!("HTTP {}", resp.status())));
    }
    let blob: Blob = JsFuture::from(resp.blob().map_err(|e| js_err(url, e))?)
        .await
        .map_err(|e| js_err(url, e))?
        .unchecked_into();
    File::new_with_blob_sequence(&Array::of1(&blob), name).map_err(|e| js_err(name, e))
}
