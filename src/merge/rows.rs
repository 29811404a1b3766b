//! Merging part of a tensor's rows: Qwen3.5's gated attention keeps its
//! output gate in `q_proj` (per head, `dh` query rows then `dh` gate rows;
//! SPEC-gdn), and only the query rows route, so QK-Restore takes those
//! from pre and leaves the gate rows sft's. What a merge restored, rows
//! included, is recorded as [`Restored`] in its recipe and provenance.

use std::ops::Range;

use serde::{Deserialize, Serialize};

// The gated q_proj's layout has one home, where the engines read it.
pub use crate::model::weights::{gated_rows, take_rows};

/// Writes `rows` (stacked as [`take_rows`] gives them) back over `ranges` of `full`.
pub fn put_rows(full: &mut [f32], ranges: &[Range<u64>], cols: usize, rows: &[f32]) {
    let mut at = 0;
    for r in ranges {
        let n = (r.end - r.start) as usize * cols;
        full[r.start as usize * cols..][..n].copy_from_slice(&rows[at..at + n]);
        at += n;
    }
}

/// One tensor a merge took (or blended, or recomputed) from pre.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Restored {
    pub tensor: String,
    /// The rows `[start, end)` that changed, when not the whole tensor;
    /// every other row is sft's, byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<[u64; 2]>>,
    /// What those rows are, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Restored {
    pub fn whole(tensor: &str) -> Restored {
        Restored {
            tensor: tensor.into(),
            rows: None,
            note: None,
        }
    }

    pub fn rows(tensor: &str, ranges: &[Range<u64>], note: String) -> Restored {
        Restored {
            tensor: tensor.into(),
            rows: Some(ranges.iter().map(|r| [r.start, r.end]).collect()),
            note: Some(note),
        }
    }

    /// One line: the tensor, and its rows where only some were restored.
    pub fn statement(&self) -> String {
        let Some(rows) = &self.rows else {
            return self.tensor.clone();
        };
        let ranges: Vec<String> = rows.iter().map(|[a, b]| format!("{a}..{b}")).collect();
        let note = self
            .note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        format!("{} rows {}{note}", self.tensor, ranges.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gated_rows_alternate_query_and_gate() {
        assert_eq!(gated_rows(3, 2, false), [0..2, 4..6, 8..10]);
        assert_eq!(gated_rows(3, 2, true), [2..4, 6..8, 10..12]);
        // 2 heads of dh 1, 2 columns: rows q0 g0 q1 g1
        let full = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5];
        let q = take_rows(&full, &gated_rows(2, 1, false), 2);
        assert_eq!(q, [0.0, 0.5, 2.0, 2.5]);
        let mut back = [9.0; 8];
        put_rows(&mut back, &gated_rows(2, 1, false), 2, &q);
        assert_eq!(back, [0.0, 0.5, 9.0, 9.0, 2.0, 2.5, 9.0, 9.0]);
        let r = Restored::rows("q_proj.weight", &gated_rows(2, 16, false), "query".into());
        assert_eq!(r.statement(), "q_proj.weight rows 0..16, 32..48 (query)");
    }
}
