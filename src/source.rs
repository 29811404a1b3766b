//! Byte sources: "read bytes [a, b) of a named file", natively and in the
//! browser, behind one trait so the checkpoint loader is written once.
//!
//! A checkpoint can be far larger than wasm32 memory (4 GB) and than one
//! browser `ArrayBuffer` (2 GB), so nothing here ever reads a whole file:
//! callers ask for the header, then for one tensor (or one chunk) at a time.

use std::ops::Range;

use crate::error::{Error, Result};

/// One file of a source: its name (no directories) and its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub name: String,
    pub size: u64,
}

/// A set of named files whose byte ranges can be read.
///
/// The futures are not `Send`: browser futures cannot be, and one signature
/// for both targets beats two copies of every loader.
#[allow(async_fn_in_trait)]
pub trait ByteSource {
    /// The files of this source, in a stable order.
    fn files(&self) -> &[FileInfo];

    /// Bytes `range` of file `name`; fails unless exactly that many bytes come back.
    async fn read(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>>;

    fn file(&self, name: &str) -> Option<&FileInfo> {
        self.files().iter().find(|f| f.name == name)
    }

    /// The file's path on a local disk, when it has one: lets the native
    /// writer copy ranges in the kernel (`copy_file_range`) instead of
    /// through user memory.
    #[cfg(not(target_arch = "wasm32"))]
    fn local_path(&self, _name: &str) -> Option<&std::path::Path> {
        None
    }
}

/// Finds file `name` and checks that `range` lies inside it; the one
/// precondition every [`ByteSource::read`] shares.
pub fn locate(files: &[FileInfo], name: &str, range: &Range<u64>) -> Result<usize> {
    let i = files
        .iter()
        .position(|f| f.name == name)
        .ok_or_else(|| Error::io(name, "no such file"))?;
    check_range(&files[i], range)?;
    Ok(i)
}

/// Checks a requested range against the file it targets.
fn check_range(file: &FileInfo, range: &Range<u64>) -> Result<()> {
    if range.start > range.end || range.end > file.size {
        return Err(Error::io(
            &file.name,
            format!(
                "range {}..{} outside the file ({} bytes)",
                range.start, range.end, file.size
            ),
        ));
    }
    Ok(())
}

/// Converts a byte count to `usize`, failing cleanly on 32-bit targets
/// where a single read of 4 GiB or more cannot be held.
pub fn to_usize(n: u64, file: &str) -> Result<usize> {
    usize::try_from(n).map_err(|_| {
        Error::io(
            file,
            format!("a single read of {n} bytes does not fit in memory on this platform"),
        )
    })
}

/// Files held in memory: for tests and for small generated outputs.
#[derive(Debug, Default, Clone)]
pub struct MemSource {
    infos: Vec<FileInfo>,
    data: Vec<Vec<u8>>,
}

impl MemSource {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, name: &str, bytes: Vec<u8>) -> Self {
        self.insert(name, bytes);
        self
    }

    pub fn insert(&mut self, name: &str, bytes: Vec<u8>) {
        let info = FileInfo {
            name: name.to_string(),
            size: bytes.len() as u64,
        };
        match self.infos.iter().position(|f| f.name == name) {
            Some(i) => {
                self.infos[i] = info;
                self.data[i] = bytes;
            }
            None => {
                self.infos.push(info);
                self.data.push(bytes);
            }
        }
    }
}

impl ByteSource for MemSource {
    fn files(&self) -> &[FileInfo] {
        &self.infos
    }

    async fn read(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let i = locate(&self.infos, name, &range)?;
        Ok(self.data[i][range.start as usize..range.end as usize].to_vec())
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::FsSource;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::fs::File;
    use std::io::{Read, Seek, SeekFrom};
    use std::ops::Range;
    use std::path::{Path, PathBuf};

    use super::{locate, to_usize, ByteSource, FileInfo};
    use crate::error::{Error, Result};

    /// Files on disk: either every regular file of one folder (not
    /// recursive), or one file on its own.
    #[derive(Debug, Clone)]
    pub struct FsSource {
        infos: Vec<FileInfo>,
        paths: Vec<PathBuf>,
    }

    impl FsSource {
        pub fn open(path: &Path) -> Result<Self> {
            let meta = std::fs::metadata(path).map_err(|e| Error::io(path.display(), e))?;
            let mut entries = Vec::new();
            if meta.is_dir() {
                let dir = std::fs::read_dir(path).map_err(|e| Error::io(path.display(), e))?;
                for entry in dir {
                    let entry = entry.map_err(|e| Error::io(path.display(), e))?;
                    let p = entry.path();
                    let m = std::fs::metadata(&p).map_err(|e| Error::io(p.display(), e))?;
                    if m.is_file() {
                        entries.push((file_name(&p), m.len(), p));
                    }
                }
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            } else {
                entries.push((file_name(path), meta.len(), path.to_path_buf()));
            }
            let (infos, paths) = entries
                .into_iter()
                .map(|(name, size, p)| (FileInfo { name, size }, p))
                .unzip();
            Ok(Self { infos, paths })
        }
    }

    fn file_name(p: &Path) -> String {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string())
    }

    impl ByteSource for FsSource {
        fn files(&self) -> &[FileInfo] {
            &self.infos
        }

        fn local_path(&self, name: &str) -> Option<&Path> {
            self.infos
                .iter()
                .position(|f| f.name == name)
                .map(|i| self.paths[i].as_path())
        }

        async fn read(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>> {
            let i = locate(&self.infos, name, &range)?;
            let mut buf = vec![0u8; to_usize(range.end - range.start, name)?];
            let mut f = File::open(&self.paths[i]).map_err(|e| Error::io(name, e))?;
            f.seek(SeekFrom::Start(range.start))
                .map_err(|e| Error::io(name, e))?;
            f.read_exact(&mut buf)
                .map_err(|e| Error::io(name, format!("{e} (the file changed or is truncated)")))?;
            Ok(buf)
        }
    }
}

/// Runs a future to completion on the native thread; the browser has its
/// own executor (`wasm_bindgen_futures`).
#[cfg(not(target_arch = "wasm32"))]
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}
