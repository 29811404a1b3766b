//! The weights as the engines compute with them, read from a checkpoint's
//! tensors. Two families store a weight in a form no engine computes with
//! (SPEC-gdn, "Qwen3.5"), and each is undone here, once, for all engines:
//!
//! - zero-centred RMSNorm weights (`y = x / rms(x) * (1 + w)`): read as
//!   `1 + w`, in f32 as transformers adds them, so every engine's plain
//!   `w * x / rms(x)` computes the same;
//! - gated attention's `q_proj`, per head `dh` query rows then `dh` gate
//!   rows: read as the query rows under the `q_proj` name and the gate
//!   rows under `o_gate`, the name of HypeNet's output gate, which every
//!   engine already applies as `o * sigmoid(gate x)`.

use std::ops::Range;

use crate::checkpoint::Checkpoint;
use crate::config::{Arch, Mixer};
use crate::error::Result;
use crate::names::{role_of, Proj, Role};
use crate::source::ByteSource;

/// How an engine's weight comes from a stored tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Whole(String),
    /// `1 + w`, a zero-centred norm's weight.
    PlusOne(String),
    /// The query rows (`gate` false) or the gate rows of a gated `q_proj`
    /// whose heads are `head_dim` wide.
    Rows {
        tensor: String,
        gate: bool,
        head_dim: usize,
    },
}

/// Where the engines' weight `name` comes from.
pub fn source(arch: &Arch, name: &str) -> Source {
    let gated_q_layer =
        |l: usize| arch.attn_gate_in_q && arch.mixers.get(l) == Some(&Mixer::Softmax);
    let head_dim = arch.attn.head_dim as usize;
    match role_of(name) {
        Some((l, Role::ProjWeight(Proj::Q))) if gated_q_layer(l) => Source::Rows {
            tensor: name.into(),
            gate: false,
            head_dim,
        },
        Some((l, Role::OGate)) if gated_q_layer(l) => Source::Rows {
            tensor: arch.layer_names(l).q.weight,
            gate: true,
            head_dim,
        },
        Some((_, Role::InputNorm | Role::PostNorm | Role::QNorm | Role::KNorm))
            if arch.norm_plus_one =>
        {
            Source::PlusOne(name.into())
        }
        None if arch.norm_plus_one && name == arch.final_norm_name() => {
            Source::PlusOne(name.into())
        }
        _ => Source::Whole(name.into()),
    }
}

/// Every weight the engines read, by the names they use: the tensors the
/// architecture names, with each gated `q_proj`'s gate rows as `o_gate`.
pub fn engine_tensors(arch: &Arch) -> Vec<String> {
    let mut out: Vec<String> = arch
        .expected_tensors()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    if arch.attn_gate_in_q {
        out.extend(
            arch.softmax_layers()
                .into_iter()
                .map(|l| arch.layer_names(l).o_gate),
        );
    }
    out
}

impl Source {
    /// The checkpoint tensor it is made from.
    pub fn tensor(&self) -> &str {
        match self {
            Source::Whole(t) | Source::PlusOne(t) | Source::Rows { tensor: t, .. } => t,
        }
    }
}

/// `source`'s tensor, as read in f32 (`full`), as the engines compute
/// with it: what [`read`] does after reading, for a swapped tensor.
pub fn convert(arch: &Arch, source: &Source, full: Vec<f32>) -> Vec<f32> {
    match source {
        Source::Whole(_) => full,
        Source::PlusOne(_) => plus_one(full),
        Source::Rows { gate, head_dim, .. } => {
            gated_q_rows(&full, arch.hidden_size as usize, *head_dim, *gate)
        }
    }
}

/// Weight `name` in f32 as the engines compute with it (`what` says who
/// reads it, for errors).
pub async fn read<S: ByteSource>(
    ck: &Checkpoint<S>,
    arch: &Arch,
    name: &str,
    what: &str,
) -> Result<Vec<f32>> {
    let source = source(arch, name);
    let full = ck.read_tensor_f32(source.tensor(), what).await?;
    Ok(convert(arch, &source, full))
}

/// A zero-centred norm's weight as a plain norm's: `1 + w`.
pub fn plus_one(mut w: Vec<f32>) -> Vec<f32> {
    w.iter_mut().for_each(|x| *x += 1.0);
    w
}

/// The rows `[start, end)` of a gated `q_proj` of `heads` heads of
/// `head_dim`: each head's query rows, or (`gate`) its gate rows. The one
/// statement of that layout, for the engines and the merge.
pub fn gated_rows(heads: u64, head_dim: u64, gate: bool) -> Vec<Range<u64>> {
    let first = if gate { head_dim } else { 0 };
    (0..heads)
        .map(|h| {
            let start = h * 2 * head_dim + first;
            start..start + head_dim
        })
        .collect()
}

/// Rows `ranges` of a row-major matrix of `cols` columns, stacked.
pub fn take_rows(full: &[f32], ranges: &[Range<u64>], cols: usize) -> Vec<f32> {
    ranges
        .iter()
        .flat_map(|r| &full[r.start as usize * cols..r.end as usize * cols])
        .copied()
        .collect()
}

/// The query rows (or, with `gate`, the gate rows) of a gated `q_proj`
/// `[H * 2 dh, d]` (row-major), as `[H * dh, d]`.
pub fn gated_q_rows(full: &[f32], d: usize, head_dim: usize, gate: bool) -> Vec<f32> {
    let heads = full.len() / (2 * head_dim * d).max(1);
    take_rows(full, &gated_rows(heads as u64, head_dim as u64, gate), d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gated_q_rows_take_each_heads_half() {
        // 2 heads of dh 2, d 1: rows q0 q1 g0 g1 | q2 q3 g2 g3
        let full = [0.0, 1.0, 10.0, 11.0, 2.0, 3.0, 12.0, 13.0];
        assert_eq!(gated_q_rows(&full, 1, 2, false), [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(gated_q_rows(&full, 1, 2, true), [10.0, 11.0, 12.0, 13.0]);
    }
}
