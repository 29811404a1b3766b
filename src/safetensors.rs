//! The safetensors format, read by hand: 8-byte little-endian header length,
//! a JSON header, then the data section.
//!
//! We do not use `SafeTensors::read_metadata`: it wants the whole file in
//! one buffer, and with a 32-bit `usize` (wasm32) its size arithmetic
//! overflows for tensors of 2^32 bits or more and for shards over 4 GiB
//! (safetensors issue 817). Here every size is a checked `u64`, and every
//! header is validated before any tensor is touched.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::source::ByteSource;

/// Headers above this size are refused: real ones are a few MB at most,
/// and the length field of a wrong file would otherwise ask for gigabytes.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dtype {
    Bool,
    U8,
    I8,
    F8E5M2,
    F8E4M3,
    F8E8M0,
    I16,
    U16,
    F16,
    BF16,
    I32,
    U32,
    F32,
    F64,
    I64,
    U64,
    F4,
    F6E2M3,
    F6E3M2,
    C64,
}

impl Dtype {
    const ALL: [Dtype; 20] = [
        Dtype::Bool,
        Dtype::U8,
        Dtype::I8,
        Dtype::F8E5M2,
        Dtype::F8E4M3,
        Dtype::F8E8M0,
        Dtype::I16,
        Dtype::U16,
        Dtype::F16,
        Dtype::BF16,
        Dtype::I32,
        Dtype::U32,
        Dtype::F32,
        Dtype::F64,
        Dtype::I64,
        Dtype::U64,
        Dtype::F4,
        Dtype::F6E2M3,
        Dtype::F6E3M2,
        Dtype::C64,
    ];

    /// The name used in safetensors headers.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bool => "BOOL",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::F8E5M2 => "F8_E5M2",
            Dtype::F8E4M3 => "F8_E4M3",
            Dtype::F8E8M0 => "F8_E8M0",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
            Dtype::F4 => "F4",
            Dtype::F6E2M3 => "F6_E2M3",
            Dtype::F6E3M2 => "F6_E3M2",
            Dtype::C64 => "C64",
        }
    }

    pub fn parse(name: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Bits per element (sub-byte types exist: F4, F6).
    pub fn bits(self) -> u64 {
        match self {
            Dtype::F4 => 4,
            Dtype::F6E2M3 | Dtype::F6E3M2 => 6,
            Dtype::Bool | Dtype::U8 | Dtype::I8 | Dtype::F8E5M2 | Dtype::F8E4M3 | Dtype::F8E8M0 => {
                8
            }
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::BF16 => 16,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 32,
            Dtype::F64 | Dtype::I64 | Dtype::U64 | Dtype::C64 => 64,
        }
    }

    /// Whether our math can decode it to f32.
    pub fn is_float_readable(self) -> bool {
        matches!(self, Dtype::BF16 | Dtype::F16 | Dtype::F32)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Number of elements of a shape, checked.
pub fn numel(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
}

/// Bytes needed by `shape` elements of `dtype`, checked; `None` on overflow
/// or when sub-byte elements do not fill whole bytes.
pub fn byte_len(dtype: Dtype, shape: &[u64]) -> Option<u64> {
    let bits = numel(shape)?.checked_mul(dtype.bits())?;
    (bits % 8 == 0).then_some(bits / 8)
}

/// One tensor of a header; offsets are relative to the data section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    pub begin: u64,
    pub end: u64,
}

impl TensorInfo {
    pub fn numel(&self) -> u64 {
        numel(&self.shape).unwrap_or(0)
    }

    pub fn len(&self) -> u64 {
        self.end - self.begin
    }

    pub fn is_empty(&self) -> bool {
        self.begin == self.end
    }
}

/// A validated header: tensors sorted by offset, covering the data section
/// exactly, without gaps or overlaps.
#[derive(Debug, Clone)]
pub struct Header {
    pub tensors: Vec<TensorInfo>,
    pub metadata: BTreeMap<String, String>,
    /// Length of the JSON part (the 8-byte length field not included).
    pub json_len: u64,
    pub file_size: u64,
}

impl Header {
    /// Absolute file offset where the data section starts.
    pub fn data_start(&self) -> u64 {
        8 + self.json_len
    }
}

#[derive(Deserialize)]
struct RawEntry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// The header's JSON object, keeping every key (serde maps would silently
/// keep only the last of two equal tensor names).
struct RawHeader {
    entries: Vec<(String, RawEntry)>,
    metadata: Option<BTreeMap<String, String>>,
}

impl<'de> Deserialize<'de> for RawHeader {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawHeader;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object of tensor entries")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<RawHeader, A::Error> {
                let mut entries = Vec::new();
                let mut metadata = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "__metadata__" {
                        if metadata.is_some() {
                            return Err(serde::de::Error::custom("__metadata__ appears twice"));
                        }
                        metadata = Some(map.next_value()?);
                    } else {
                        let entry: RawEntry = map.next_value().map_err(|e| {
                            serde::de::Error::custom(format!("tensor {key:?}: {e}"))
                        })?;
                        entries.push((key, entry));
                    }
                }
                Ok(RawHeader { entries, metadata })
            }
        }
        d.deserialize_map(V)
    }
}

/// Names the kind of a file that is clearly not safetensors, from its first bytes.
fn sniff(prefix: &[u8]) -> Option<&'static str> {
    const KINDS: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (
            b"PK\x03\x04",
            "a ZIP archive (PyTorch .bin/.pt checkpoints are ZIP files)",
        ),
        (b"GGUF", "a GGUF file (llama.cpp format)"),
        (b"\x1f\x8b", "a gzip-compressed file"),
        (b"\x80\x02", "a Python pickle"),
        (b"<!DOCTYPE", "an HTML page"),
        (b"<html", "an HTML page"),
        (b"{", "a JSON text file"),
    ];
    KINDS
        .iter()
        .find(|(magic, _)| prefix.starts_with(magic))
        .map(|(_, what)| *what)
}

/// Decodes and bounds-checks the 8-byte length field.
pub fn parse_header_len(file: &str, prefix: &[u8], file_size: u64) -> Result<u64> {
    if file_size == 0 {
        return Err(Error::EmptyFile { file: file.into() });
    }
    if file_size < 8 || prefix.len() < 8 {
        return Err(Error::TooShort {
            file: file.into(),
            size: file_size,
        });
    }
    let len = u64::from_le_bytes(prefix[..8].try_into().expect("8 bytes"));
    if len > MAX_HEADER_LEN {
        // A valid header is never this long, so naming the file's real kind cannot misfire.
        if let Some(what) = sniff(prefix) {
            return Err(Error::WrongFileKind {
                file: file.into(),
                what,
            });
        }
        return Err(Error::HeaderTooLarge {
            file: file.into(),
            len,
            limit: MAX_HEADER_LEN,
        });
    }
    if len > file_size - 8 {
        return Err(Error::HeaderPastEnd {
            file: file.into(),
            len,
            size: file_size,
        });
    }
    Ok(len)
}

/// Parses and validates the JSON header of a file of `file_size` bytes.
pub fn parse_header(file: &str, json: &[u8], file_size: u64) -> Result<Header> {
    let json_len = json.len() as u64;
    let raw: RawHeader = serde_json::from_slice(json).map_err(|e| Error::HeaderJson {
        file: file.into(),
        reason: e.to_string(),
    })?;
    let data_len = file_size
        .checked_sub(8 + json_len)
        .ok_or(Error::HeaderPastEnd {
            file: file.into(),
            len: json_len,
            size: file_size,
        })?;

    let mut seen = HashSet::new();
    let mut tensors = Vec::with_capacity(raw.entries.len());
    for (name, e) in raw.entries {
        if !seen.insert(name.clone()) {
            return Err(Error::DuplicateTensor {
                file: file.into(),
                tensor: name,
            });
        }
        let dtype = Dtype::parse(&e.dtype).ok_or_else(|| Error::UnknownDtype {
            file: file.into(),
            tensor: name.clone(),
            dtype: e.dtype.clone(),
        })?;
        let [begin, end] = e.data_offsets;
        if begin > end {
            return Err(Error::ReversedOffsets {
                file: file.into(),
                tensor: name,
                begin,
                end,
            });
        }
        let expected = byte_len(dtype, &e.shape).ok_or_else(|| Error::SizeOverflow {
            file: file.into(),
            tensor: name.clone(),
            shape: e.shape.clone(),
        })?;
        if expected != end - begin {
            return Err(Error::LengthMismatch {
                file: file.into(),
                tensor: name,
                shape: e.shape,
                dtype: dtype.to_string(),
                expected,
                got: end - begin,
            });
        }
        tensors.push(TensorInfo {
            name,
            dtype,
            shape: e.shape,
            begin,
            end,
        });
    }

    // More data announced than present is a cut file; otherwise an offset is wrong.
    let needed = tensors
        .iter()
        .try_fold(0u64, |acc, t| acc.checked_add(t.end - t.begin));
    match needed {
        Some(needed) if needed > data_len => {
            return Err(Error::Truncated {
                file: file.into(),
                needed,
                data_len,
            });
        }
        None => {
            return Err(Error::Truncated {
                file: file.into(),
                needed: u64::MAX,
                data_len,
            })
        }
        _ => {}
    }
    tensors.sort_by(|a, b| (a.begin, a.end, &a.name).cmp(&(b.begin, b.end, &b.name)));
    let mut cursor = 0u64;
    let mut previous: Option<&TensorInfo> = None;
    for t in &tensors {
        if t.end > data_len {
            return Err(Error::OffsetOutOfBounds {
                file: file.into(),
                tensor: t.name.clone(),
                end: t.end,
                data_len,
            });
        }
        if t.begin < cursor {
            let first = previous.map(|p| p.name.clone()).unwrap_or_default();
            return Err(Error::Overlap {
                file: file.into(),
                first,
                second: t.name.clone(),
            });
        }
        if t.begin > cursor {
            return Err(Error::Gap {
                file: file.into(),
                tensor: t.name.clone(),
                gap: t.begin - cursor,
            });
        }
        cursor = t.end;
        previous = Some(t);
    }
    if cursor != data_len {
        return Err(Error::TrailingBytes {
            file: file.into(),
            extra: data_len - cursor,
        });
    }
    Ok(Header {
        tensors,
        metadata: raw.metadata.unwrap_or_default(),
        json_len,
        file_size,
    })
}

/// A header read from a source, with the SHA-256 of its raw bytes (length
/// field and JSON) for provenance.
#[derive(Debug, Clone)]
pub struct ReadHeader {
    pub header: Header,
    pub sha256: [u8; 32],
    pub bytes_read: u64,
}

/// Reads and validates the header of `name`, touching only the header bytes.
pub async fn read_header<S: ByteSource>(source: &S, name: &str) -> Result<ReadHeader> {
    let size = source
        .file(name)
        .ok_or_else(|| Error::io(name, "no such file"))?
        .size;
    let prefix = source.read(name, 0..size.min(16)).await?;
    let json_len = parse_header_len(name, &prefix, size)?;
    let json = source.read(name, 8..8 + json_len).await?;
    let header = parse_header(name, &json, size)?;
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    sha2::Digest::update(&mut hasher, &prefix[..8]);
    sha2::Digest::update(&mut hasher, &json);
    let sha256 = sha2::Digest::finalize(hasher).into();
    Ok(ReadHeader {
        header,
        sha256,
        bytes_read: prefix.len() as u64 + json_len,
    })
}

/// Builds the bytes of a header for `tensors` (offsets already assigned),
/// padded with spaces to a multiple of 8 as the reference writer does.
pub fn encode_header(tensors: &[TensorInfo], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut obj = serde_json::Map::new();
    if !metadata.is_empty() {
        obj.insert(
            "__metadata__".into(),
            serde_json::to_value(metadata).expect("string map"),
        );
    }
    for t in tensors {
        obj.insert(
            t.name.clone(),
            serde_json::json!({ "dtype": t.dtype.name(), "shape": t.shape, "data_offsets": [t.begin, t.end] }),
        );
    }
    let mut json = serde_json::to_vec(&obj).expect("JSON of strings and integers");
    while !(8 + json.len()).is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out
}

/// Decodes little-endian BF16/F16/F32 bytes to f32.
pub fn decode_f32(tensor: &str, dtype: Dtype, bytes: &[u8], what: &str) -> Result<Vec<f32>> {
    Ok(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(Error::UnsupportedDtype {
                tensor: tensor.into(),
                dtype: other.to_string(),
                what: what.into(),
            })
        }
    })
}

/// Encodes f32 values in `dtype`, rounding to nearest even for BF16/F16.
pub fn encode_f32(tensor: &str, dtype: Dtype, values: &[f32], what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(values.len() * (dtype.bits() as usize / 8).max(1));
    match dtype {
        Dtype::F32 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Dtype::BF16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&half::bf16::from_f32(*v).to_le_bytes())),
        Dtype::F16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes())),
        other => {
            return Err(Error::UnsupportedDtype {
                tensor: tensor.into(),
                dtype: other.to_string(),
                what: what.into(),
            })
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(json: &str, data_len: usize) -> (Vec<u8>, u64) {
        let mut f = (json.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(json.as_bytes());
        f.resize(f.len() + data_len, 0);
        let size = f.len() as u64;
        (f, size)
    }

    fn parse(json: &str, data_len: usize) -> Result<Header> {
        let (f, size) = file_with(json, data_len);
        parse_header("x", &f[8..8 + json.len()], size)
    }

    #[test]
    fn byte_len_is_checked_not_wrapped() {
        // Qwen3's embedding: 151936 x 2048 bf16 is over 2^32 bits.
        assert_eq!(
            byte_len(Dtype::BF16, &[151936, 2048]),
            Some(151936 * 2048 * 2)
        );
        assert_eq!(byte_len(Dtype::F32, &[u64::MAX / 2, 3]), None);
        assert_eq!(byte_len(Dtype::F4, &[3]), None, "half a byte left over");
        assert_eq!(byte_len(Dtype::F4, &[4]), Some(2));
        assert_eq!(
            byte_len(Dtype::F32, &[]),
            Some(4),
            "a scalar is one element"
        );
    }

    #[test]
    fn dtype_names_round_trip() {
        for d in Dtype::ALL {
            assert_eq!(Dtype::parse(d.name()), Some(d));
        }
        assert_eq!(
            Dtype::parse("bf16"),
            None,
            "names are case-sensitive as in the format"
        );
    }

    #[test]
    fn valid_header_sorted_by_offset() {
        let h = parse(
            r#"{"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]},"__metadata__":{"k":"v"}}  "#,
            12,
        )
        .unwrap();
        assert_eq!(
            h.tensors
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(h.metadata["k"], "v");
    }

    #[test]
    fn structural_errors_are_specific() {
        let e = |json: &str, n| parse(json, n).unwrap_err().to_string();
        assert!(e(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            16
        )
        .contains("belong to no tensor"));
        assert!(e(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#, 16).contains("appears twice"));
        assert!(e(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
            8
        )
        .contains("reversed"));
        assert!(e(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
            12
        )
        .contains("belong to no tensor"));
        assert!(e(
            r#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#,
            8
        )
        .contains("not valid JSON"));
        assert!(e(r#"[1,2]"#, 0).contains("not valid JSON"));
    }

    #[test]
    fn header_bytes_round_trip() {
        let tensors = vec![
            TensorInfo {
                name: "w".into(),
                dtype: Dtype::BF16,
                shape: vec![3, 2],
                begin: 0,
                end: 12,
            },
            TensorInfo {
                name: "n".into(),
                dtype: Dtype::F32,
                shape: vec![2],
                begin: 12,
                end: 20,
            },
        ];
        let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        let bytes = encode_header(&tensors, &meta);
        assert_eq!(bytes.len() % 8, 0);
        let size = bytes.len() as u64 + 20;
        let len = parse_header_len("x", &bytes, size).unwrap();
        let h = parse_header("x", &bytes[8..8 + len as usize], size).unwrap();
        assert_eq!(h.tensors, tensors);
        assert_eq!(h.metadata, meta);
    }

    #[test]
    fn bf16_encoding_rounds_to_nearest_even() {
        // 1 + 2^-8 lies exactly between two bf16 values: ties go to the even mantissa (1.0).
        let tie = f32::from_bits(0x3F80_8000);
        let above = f32::from_bits(0x3F80_8001);
        let b = encode_f32("t", Dtype::BF16, &[tie, above], "test").unwrap();
        assert_eq!(u16::from_le_bytes([b[0], b[1]]), 0x3F80);
        assert_eq!(u16::from_le_bytes([b[2], b[3]]), 0x3F81);
        assert_eq!(
            decode_f32("t", Dtype::BF16, &b, "test").unwrap(),
            vec![1.0, f32::from_bits(0x3F81_0000)]
        );
    }
}
