//! The page's state, in one place: the pair, the merge, the last sweep
//! and routing results, and the figures on the page. Panels write what
//! they make and read what others made; none reaches into another.

use std::cell::RefCell;

use web_sys::File;

use crate::app::demo::{DemoPair, Recorded};
use crate::app::routing::{Profile, RoutingSpec};
use crate::app::sweep::SweepSpec;
use crate::error::{Error, Result};
use crate::merge::MergeSpec;
use crate::sweep::SampleResult;

/// The routing panel's last computation.
pub struct Routing {
    pub spec: RoutingSpec,
    /// pre, sft and the merge (when there is one).
    pub profiles: Vec<Profile>,
}

#[derive(Default)]
pub struct PageState {
    /// The files of each side: [before SFT, after SFT].
    pub pair: [Vec<File>; 2],
    /// The last merge's settings and files.
    pub merged: Option<(MergeSpec, Vec<File>)>,
    /// The last merge's recipe, for "Copy recipe".
    pub recipe: String,
    /// The files of the checkpoint the inspect panel shows.
    pub opened: Vec<File>,
    /// The settings and every finished sample of the last sweep.
    pub sweep: Option<(SweepSpec, Vec<SampleResult>)>,
    pub routing: Option<Routing>,
    /// The figures on the page: (file stem, SVG text).
    pub figures: Vec<(String, String)>,
    /// The demo pair open (None for a pair of the visitor's own).
    pub demo: Option<&'static DemoPair>,
    /// The open demo's recorded results.
    pub recorded: Option<Recorded>,
    /// Every demo pair's recording fetched so far, by pair key (for the
    /// table across architectures).
    pub recordings: Vec<(&'static str, Recorded)>,
    /// Whether any MLP weight moved between the pair's checkpoints (from
    /// the drift), once computed.
    pub mlp_moved: Option<bool>,
    /// The guide's current step.
    pub step: usize,
    /// The Tune step's answers: where they came from, their JSONL text, and
    /// whether they are the demo's (dropped when another pair is opened).
    pub tune_answers: Option<(String, String, bool)>,
    /// The last ranking of the pair now open (its top layers go to the merge form).
    pub layers: Option<crate::app::layers::LayersReport>,
    /// Counts the pairs opened, so that work started on one is not applied to the next.
    pub pair_version: u64,
    /// The last tune's candidates (for "Download this merge").
    pub tune: Vec<crate::app::tune::Scored>,
}

thread_local! {
    static STATE: RefCell<PageState> = RefCell::new(PageState::default());
}

/// Runs `f` on the state. `f` must not call back into `with`.
pub fn with<R>(f: impl FnOnce(&mut PageState) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

/// The models to evaluate side by side: pre, sft, and the merge once made;
/// an error until both sides are given.
pub fn models() -> Result<Vec<(&'static str, Vec<File>)>> {
    let (pair, merged) = with(|s| (s.pair.clone(), s.merged.as_ref().map(|m| m.1.clone())));
    let [pre, sft] = pair;
    let mut out = vec![("pre", pre), ("sft", sft)];
    if let Some(files) = merged {
        out.push(("merged", files));
    }
    out.retain(|(_, f)| !f.is_empty());
    if out.len() < 2 {
        return Err(Error::Usage(
            "Give both checkpoints (or open the demo) first.".into(),
        ));
    }
    Ok(out)
}

/// Replaces the figures whose stems start with `group`.
pub fn set_figures(group: &str, figures: Vec<(String, String)>) {
    with(|s| {
        s.figures.retain(|(name, _)| !name.starts_with(group));
        s.figures.extend(figures);
    });
}
