//! The merge engine (`../shared/SPEC-methods.md`): QK-Restore and its
//! ablations, alpha blends, QK-Pro, drift, recipes.
//!
//! A merge is an output plan over two inputs: source 0 is the sft
//! checkpoint (everything untouched is its byte range), source 1 is pre.
//! Copy-only methods never decode a tensor: the output tensor is pre's byte
//! range. Everything else is computed in f32 (f64 for the Gram solve of
//! QK-Pro) and written back in the tensor's own dtype, rounding to nearest even.

pub mod compat;
pub mod drift;
pub mod linalg;
pub mod plan;
pub mod qkpro;
pub mod recipe;
pub mod rows;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::names::Proj;

/// Input numbers of a merge plan.
pub const SFT: usize = 0;
pub const PRE: usize = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The paper's method: W_Q and W_K of the softmax layers from pre.
    QkRestore,
    QRestore,
    KRestore,
    VRestore,
    /// W_K from pre, W_Q corrected inside K_pre's row space (Appendix N).
    QkPro,
}

impl Method {
    pub const ALL: [Method; 5] = [
        Method::QkRestore,
        Method::QRestore,
        Method::KRestore,
        Method::VRestore,
        Method::QkPro,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::QkRestore => "qk-restore",
            Method::QRestore => "q-restore",
            Method::KRestore => "k-restore",
            Method::VRestore => "v-restore",
            Method::QkPro => "qk-pro",
        }
    }

    pub fn parse(s: &str) -> Result<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
                Error::Usage(format!(
                    "unknown method {s:?}: expected one of {}",
                    names.join(", ")
                ))
            })
    }

    /// Projections taken from pre (or blended).
    pub fn projections(self) -> &'static [Proj] {
        match self {
            Method::QkRestore | Method::QkPro => &[Proj::Q, Proj::K],
            Method::QRestore => &[Proj::Q],
            Method::KRestore => &[Proj::K],
            Method::VRestore => &[Proj::V],
        }
    }
}

/// Everything that defines a merge, as stored in a recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeSpec {
    pub method: Method,
    /// W = W_sft + alpha (W_pre - W_sft); 1 is a plain restore.
    #[serde(default = "one")]
    pub alpha: f32,
    /// QK-Pro's strength: Q = Q_sft - beta (Q_sft - Q_pre) P.
    #[serde(default = "one")]
    pub beta: f32,
    /// Softmax layers to touch; `None` means all of them.
    #[serde(default)]
    pub layers: Option<Vec<usize>>,
    /// Also take q_norm / k_norm (with q / k) from pre.
    #[serde(default)]
    pub include_norms: bool,
    /// Qwen3.5: also take the output gate's rows of q_proj from pre. They
    /// feed the output path, not the routing, so by default they stay sft's.
    /// Left out of the JSON when off, so that specs saved before it read
    /// and write back the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restore_gate_rows: bool,
}

fn one() -> f32 {
    1.0
}

impl MergeSpec {
    pub fn new(method: Method) -> Self {
        MergeSpec {
            method,
            alpha: 1.0,
            beta: 1.0,
            layers: None,
            include_norms: false,
            restore_gate_rows: false,
        }
    }

    /// Checks the parameters' ranges and their combination.
    pub fn validate(&self) -> Result<()> {
        let in_unit = |x: f32| (0.0..=1.0).contains(&x);
        if !in_unit(self.alpha) {
            return Err(Error::Usage(format!(
                "alpha {} is outside [0, 1]",
                self.alpha
            )));
        }
        if !in_unit(self.beta) {
            return Err(Error::Usage(format!(
                "beta {} is outside [0, 1]",
                self.beta
            )));
        }
        if self.method == Method::QkPro && self.alpha != 1.0 {
            return Err(Error::Usage(
                "alpha applies to the restore methods; QK-Pro takes beta".into(),
            ));
        }
        if self.restore_gate_rows && !self.method.projections().contains(&Proj::Q) {
            return Err(Error::Usage(format!(
                "the gate rows live in q_proj, which {} leaves as sft's: restoring them needs a method that restores q (qk-restore, q-restore, qk-pro)",
                self.method.name()
            )));
        }
        if self.method != Method::QkPro && self.beta != 1.0 {
            return Err(Error::Usage(format!(
                "beta applies to qk-pro only, not {}",
                self.method.name()
            )));
        }
        Ok(())
    }

    /// Whether the output tensors are plain copies of pre's bytes.
    pub fn is_copy_only(&self) -> bool {
        self.method != Method::QkPro && self.alpha == 1.0
    }
}
