//! A ZIP archive of named files, as the page's "Export report" offers it:
//! the report JSON and every figure in one download (browsers throttle a
//! page that starts many).

use std::io::Write as _;

use zip::write::SimpleFileOptions;

use crate::error::{Error, Result};

/// Files in one ZIP archive, stored uncompressed (SVG and PNG gain little,
/// and a report should open anywhere). Times are the format's epoch, so the
/// same report gives the same bytes.
pub fn bundle(entries: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let fail =
        |e: &dyn std::fmt::Display| Error::Usage(format!("cannot build the report archive: {e}"));
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        zip.start_file(name.as_str(), options)
            .map_err(|e| fail(&e))?;
        zip.write_all(bytes).map_err(|e| fail(&e))?;
    }
    Ok(zip.finish().map_err(|e| fail(&e))?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_reads_back_file_for_file_and_is_reproducible() {
        let entries = vec![
            ("report.json".to_string(), b"{}".to_vec()),
            ("figures/a.svg".to_string(), vec![7u8; 1000]),
            ("empty".to_string(), Vec::new()),
        ];
        let bytes = bundle(&entries).unwrap();
        assert_eq!(bytes, bundle(&entries).unwrap());
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        // Counts and sizes first: a missing or truncated entry says so
        // before any content is compared.
        assert_eq!(zip.len(), entries.len(), "entries in the archive");
        for (i, (name, want)) in entries.iter().enumerate() {
            let mut file = zip.by_index(i).unwrap();
            assert_eq!(file.name(), name, "entry {i}: in the order given");
            assert_eq!(file.size(), want.len() as u64, "{name}: bytes");
            assert_eq!(
                file.compression(),
                zip::CompressionMethod::Stored,
                "{name}: stored"
            );
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut got).unwrap();
            assert_eq!(got.len(), want.len(), "{name}: bytes read back");
            assert_eq!(&got, want, "{name}: contents");
        }
    }
}
