//! The sweep runner on the demo model: RULER scoring, early stop once the
//! value is out, resuming without re-running, cancelling; CPU and GPU give
//! the same results.

mod common;
use common::open;

use std::collections::HashSet;

use qklab::config::arch_of;
use qklab::model::engine::{Device, Engine};
use qklab::model::fit::EngineOptions;
use qklab::niah::Task;
use qklab::prompts::{Sample, TaskKind};
use qklab::source::block_on;
use qklab::sweep::{cells, run, score};

/// The fixture's NIAH prompt (key close-meadow, value 4967600), and the
/// same prompt asking for a value it does not hold.
fn samples() -> Vec<Sample> {
    let fx = open("tests/fixtures/demo/pre.safetensors");
    let bytes = block_on(fx.read_tensor_bytes("ids_c")).unwrap();
    let ids: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u32)
        .collect();
    let sample = |seed, value: &str| Sample {
        task: TaskKind::Text(Task::S2),
        length: 512,
        depth: 0.5,
        seed,
        ids: ids.clone(),
        value: value.into(),
        max_new: 15,
    };
    vec![sample(1, "4967600"), sample(2, "1234567")]
}

fn bytes_text(ids: &[u32]) -> qklab::Result<String> {
    Ok(String::from_utf8_lossy(
        &ids.iter()
            .filter(|&&i| i < 256)
            .map(|&i| i as u8)
            .collect::<Vec<_>>(),
    )
    .into_owned())
}

#[test]
fn ruler_scoring_ignores_case_and_needs_the_whole_value() {
    assert_eq!(score(" The number is 4967600.", "4967600"), 1.0);
    assert_eq!(score("ABC-def", "abc-DEF"), 1.0);
    assert_eq!(score("496760", "4967600"), 0.0);
}

#[test]
fn sweeps_score_stop_early_resume_and_cancel_on_both_backends() {
    let ck = open("www/demo/pre");
    let gpu = common::gpu();
    let mut all = Vec::new();
    let mut backends = vec![Device::Reference, Device::Cpu];
    if let Some(g) = gpu.as_ref() {
        backends.push(Device::Gpu(g));
    }
    for g in backends {
        let opts = EngineOptions {
            max_context: 520,
            ..Default::default()
        };
        let engine = block_on(Engine::load(
            g,
            &ck,
            arch_of(&ck).unwrap(),
            opts,
            &mut |_| {},
        ))
        .unwrap();
        let mut out = Vec::new();
        let finished = block_on(run(
            &engine,
            "pre",
            &samples(),
            &[257],
            &bytes_text,
            &HashSet::new(),
            &mut out,
            &mut |_, _| true,
            &mut |_| {},
            None,
        ))
        .unwrap();
        assert!(finished);
        assert_eq!(out.len(), 2);
        // The model answers " 4967600." and stops as soon as the value is out.
        assert_eq!(out[0].generated, " 4967600");
        assert_eq!(out[0].score, 1.0);
        // Asked for another value, it runs to its allowance (or EOS) and scores 0.
        assert_eq!(out[1].score, 0.0);
        let c = cells(&out);
        assert_eq!((c.len(), c[0].samples, c[0].accuracy), (1, 2, 0.5));

        // Resuming skips what is done; cancelling keeps what was done.
        let done: HashSet<_> = out.iter().map(|r| r.key()).collect();
        let mut again = Vec::new();
        assert!(block_on(run(
            &engine,
            "pre",
            &samples(),
            &[257],
            &bytes_text,
            &done,
            &mut again,
            &mut |_, _| true,
            &mut |_| {},
            None
        ))
        .unwrap());
        assert!(again.is_empty());
        let mut cancelled = Vec::new();
        let stop_after_one = &mut |i: usize, _| i < 1;
        assert!(!block_on(run(
            &engine,
            "pre",
            &samples(),
            &[257],
            &bytes_text,
            &HashSet::new(),
            &mut cancelled,
            stop_after_one,
            &mut |_| {},
            None
        ))
        .unwrap());
        assert_eq!(cancelled.len(), 1);
        all.push(out);
    }
    for other in &all[1..] {
        assert_eq!(&all[0], other, "the engines' sweeps differ");
    }
}

/// The results in the repository, typed task and all, read back and write
/// out as they were: the task is a value in memory, the same string in JSON.
#[test]
fn saved_results_read_and_write_back_unchanged() {
    use qklab::app::demo::Recorded;
    use qklab::app::sweep::SweepReport;
    use qklab::app::tune::TuneReport;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |rel: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(root.join(rel)).unwrap()).unwrap()
    };
    fn same<T: serde::de::DeserializeOwned + serde::Serialize>(
        rel: &str,
        json: serde_json::Value,
    ) -> T {
        let typed: T =
            serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(
            serde_json::to_value(&typed).unwrap(),
            json,
            "{rel}: written back differently"
        );
        typed
    }
    let mut tasks = 0;
    for rel in [
        "docs/demo-results/qklab-niah/sweep-s1.json",
        "docs/demo-results/qklab-niah/niah-s1-2048.json",
        "docs/bench-h200-kernels/sweep-0.json",
    ] {
        let r: SweepReport = same(rel, read(rel));
        assert!(
            r.samples.iter().all(|s| s.task == TaskKind::Text(Task::S1)),
            "{rel}: every sample is of s1"
        );
        tasks += r.samples.len() + r.results.len();
    }
    let rel = "docs/bench-h200/sweep-600-cells.json";
    let cells: Vec<qklab::sweep::CellResult> = same(rel, read(rel)["results"].clone());
    tasks += cells.len();
    // Every demo pair whose recording is shipped (tests/demo_results.rs
    // holds a pair to shipping whole).
    for pair in qklab::app::demo::DEMO_PAIRS
        .iter()
        .filter(|p| root.join("www").join(p.dir).exists())
    {
        let rel = format!("www/{}/results.json", pair.dir);
        let recorded: Recorded = same(&rel, read(&rel));
        for task in [Task::S1, Task::Mk] {
            let report = &recorded.niah[&TaskKind::Text(task)];
            assert!(
                report
                    .samples
                    .iter()
                    .all(|s| s.task == TaskKind::Text(task)),
                "{rel}: {task} holds only {task}"
            );
            tasks += report.samples.len();
        }
        assert!(recorded.accuracy(TaskKind::Text(Task::S1), "pre").is_some());
    }
    let _: TuneReport = same(
        "docs/bench-tune/tune-gpu.json",
        read("docs/bench-tune/tune-gpu.json"),
    );
    assert!(tasks > 0);
}
