//! One sweep spread over several engines (the page's worker pool): each
//! share runs only its prompts, shares together run every prompt once,
//! and their results, merged in any order and sorted, equal one engine's
//! run of the whole sweep exactly. A share continues from what it was
//! given as done, as a replaced worker does.

use std::path::Path;

use qklab::app::model::{Backend, BackendChoice, OpenModel};
use qklab::app::sweep::{run_sweep, Shard, SweepSpec};
use qklab::prompts::TaskKind;
use qklab::source::{block_on, FsSource};
use qklab::sweep::SampleResult;

fn demo(side: &str) -> OpenModel<FsSource> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("www/demo")
        .join(side);
    block_on(OpenModel::open(side, FsSource::open(&path).unwrap())).unwrap()
}

fn sweep(spec: &SweepSpec, done: Vec<SampleResult>) -> Vec<SampleResult> {
    let backend = block_on(Backend::open(BackendChoice::Cpu)).unwrap();
    let models = [demo("pre"), demo("sft")];
    let mut results = done;
    assert!(block_on(run_sweep(
        &backend,
        &models,
        spec,
        None,
        &mut results,
        &mut |_| true
    ))
    .unwrap());
    results
}

#[test]
fn shares_together_are_the_whole_sweep_in_its_order() {
    let task = TaskKind::parse("s1").unwrap();
    let whole = SweepSpec::new(task, vec![400, 500], vec![0.0, 1.0], 2, 7);
    let one_engine = sweep(&whole, Vec::new());
    assert_eq!(one_engine.len(), 2 * whole.per_model());
    for (i, r) in one_engine.iter().filter(|r| r.model == "sft").enumerate() {
        assert_eq!(
            whole.index_of(r),
            Some(i),
            "the index of a prompt is its place in the sweep"
        );
    }

    let count = 3;
    let mut merged = Vec::new();
    for index in (0..count).rev() {
        let share = SweepSpec {
            shard: Some(Shard { index, count }),
            ..whole.clone()
        };
        let mine = sweep(&share, Vec::new());
        assert_eq!(mine.len(), 2 * share.per_model_here(), "share {index}");
        // A replacement of this share's worker, given its first result as
        // done, runs the rest only.
        let rerun = sweep(&share, mine[..1].to_vec());
        assert_eq!(rerun, mine, "share {index}, continued");
        merged.extend(mine);
    }
    assert_ne!(merged, one_engine, "merged out of order, to be sorted");
    whole.sort_in_sweep_order(&["pre", "sft"], &mut merged);
    assert_eq!(merged, one_engine);
}

#[test]
fn a_share_that_does_not_exist_is_refused() {
    let spec = SweepSpec {
        shard: Some(Shard { index: 2, count: 2 }),
        ..SweepSpec::new(TaskKind::parse("s1").unwrap(), vec![400], vec![0.0], 1, 1)
    };
    let backend = block_on(Backend::open(BackendChoice::Cpu)).unwrap();
    let err = block_on(run_sweep(
        &backend,
        &[demo("pre")],
        &spec,
        None,
        &mut Vec::new(),
        &mut |_| true,
    ))
    .unwrap_err();
    assert!(
        err.to_string().contains("share 2 of 2 does not exist"),
        "{err}"
    );
}
