//! The candidates of a tune: each method (and each QK-Pro beta) on each
//! layer set, sft itself first as the baseline every repair is weighed
//! against.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::merge::{MergeSpec, Method};

/// A rule for the softmax layers a candidate touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerSets {
    /// Every softmax layer.
    All,
    /// Each softmax layer alone.
    Each,
    /// All but one, for each one.
    LeaveOneOut,
    /// These layers.
    Given(Vec<usize>),
}

impl LayerSets {
    /// `all`, `each`, `leave-one-out` or layers joined by `+` (`3+6`).
    pub fn parse(s: &str) -> Result<LayerSets> {
        match s.trim() {
            "all" => Ok(LayerSets::All),
            "each" => Ok(LayerSets::Each),
            "leave-one-out" | "loo" => Ok(LayerSets::LeaveOneOut),
            other => other
                .split('+')
                .map(|l| l.trim().parse::<usize>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(LayerSets::Given)
                .map_err(|_| {
                    Error::Usage(format!(
                        "layer set {other:?}: expected all, each, leave-one-out or layers like 3+6"
                    ))
                }),
        }
    }

    /// The layer sets this rule names, over the model's softmax layers.
    fn expand(&self, softmax: &[usize]) -> Vec<Vec<usize>> {
        match self {
            LayerSets::All => vec![softmax.to_vec()],
            LayerSets::Each => softmax.iter().map(|&l| vec![l]).collect(),
            LayerSets::LeaveOneOut => softmax
                .iter()
                .map(|&out| softmax.iter().copied().filter(|&l| l != out).collect())
                .collect(),
            LayerSets::Given(layers) => {
                let mut l = layers.clone();
                l.sort_unstable();
                l.dedup();
                vec![l]
            }
        }
    }
}

/// What a tune tries: every method on every layer set, QK-Pro at each beta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub methods: Vec<Method>,
    pub betas: Vec<f32>,
    pub layer_sets: Vec<LayerSets>,
}

impl Default for Grid {
    /// The grid: QK-Restore, QK-Pro at four strengths, Q- and
    /// K-Restore, on all softmax layers, each alone and each left out.
    fn default() -> Grid {
        Grid {
            methods: vec![
                Method::QkRestore,
                Method::QkPro,
                Method::QRestore,
                Method::KRestore,
            ],
            betas: vec![0.25, 0.5, 0.75, 1.0],
            layer_sets: vec![LayerSets::All, LayerSets::Each, LayerSets::LeaveOneOut],
        }
    }
}

/// One point of a tune: sft itself (`spec` None) or a merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub spec: Option<MergeSpec>,
}

impl Candidate {
    /// "sft", or the method with its beta and layers: "qk-pro 0.5 @3+6".
    pub fn label(&self) -> String {
        let Some(s) = &self.spec else {
            return "sft".into();
        };
        let layers = s
            .layers
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("+");
        let beta = if s.method == Method::QkPro {
            format!(" {}", s.beta)
        } else {
            String::new()
        };
        format!("{}{beta} @{layers}", s.method.name())
    }

    pub fn method(&self) -> &'static str {
        self.spec.as_ref().map_or("sft", |s| s.method.name())
    }
}

impl Grid {
    /// Checks the grid before anything runs.
    pub fn check(&self) -> Result<()> {
        if self.methods.is_empty() || self.layer_sets.is_empty() {
            return Err(Error::Usage(
                "a tune needs at least one method and one layer set".into(),
            ));
        }
        if self.methods.contains(&Method::QkPro) && self.betas.is_empty() {
            return Err(Error::Usage("qk-pro needs at least one beta".into()));
        }
        if let Some(b) = self
            .betas
            .iter()
            .find(|b| !(0.0..=1.0).contains(*b) || **b == 0.0)
        {
            return Err(Error::Usage(format!("beta {b} is outside (0, 1]")));
        }
        Ok(())
    }

    /// sft, then each distinct (method, beta, layers) over `softmax` (the
    /// model's softmax layers), in the grid's order. Layer sets that come
    /// out empty (leave-one-out of a single layer) or twice are skipped.
    pub fn candidates(&self, softmax: &[usize]) -> Result<Vec<Candidate>> {
        self.check()?;
        let mut sets: Vec<Vec<usize>> = Vec::new();
        for rule in &self.layer_sets {
            for set in rule.expand(softmax) {
                if let Some(l) = set.iter().find(|l| !softmax.contains(l)) {
                    return Err(Error::Usage(format!(
                        "layer {l} is not a softmax layer; they are {softmax:?}"
                    )));
                }
                if !set.is_empty() && !sets.contains(&set) {
                    sets.push(set);
                }
            }
        }
        let mut out = vec![Candidate { spec: None }];
        for set in sets {
            for &method in &self.methods {
                let betas: &[f32] = if method == Method::QkPro {
                    &self.betas
                } else {
                    &[1.0]
                };
                for &beta in betas {
                    let spec = MergeSpec {
                        beta,
                        layers: Some(set.clone()),
                        ..MergeSpec::new(method)
                    };
                    let c = Candidate { spec: Some(spec) };
                    if !out.contains(&c) {
                        out.push(c);
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_grid_on_two_softmax_layers() {
        let c = Grid::default().candidates(&[3, 6]).unwrap();
        // sft + 3 distinct layer sets x (qk-restore, 4 qk-pro, q, k).
        assert_eq!(c.len(), 1 + 3 * 7);
        assert_eq!(c[0].label(), "sft");
        assert_eq!(c[1].label(), "qk-restore @3+6");
        assert_eq!(c[2].label(), "qk-pro 0.25 @3+6");
        assert!(c.iter().any(|c| c.label() == "k-restore @6"));
        let labels: std::collections::HashSet<String> = c.iter().map(Candidate::label).collect();
        assert_eq!(labels.len(), c.len(), "no candidate twice");
    }

    #[test]
    fn layer_sets_parse_and_refuse() {
        assert_eq!(
            LayerSets::parse("6+3").unwrap(),
            LayerSets::Given(vec![6, 3])
        );
        assert_eq!(LayerSets::parse("loo").unwrap(), LayerSets::LeaveOneOut);
        assert!(LayerSets::parse("3,6").is_err());
        let g = Grid {
            layer_sets: vec![LayerSets::Given(vec![2])],
            ..Grid::default()
        };
        assert!(g
            .candidates(&[3, 6])
            .unwrap_err()
            .to_string()
            .contains("layer 2 is not a softmax layer"));
        let one = Grid {
            layer_sets: vec![LayerSets::LeaveOneOut],
            ..Grid::default()
        };
        assert_eq!(
            one.candidates(&[3]).unwrap().len(),
            1,
            "leaving out the only layer leaves nothing to try"
        );
    }
}
