//! `qklab run` end to end on the demo checkpoint, both backends: the
//! logits file it writes against the golden logits, and the greedy ids
//! against the PyTorch reference's.

mod common;

use common::{ok, qklab};
use qklab::checkpoint::Checkpoint;
use qklab::source::{block_on, FsSource};

fn fixture() -> Checkpoint<FsSource> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/demo/sft.safetensors");
    block_on(Checkpoint::open(FsSource::open(&dir).unwrap())).unwrap()
}

fn ids(ck: &Checkpoint<FsSource>, name: &str) -> Vec<String> {
    let bytes = block_on(ck.read_tensor_bytes(name)).unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]).to_string())
        .collect()
}

#[test]
fn run_writes_golden_logits_and_greedy_ids_on_both_backends() {
    let fx = fixture();
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/www/demo/sft");
    let backends: &[&str] = if common::gpu().is_some() {
        &["cpu", "gpu"]
    } else {
        &["cpu"]
    };
    for backend in backends {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("logits.safetensors");
        let prompt = ids(&fx, "ids_c").join(",");
        let stdout = ok(qklab(&[
            "run",
            demo,
            "--ids",
            &prompt,
            "--max-new",
            "16",
            "--no-stop",
            "--backend",
            backend,
            "--logits-out",
            out.to_str().unwrap(),
        ]));
        let want = ids(&fx, "greedy_c").join(",");
        assert!(
            stdout.contains(&format!("generated ids: {want}\n")),
            "{backend}: {stdout}"
        );

        let got = block_on(Checkpoint::open(FsSource::open(&out).unwrap())).unwrap();
        assert_eq!(got.tensors.len(), 1);
        assert_eq!(got.tensors[0].shape, vec![497, 259]);
        let got = block_on(got.read_tensor_f32("logits", "test")).unwrap();
        let want = block_on(fx.read_tensor_f32("logits_c", "test")).unwrap();
        let scale = want.iter().fold(0.0f32, |s, x| s.max(x.abs()));
        let diff = got
            .iter()
            .zip(&want)
            .fold(0.0f32, |s, (a, b)| s.max((a - b).abs()));
        assert!(diff / scale < 1e-4, "{backend}: {}", diff / scale);
    }
}

#[test]
fn run_explains_bad_requests() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/www/demo/sft");
    let err = |args: &[&str]| {
        let out = qklab(args);
        assert!(!out.status.success());
        String::from_utf8(out.stderr).unwrap()
    };
    assert!(err(&["run", demo, "--ids", "1,2,999", "--backend", "cpu"])
        .contains("token id 999 is outside the vocabulary (259)"));
    assert!(
        err(&["run", demo, "--backend", "cpu"]).contains("give exactly one of --ids and --text")
    );
    assert!(err(&["run", demo, "--ids", "1", "--backend", "tpu"])
        .contains("expected auto, gpu, cpu or reference"));
}

/// Without tokenizer.json a text task is refused with the way out named,
/// and the token-id task runs: every sample's prompt is `id_prompt`'s for
/// its seed, the generated text is ids, and the score says whether the
/// value's ids are in it.
#[test]
fn niah_without_a_tokenizer_runs_the_token_id_task_only() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("tiny");
    ok(qklab(&[
        "synth",
        "--preset",
        "tiny",
        "--seed",
        "3",
        "--out",
        ck.to_str().unwrap(),
    ]));
    let refused = qklab(&[
        "niah",
        ck.to_str().unwrap(),
        "--task",
        "s1",
        "--lengths",
        "512",
        "--samples",
        "1",
        "--backend",
        "cpu",
    ]);
    assert!(!refused.status.success());
    let msg = String::from_utf8_lossy(&refused.stderr);
    assert!(
        msg.contains("no tokenizer.json") && msg.contains("token-id task (ids)"),
        "{msg}"
    );

    let json = dir.path().join("ids.json");
    ok(qklab(&[
        "niah",
        ck.to_str().unwrap(),
        "--task",
        "ids",
        "--lengths",
        "64,100",
        "--depths",
        "0,1",
        "--samples",
        "2",
        "--seed",
        "7",
        "--backend",
        "cpu",
        "--json",
        json.to_str().unwrap(),
    ]));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let samples = report["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 8);
    assert_eq!(report["results"].as_array().unwrap().len(), 4);
    let opened = block_on(Checkpoint::open(FsSource::open(&ck).unwrap())).unwrap();
    let vocab = qklab::config::arch_of(&opened).unwrap().vocab_size as u32;
    for s in samples {
        let (length, depth, seed) = (
            s["length"].as_u64().unwrap() as u32,
            s["depth"].as_f64().unwrap(),
            s["seed"].as_u64().unwrap(),
        );
        let p = qklab::niah::id_prompt(vocab, &opened.special_ids(), length, depth, seed).unwrap();
        assert_eq!(s["task"], "ids");
        assert_eq!(
            s["value"].as_str().unwrap(),
            qklab::niah::ids_text(&p.value)
        );
        let generated = s["generated"].as_str().unwrap();
        assert!(
            generated
                .split_whitespace()
                .all(|t| t.parse::<u32>().is_ok_and(|id| id < vocab)),
            "ids as text: {generated}"
        );
        assert_eq!(
            s["score"].as_f64().unwrap(),
            if generated.contains(s["value"].as_str().unwrap()) {
                1.0
            } else {
                0.0
            }
        );
    }
}

/// `qklab routing` on the token-id task needs no tokenizer: the needle it
/// reports is `id_prompt`'s, and every head's distance is positive.
#[test]
fn routing_runs_on_the_token_id_task_without_a_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("tiny");
    ok(qklab(&[
        "synth",
        "--preset",
        "tiny",
        "--seed",
        "4",
        "--out",
        ck.to_str().unwrap(),
    ]));
    let json = dir.path().join("routing.json");
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(qklab(&["inspect", ck.to_str().unwrap(), "--json"]))).unwrap();
    let layer = inspect["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["mixer"] == "attn")
        .unwrap()["index"]
        .to_string();
    ok(qklab(&[
        "routing",
        ck.to_str().unwrap(),
        "--task",
        "ids",
        "--length",
        "80",
        "--depth",
        "0.5",
        "--prompt-seed",
        "9",
        "--layer",
        &layer,
        "--block",
        "8",
        "--backend",
        "cpu",
        "--json",
        json.to_str().unwrap(),
    ]));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let opened = block_on(Checkpoint::open(FsSource::open(&ck).unwrap())).unwrap();
    let vocab = qklab::config::arch_of(&opened).unwrap().vocab_size as u32;
    let p = qklab::niah::id_prompt(vocab, &opened.special_ids(), 80, 0.5, 9).unwrap();
    let model = &report["models"][0];
    assert_eq!(model["tokens"].as_u64().unwrap() as usize, p.ids.len());
    assert_eq!(
        model["needle_tokens"],
        serde_json::json!([p.needle.start, p.needle.end])
    );
    assert_eq!(
        report["prompt"]["value"].as_str().unwrap(),
        qklab::niah::ids_text(&p.value)
    );
    for l in model["layers"].as_array().unwrap() {
        assert!(
            l["mean_distance"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d.as_f64().unwrap() > 0.0),
            "{l}"
        );
    }
}

/// `--backend auto` (the default) takes the GPU wgpu finds when it is a
/// real one, and the CPU engine where it is a CPU emulation (llvmpipe
/// here) or there is none, saying why. Whichever this machine has is
/// checked, and named on stderr (`--nocapture` shows it).
#[test]
fn auto_backend_takes_a_real_gpu_and_the_cpu_engine_otherwise() {
    let gpu = common::gpu();
    let out = qklab(&[
        "run",
        "www/demo/pre",
        "--ids",
        "256,72,105",
        "--max-new",
        "2",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let checked = match &gpu {
        Some(gpu) if gpu.is_cpu_emulation() => {
            assert!(
                err.contains("loaded on CPU engine") && err.contains("is emulated on the CPU"),
                "{err}"
            );
            format!(
                "{}, a CPU emulation: auto took the CPU engine",
                gpu.describe()
            )
        }
        Some(gpu) => {
            assert!(
                err.contains(&format!("loaded on {} in ", gpu.describe())),
                "auto should load on {}: {err}",
                gpu.describe()
            );
            assert!(!err.contains("CPU engine"), "{err}");
            format!("{}, a real GPU: auto took it", gpu.describe())
        }
        None => {
            assert!(
                err.contains("loaded on CPU engine") && err.contains("(no GPU here: "),
                "{err}"
            );
            "no GPU: auto took the CPU engine".to_string()
        }
    };
    eprintln!("checked --backend auto on {checked}");
}

/// A sweep's results do not depend on how many prompts run together.
#[test]
fn niah_results_do_not_depend_on_the_batch_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut reports = Vec::new();
    for batch in ["1", "3", "10"] {
        let json = dir.path().join(format!("b{batch}.json"));
        ok(qklab(&[
            "niah",
            "www/demo/sft",
            "--task",
            "s1",
            "--lengths",
            "400,700",
            "--depths",
            "0,0.5,1",
            "--samples",
            "2",
            "--backend",
            "cpu",
            "--batch",
            batch,
            "--json",
            json.to_str().unwrap(),
        ]));
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        reports.push(report["samples"].clone());
    }
    assert_eq!(reports[0].as_array().unwrap().len(), 12);
    assert_eq!(reports[0], reports[1], "batch 1 vs 3");
    assert_eq!(reports[0], reports[2], "batch 1 vs 10");
}

/// A GPU that fails under `qklab run` and `qklab niah` (QKLAB_FAULT
/// destroys the device after loading, as a driver reset would) is a
/// message and exit status 1, never a panic.
#[test]
fn a_lost_gpu_is_a_message_and_exit_status_1() {
    if common::gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("niah.json");
    for args in [
        vec![
            "run",
            "www/demo/pre",
            "--ids",
            "256,72,105",
            "--max-new",
            "3",
            "--backend",
            "gpu",
        ],
        vec![
            "niah",
            "www/demo/pre",
            "--task",
            "s1",
            "--lengths",
            "512",
            "--depths",
            "0",
            "--samples",
            "1",
            "--backend",
            "gpu",
            "--json",
            json.to_str().unwrap(),
        ],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_qklab"))
            .args(&args)
            .env("QKLAB_FAULT", "device-lost")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("the GPU device was lost") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}
