//! `qklab tune` on the demo pair: swapping a candidate's tensors into a
//! loaded sft computes exactly what loading the merged checkpoint does
//! (CPU engine and GPU); the front and the recommendation hold by their
//! rules over the full table; two front points re-checked through `qklab
//! merge`, `qklab niah` and `qklab answers` give the same numbers; the
//! demo's arithmetic answers are the reference's.

mod common;

use std::path::{Path, PathBuf};

use qklab::app::merge::plan_sources;
use qklab::app::model::OpenModel;
use qklab::app::tune::Swapper;
use qklab::checkpoint::Checkpoint;
use qklab::merge::plan::plan_merge;
use qklab::merge::{MergeSpec, Method};
use qklab::model::engine::Logits;
use qklab::model::engine::{Device, Engine};
use qklab::model::fit::EngineOptions;
use qklab::source::{block_on, FsSource};
use qklab::tune::front::{dominates, within, Measure, Point, Tolerance};
use qklab::tune::grid::Candidate;
use qklab::writer::write_to_dir;
use serde_json::Value;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn open_model(name: &str, rel: &str) -> OpenModel<FsSource> {
    block_on(OpenModel::open(name, FsSource::open(&repo(rel)).unwrap())).unwrap()
}

fn logits(engine: &Engine, ids: &[u32]) -> Vec<u32> {
    let mut s = engine.session(false);
    block_on(engine.prefill(&mut s, ids, Logits::All))
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

fn candidate(method: Method, beta: f32, layers: &[usize]) -> Candidate {
    Candidate {
        spec: Some(MergeSpec {
            beta,
            layers: Some(layers.to_vec()),
            ..MergeSpec::new(method)
        }),
    }
}

#[test]
fn a_swapped_candidate_computes_exactly_what_its_merged_checkpoint_does() {
    let (pre, sft) = (
        open_model("pre", "www/demo/pre"),
        open_model("sft", "www/demo/sft"),
    );
    let ids = sft
        .tokenizer
        .as_ref()
        .unwrap()
        .encode("Q: 7+5-3=?\nA: The special magic number for quiet-harbor is 4967600. What is it?")
        .unwrap();
    // Computed bytes (QK-Pro), then copies on one layer (the other goes
    // back to sft's), sft itself, and V-Restore after K-Restore.
    let order = [
        candidate(Method::QkPro, 0.5, &[3, 6]),
        candidate(Method::QkRestore, 1.0, &[6]),
        Candidate { spec: None },
        candidate(Method::KRestore, 1.0, &[3]),
        candidate(Method::VRestore, 1.0, &[3, 6]),
    ];
    let gpu = common::gpu();
    let mut devices = vec![Device::Cpu];
    if let Some(g) = gpu.as_ref() {
        devices.push(Device::Gpu(g));
    }
    let dir = tempfile::tempdir().unwrap();
    for (d, device) in devices.into_iter().enumerate() {
        let load = |ck: &Checkpoint<FsSource>| {
            let opts = EngineOptions {
                max_context: 256,
                ..Default::default()
            };
            block_on(Engine::load(
                device,
                ck,
                sft.arch.clone(),
                opts,
                &mut |_| {},
            ))
            .unwrap()
        };
        let mut engine = load(&sft.ck);
        let plain = logits(&engine, &ids);
        let mut swapper = Swapper::new(&pre, &sft);
        for (i, c) in order.iter().enumerate() {
            let (changed, _) = block_on(swapper.swap(&mut engine, c)).unwrap();
            let swapped = logits(&engine, &ids);
            let Some(spec) = &c.spec else {
                assert_eq!(swapped, plain, "{}: back to sft", c.label());
                continue;
            };
            let out = dir.path().join(format!("{d}-{i}"));
            let merge = block_on(plan_merge(&pre.ck, &sft.ck, spec)).unwrap();
            assert_eq!(merge.changed, changed);
            block_on(write_to_dir(
                &merge.plan,
                &plan_sources(&pre.ck, &sft.ck),
                &out,
                |_, _| {},
            ))
            .unwrap();
            let merged = block_on(Checkpoint::open(FsSource::open(&out).unwrap())).unwrap();
            let reloaded = logits(&load(&merged), &ids);
            assert_eq!(
                swapped,
                reloaded,
                "{} on {}: swapped logits differ from the merged checkpoint's",
                c.label(),
                engine.backend()
            );
            assert_ne!(
                swapped,
                plain,
                "{}: the merge changes the logits",
                c.label()
            );
        }
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

fn point(c: &Value) -> Point {
    Point {
        recall: f(&c["recall"]),
        retention: f(&c["retention"]),
        kl: f(&c["kl"]),
    }
}

/// The sweep and grid of the tune below (small enough for CI's 2 cores).
const SWEEP: [&str; 10] = [
    "--task",
    "s1",
    "--lengths",
    "2048",
    "--depths",
    "0,0.5,1",
    "--samples",
    "2",
    "--seed",
    "4242",
];

#[test]
fn the_demo_front_holds_by_its_rules_and_two_points_recheck_through_merge_niah_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("tune.json");
    let (pre, sft, answers) = (
        repo("www/demo/pre"),
        repo("www/demo/sft"),
        repo("www/demo/arithmetic.jsonl"),
    );
    let p = |x: &Path| x.display().to_string();
    let mut args = vec!["tune", "--pre", &p(&pre), "--sft", &p(&sft)]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    args.extend(SWEEP.iter().map(|s| s.to_string()));
    for a in [
        "--methods",
        "qk-restore,qk-pro",
        "--betas",
        "0.5",
        "--layer-sets",
        "all,each",
        "--backend",
        "cpu",
        "--answers",
    ] {
        args.push(a.into());
    }
    args.extend([p(&answers), "--json".into(), p(&json)]);
    let text = common::ok(common::qklab(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    println!("{text}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let cands = report["candidates"].as_array().unwrap();
    assert_eq!(
        cands.len(),
        1 + 3 * 2,
        "sft + 3 layer sets x (qk-restore, qk-pro 0.5)"
    );
    let points: Vec<Point> = cands.iter().map(point).collect();
    let front: Vec<usize> = report["front"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap() as usize)
        .collect();
    for (i, q) in points.iter().enumerate() {
        let dominated_by = points.iter().position(|o| dominates(o, q));
        match (front.contains(&i), dominated_by) {
            (true, Some(j)) => panic!("front point {i} is dominated by {j}"),
            (false, None) => panic!("candidate {i} is on no front yet nothing dominates it"),
            _ => {}
        }
    }
    // The recommendation: most recall within 1 point of sft's exact match.
    let rec = report["recommended"].as_u64().unwrap() as usize;
    let tol = Tolerance::default();
    assert_eq!(cands[0]["method"], "sft");
    assert!(rec == 0 || within(&points[rec], &points[0], Measure::Answers, tol));
    for (i, q) in points.iter().enumerate() {
        if within(q, &points[0], Measure::Answers, tol) {
            assert!(
                q.recall <= points[rec].recall,
                "candidate {i} has more recall within the tolerance than the recommendation"
            );
        }
    }
    // The effect the tune exists for: some merge wins recall back.
    assert!(
        points.iter().any(|q| q.recall > points[0].recall + 20.0),
        "no candidate repairs recall: {points:?}"
    );

    // Two merges of the front, each merged, swept and scored on its own.
    let merges: Vec<usize> = front
        .iter()
        .copied()
        .filter(|&i| cands[i]["spec"].is_object())
        .take(2)
        .collect();
    assert_eq!(merges.len(), 2, "the front holds two merges: {front:?}");
    for i in merges {
        let c = &cands[i];
        let out = dir.path().join(format!("merge-{i}"));
        let spec = &c["spec"];
        let layers: Vec<String> = c["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.to_string())
            .collect();
        let mut merge = vec![
            "merge".to_string(),
            "--pre".into(),
            p(&pre),
            "--sft".into(),
            p(&sft),
            "--method".into(),
            spec["method"].as_str().unwrap().into(),
        ];
        merge.extend(["--layers".into(), layers.join(","), "--out".into(), p(&out)]);
        if spec["method"] == "qk-pro" {
            merge.extend(["--beta".into(), spec["beta"].to_string()]);
        }
        common::ok(common::qklab(
            &merge.iter().map(String::as_str).collect::<Vec<_>>(),
        ));

        let niah_json = dir.path().join(format!("niah-{i}.json"));
        let mut niah = vec![
            "niah".to_string(),
            p(&out),
            "--backend".into(),
            "cpu".into(),
            "--json".into(),
            p(&niah_json),
        ];
        niah.extend(SWEEP.iter().map(|s| s.to_string()));
        common::ok(common::qklab(
            &niah.iter().map(String::as_str).collect::<Vec<_>>(),
        ));
        let swept: Value = serde_json::from_slice(&std::fs::read(&niah_json).unwrap()).unwrap();
        let scores = |v: &Value| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["seed"].as_u64().unwrap(),
                        s["depth"].as_f64().unwrap().to_bits(),
                        f(&s["score"]),
                    )
                })
                .collect::<Vec<_>>()
        };
        let (mut a, mut b) = (scores(&swept["samples"]), scores(&c["samples"]));
        a.sort_by(|x, y| x.partial_cmp(y).unwrap());
        b.sort_by(|x, y| x.partial_cmp(y).unwrap());
        assert_eq!(
            a, b,
            "{}: NIAH samples differ between the tune and qklab niah",
            c["label"]
        );

        let ans_json = dir.path().join(format!("answers-{i}.json"));
        common::ok(common::qklab(&[
            "answers",
            &p(&out),
            "--answers",
            &p(&answers),
            "--backend",
            "cpu",
            "--json",
            &p(&ans_json),
        ]));
        let scored: Value = serde_json::from_slice(&std::fs::read(&ans_json).unwrap()).unwrap();
        assert_eq!(
            scored["answers"], c["answers"],
            "{}: per-answer matches differ (greedy vs the tune's teacher-forced score)",
            c["label"]
        );
        assert_eq!(f(&scored["exact"]), f(&c["exact"]));
    }
}

/// The arithmetic answers shipped with the demo are what the reference
/// writes, and each is the left-to-right working of its question.
#[test]
fn the_demo_arithmetic_answers_are_the_references() {
    let shipped = std::fs::read_to_string(repo("www/demo/arithmetic.jsonl")).unwrap();
    let items = qklab::tune::retention::parse_answers(&shipped).unwrap();
    assert_eq!(items.len(), 300);
    for a in &items {
        let expr = a
            .prompt
            .strip_prefix("Q: ")
            .and_then(|q| q.strip_suffix("=?\nA:"))
            .unwrap_or_else(|| panic!("{:?}", a.prompt));
        let mut value: i64 = expr[..1].parse().unwrap();
        let mut steps = Vec::new();
        for (op, d) in expr[1..]
            .chars()
            .step_by(2)
            .zip(expr[2..].chars().step_by(2))
        {
            let d = d.to_digit(10).unwrap() as i64;
            let next = match op {
                '+' => value + d,
                '-' => value - d,
                'x' => value * d,
                other => panic!("operator {other}"),
            };
            steps.push(format!("{value}{op}{d}={next}."));
            value = next;
        }
        assert_eq!(
            a.answer,
            format!(" {} So the answer is {value}.", steps.join(" "))
        );
    }
    let Some(py) = common::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("arith.jsonl");
    let run = std::process::Command::new(py)
        .arg(repo("reference/data.py"))
        .args(["arith-jsonl", "300"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        shipped,
        "www/demo/arithmetic.jsonl differs from `python3 reference/data.py arith-jsonl 300`"
    );
}
