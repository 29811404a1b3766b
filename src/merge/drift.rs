//! Drift of sft from pre (the paper's Figures 5 and 6): per tensor the
//! relative Frobenius distance ||W_sft - W_pre|| / ||W_pre||, per head for
//! q and k of the softmax layers, and a layers x {q, k, v, o, gate, mlp}
//! map (Qwen3.5 adds "q gate": its q_proj's gate rows, apart from the
//! query rows that route; its gated-delta layers' in_proj_qkv feeds q, k
//! and v by rows, in_proj_z the gate, out_proj o). Streamed: one tensor
//! pair in memory at a time.

use serde::Serialize;

use super::compat::check_pair;
use crate::checkpoint::Checkpoint;
use crate::config::Mixer;
use crate::error::Result;
use crate::names::{role_of, Proj, Role};
use crate::safetensors::decode_f32;
use crate::source::ByteSource;

#[derive(Debug, Clone, Serialize)]
pub struct TensorDrift {
    pub name: String,
    pub drift: f64,
    /// Per head (rows of head_dim), for q/k of softmax layers; of a
    /// gated q_proj (Qwen3.5), its query rows' heads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heads: Option<Vec<f64>>,
    /// A gated q_proj's gate rows, per head, and all of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate_heads: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate_drift: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerDrift {
    pub index: usize,
    pub mixer: String,
    pub softmax: bool,
    /// q, k, v, o, gate (o_gate or z_proj), mlp (the three together).
    pub q: f64,
    pub k: f64,
    pub v: f64,
    pub o: f64,
    pub gate: f64,
    pub mlp: f64,
    /// Qwen3.5: the gate rows of q_proj (`q` is then its query rows alone),
    /// which feed the output path, not the routing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q_gate: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub tensors: Vec<TensorDrift>,
    pub layers: Vec<LayerDrift>,
    /// Tensors skipped because their dtype is not a float we read.
    pub skipped: Vec<String>,
}

/// Squared Frobenius norms of (sft - pre) and pre, in row blocks of `rows` elements.
fn sq_norms(pre: &[f32], sft: &[f32], block: usize) -> Vec<(f64, f64)> {
    pre.chunks(block.max(1))
        .zip(sft.chunks(block.max(1)))
        .map(|(p, s)| {
            p.iter().zip(s).fold((0.0, 0.0), |(d, n), (p, s)| {
                let (p, s) = (*p as f64, *s as f64);
                (d + (s - p) * (s - p), n + p * p)
            })
        })
        .collect()
}

/// Bytes of one tensor read at a time: the drift of a pair whose tensors
/// are larger than a browser's memory (a 2B model's embedding is 1.2 GB
/// in f32, twice over for the pair) runs in bounded memory.
const READ_BYTES: u64 = 32 << 20;

/// (squared diff, squared norm) of tensor `name`: per block of `block`
/// elements (a head's rows), or one pair for the whole tensor without one;
/// read in pieces of about `READ_BYTES`.
async fn streamed_norms<S: ByteSource>(
    pre: &Checkpoint<S>,
    sft: &Checkpoint<S>,
    name: &str,
    block: Option<usize>,
) -> Result<Vec<(f64, f64)>> {
    let (Some(tp), Some(ts)) = (pre.tensor(name), sft.tensor(name)) else {
        return Err(crate::Error::NoSuchTensor {
            tensor: name.into(),
        });
    };
    let elem = (tp.dtype.bits() / 8).max(1);
    let numel = (tp.end - tp.start) / elem;
    let unit = block.map_or(1, |b| b.max(1) as u64);
    // Whole blocks per read (at least one), so each block's sums stay together.
    let per_read = ((READ_BYTES / elem / unit).max(1) * unit).min(numel.max(1));
    let mut blocks = Vec::new();
    let mut whole = (0.0, 0.0);
    let mut at = 0;
    while at < numel {
        let n = per_read.min(numel - at);
        let p = decode_f32(
            name,
            tp.dtype,
            &pre.read_tensor_range(tp, at * elem, n * elem).await?,
            "drift",
        )?;
        let s = decode_f32(
            name,
            ts.dtype,
            &sft.read_tensor_range(ts, at * elem, n * elem).await?,
            "drift",
        )?;
        match block {
            Some(b) => blocks.extend(sq_norms(&p, &s, b)),
            None => {
                let (d, m) = sq_norms(&p, &s, p.len())[0];
                whole = (whole.0 + d, whole.1 + m);
            }
        }
        at += n;
    }
    Ok(if block.is_some() { blocks } else { vec![whole] })
}

/// Which drift column a gated-delta layer's tensor feeds.
enum GdnPart {
    Qkv,
    Gate,
    Out,
    /// Convolution, beta's and the decay's projections and parameters, the
    /// norm: listed per tensor, in no column.
    Other,
}

fn gdn_part(arch: &crate::config::Arch, name: &str) -> Option<(usize, GdnPart)> {
    let l =
        crate::names::layer_of(name).filter(|&l| arch.mixers.get(l) == Some(&Mixer::GatedDelta))?;
    let g = arch.layer_names(l).gdn;
    let part = if name == g.in_qkv {
        GdnPart::Qkv
    } else if name == g.in_z {
        GdnPart::Gate
    } else if name == g.out {
        GdnPart::Out
    } else if [&g.conv, &g.in_b, &g.in_a, &g.a_log, &g.dt_bias, &g.norm]
        .contains(&&name.to_string())
    {
        GdnPart::Other
    } else {
        return None;
    };
    Some((l, part))
}

fn ratio((d, n): (f64, f64)) -> f64 {
    if n > 0.0 {
        (d / n).sqrt()
    } else if d > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

pub async fn drift<S: ByteSource>(
    pre: &Checkpoint<S>,
    sft: &Checkpoint<S>,
    mut progress: impl FnMut(usize, usize),
) -> Result<DriftReport> {
    let arch = check_pair(pre, sft)?;
    let mut tensors = Vec::new();
    let mut skipped = Vec::new();
    // Per layer, per column: (squared diff, squared norm) accumulated.
    let mut acc = vec![[(0.0f64, 0.0f64); 7]; arch.num_layers()];
    let total = sft.tensors.len();
    for (i, t) in sft.tensors.iter().enumerate() {
        progress(i, total);
        if !t.dtype.is_float_readable() {
            skipped.push(t.name.clone());
            continue;
        }
        if let Some((l, part)) = gdn_part(&arch, &t.name) {
            // A gated-delta layer's in_proj_qkv feeds the q, k and v columns by
            // its row ranges; z is its output gate, out_proj its o.
            let d = arch.hidden_size as usize;
            let rows = streamed_norms(pre, sft, &t.name, Some(d)).await?;
            let whole = rows.iter().fold((0.0, 0.0), |(a, b), r| (a + r.0, b + r.1));
            tensors.push(TensorDrift {
                name: t.name.clone(),
                drift: ratio(whole),
                heads: None,
                gate_heads: None,
                gate_drift: None,
            });
            let slot = &mut acc[l];
            let mut add = |c: usize, (a, b): (f64, f64)| {
                slot[c].0 += a;
                slot[c].1 += b;
            };
            match part {
                GdnPart::Qkv => {
                    let qk = (arch.gdn.key_heads * arch.gdn.key_dim) as usize;
                    let sum = |r: &[(f64, f64)]| {
                        r.iter().fold((0.0, 0.0), |(a, b), r| (a + r.0, b + r.1))
                    };
                    add(0, sum(&rows[..qk.min(rows.len())]));
                    add(1, sum(&rows[qk.min(rows.len())..(2 * qk).min(rows.len())]));
                    add(2, sum(&rows[(2 * qk).min(rows.len())..]));
                }
                GdnPart::Out => add(3, whole),
                GdnPart::Gate => add(4, whole),
                GdnPart::Other => {}
            }
            continue;
        }
        let role = role_of(&t.name);
        let head_rows = match role {
            Some((l, Role::ProjWeight(Proj::Q | Proj::K)))
                if arch.mixers.get(l) == Some(&Mixer::Softmax) =>
            {
                Some(arch.attn.head_dim as usize * arch.hidden_size as usize)
            }
            _ => None,
        };
        let blocks = streamed_norms(pre, sft, &t.name, head_rows).await?;
        let sum = |b: &mut dyn Iterator<Item = &(f64, f64)>| {
            b.fold((0.0, 0.0), |(d, n), b| (d + b.0, n + b.1))
        };
        let whole = sum(&mut blocks.iter());
        // A gated q_proj's head blocks alternate: query rows, then gate rows.
        let gated = arch.attn_gate_in_q
            && head_rows.is_some()
            && matches!(role, Some((_, Role::ProjWeight(Proj::Q))));
        let (query, gate) = if gated {
            let (q, g): (Vec<_>, Vec<_>) = blocks.chunks(2).map(|c| (c[0], c[1])).unzip();
            (q, Some(g))
        } else {
            (blocks, None)
        };
        let routing = if gated { sum(&mut query.iter()) } else { whole };
        let heads = head_rows.map(|_| query.iter().copied().map(ratio).collect());
        let gate_whole = gate.as_ref().map(|g| sum(&mut g.iter()));
        tensors.push(TensorDrift {
            name: t.name.clone(),
            drift: ratio(whole),
            heads,
            gate_heads: gate.map(|g| g.into_iter().map(ratio).collect()),
            gate_drift: gate_whole.map(ratio),
        });
        let column = role.and_then(|(l, r)| match r {
            Role::ProjWeight(Proj::Q) => Some((l, 0)),
            Role::ProjWeight(Proj::K) => Some((l, 1)),
            Role::ProjWeight(Proj::V) => Some((l, 2)),
            Role::ProjWeight(Proj::O) => Some((l, 3)),
            Role::OGate | Role::ZProj => Some((l, 4)),
            Role::Mlp => Some((l, 5)),
            _ => None,
        });
        if let Some((l, c)) = column {
            if let Some(slot) = acc.get_mut(l) {
                let part = if c == 0 { routing } else { whole };
                slot[c].0 += part.0;
                slot[c].1 += part.1;
                if let Some(g) = gate_whole {
                    slot[6].0 += g.0;
                    slot[6].1 += g.1;
                }
            }
        }
    }
    progress(total, total);
    let layers = acc
        .iter()
        .enumerate()
        .map(|(index, a)| LayerDrift {
            index,
            mixer: arch.mixer_names[index].clone(),
            softmax: arch.mixers[index] == Mixer::Softmax,
            q: ratio(a[0]),
            k: ratio(a[1]),
            v: ratio(a[2]),
            o: ratio(a[3]),
            gate: ratio(a[4]),
            mlp: ratio(a[5]),
            q_gate: (arch.attn_gate_in_q && arch.mixers[index] == Mixer::Softmax)
                .then(|| ratio(a[6])),
        })
        .collect();
    Ok(DriftReport {
        tensors,
        layers,
        skipped,
    })
}
