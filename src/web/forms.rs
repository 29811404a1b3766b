//! The page's forms read into the core's settings, checked, with errors
//! that name the field.

use super::dom::{checked, field};
use crate::app::sweep::SweepSpec;
use crate::error::{Error, Result};
use crate::merge::{MergeSpec, Method};
use crate::prompts::TaskKind;
use crate::tune::front::Tolerance;
use crate::tune::grid::{Grid, LayerSets};

fn list<T: std::str::FromStr>(id: &str, what: &str) -> Result<Vec<T>> {
    let v = field(id);
    let parsed: std::result::Result<Vec<T>, _> =
        v.split(',').map(|x| x.trim().parse::<T>()).collect();
    match parsed {
        Ok(list) if !list.is_empty() => Ok(list),
        _ => Err(Error::Usage(format!(
            "{what}: {v:?} is not a comma-separated list of numbers"
        ))),
    }
}

/// The sweep the evaluate form asks for, checked.
pub fn sweep() -> Result<SweepSpec> {
    sweep_of("")
}

/// The sweep of the fields whose ids start with `prefix` (the Tune
/// step's are `tune-task`, `tune-lengths`, …), checked.
pub fn sweep_of(prefix: &str) -> Result<SweepSpec> {
    let id = |name: &str| format!("{prefix}{name}");
    let task = TaskKind::parse(&field(&id("task")))?;
    let lengths: Vec<u32> = list(&id("lengths"), "lengths")?;
    let depths: Vec<f64> = list(&id("depths"), "depths")?;
    let samples = field(&id("samples"))
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|s| *s >= 1)
        .ok_or_else(|| Error::Usage("samples must be a whole number of at least 1".into()))?;
    let seed = field(&id("seed"))
        .trim()
        .parse::<u64>()
        .map_err(|_| Error::Usage("seed must be a whole number".into()))?;
    let spec = SweepSpec::new(task, lengths, depths, samples, seed);
    spec.check()?;
    Ok(spec)
}

/// The Tune step's grid and tolerance, checked (sweep and answers apart).
pub fn tune_grid() -> Result<(Grid, Tolerance)> {
    let words = |id: &str| {
        field(id)
            .split(',')
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
    };
    let grid = Grid {
        methods: words("tune-methods")
            .iter()
            .map(|m| Method::parse(m))
            .collect::<Result<Vec<_>>>()?,
        betas: if words("tune-betas").is_empty() {
            Vec::new()
        } else {
            list("tune-betas", "QK-Pro β")?
        },
        layer_sets: words("tune-layer-sets")
            .iter()
            .map(|l| LayerSets::parse(l))
            .collect::<Result<Vec<_>>>()?,
    };
    grid.check()?;
    let points = field("tune-tolerance")
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|t| *t >= 0.0)
        .ok_or_else(|| Error::Usage("the tolerance is a number of points, 0 or more".into()))?;
    Ok((
        grid,
        Tolerance {
            points,
            ..Tolerance::default()
        },
    ))
}

/// The merge form's settings.
pub fn merge() -> Result<MergeSpec> {
    let method = Method::parse(&field("method"))?;
    let number = |id: &str| -> Result<f32> {
        field(id)
            .trim()
            .parse::<f32>()
            .map_err(|_| Error::Usage(format!("{id} must be a number, not {:?}", field(id))))
    };
    let layers = field("layers");
    let layers = if layers.trim().is_empty() {
        None
    } else {
        Some(
            layers
                .split(',')
                .map(|l| {
                    l.trim()
                        .parse::<usize>()
                        .map_err(|_| Error::Usage(format!("layers: {l:?} is not a layer number")))
                })
                .collect::<Result<Vec<_>>>()?,
        )
    };
    let spec = MergeSpec {
        method,
        alpha: number("alpha")?,
        beta: number("beta")?,
        layers,
        include_norms: checked("restore-norms"),
        restore_gate_rows: checked("restore-gate-rows"),
    };
    spec.validate()?;
    Ok(spec)
}
