//! Configs that lie, and weights that break: each case is the demo's
//! valid checkpoint with one thing changed, and every backend must end it
//! with its own clear error (exit 1, no panic, no abort, no NaN printed as
//! tokens).
//!
//! The edited configs live under tests/hostile/config/; this test checks
//! they are current. To regenerate them after a change:
//!     QKLAB_REGENERATE=1 cargo test --test hostile_config

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("www/demo/pre")
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile/config")
}

/// (case, the field changed and its new value, what the error must say)
fn cases() -> Vec<(&'static str, &'static str, Value, &'static str)> {
    vec![
        (
            "vocab-999",
            "vocab_size",
            json!(999),
            "vocab_size is 999, larger than any tensor dimension (the largest is 512)",
        ),
        (
            "vocab-300",
            "vocab_size",
            json!(300),
            "tensor model.embed_tokens.weight has shape [259, 192], expected [300, 192]",
        ),
        (
            "vocab-4e9",
            "vocab_size",
            json!(4_000_000_000u64),
            "vocab_size is 4000000000, larger than any tensor dimension",
        ),
        (
            "intermediate-1e13",
            "intermediate_size",
            json!(10_000_000_000_000u64),
            "intermediate_size is 10000000000000, larger than any tensor dimension",
        ),
        (
            "layers-1e12",
            "num_hidden_layers",
            json!(1_000_000_000_000u64),
            "num_hidden_layers is 1000000000000, but the tensors hold 8 layers",
        ),
        (
            "rope-theta-0",
            "rope_theta",
            json!(0.0),
            "rope_theta is 0; it must be a finite number above 0",
        ),
        (
            "eps-negative",
            "rms_norm_eps",
            json!(-1.0),
            "rms_norm_eps is -1; it must be a finite number above 0",
        ),
        (
            "eos-string",
            "eos_token_id",
            json!("x"),
            "eos_token_id \"x\" is not a token id",
        ),
        (
            "bos-outside",
            "bos_token_id",
            json!(100000),
            "bos_token_id 100000 is outside the vocabulary (259 tokens)",
        ),
        (
            "scale-negative",
            "attn_logits_scaling",
            json!(-2.0),
            "attn_logits_scaling is -2; it must be a finite number above 0",
        ),
    ]
}

fn config_of(field: &str, value: &Value) -> String {
    let text = std::fs::read_to_string(demo().join("config.json")).unwrap();
    let mut config: Value = serde_json::from_str(&text).unwrap();
    config[field] = value.clone();
    serde_json::to_string_pretty(&config).unwrap() + "\n"
}

#[test]
fn corpus_configs_are_current() {
    let regenerate = std::env::var("QKLAB_REGENERATE").as_deref() == Ok("1");
    for (case, field, value, _) in cases() {
        let path = corpus_dir().join(format!("{case}.json"));
        let want = config_of(field, &value);
        if regenerate {
            std::fs::create_dir_all(corpus_dir()).unwrap();
            std::fs::write(&path, &want).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run QKLAB_REGENERATE=1 cargo test --test hostile_config",
                path.display()
            )
        });
        assert_eq!(
            on_disk, want,
            "{case} is stale; run QKLAB_REGENERATE=1 cargo test --test hostile_config"
        );
    }
}

/// A checkpoint folder: `config` beside the demo's weights (or `weights`).
fn checkpoint(dir: &Path, config: &str, weights: Option<&[u8]>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), config).unwrap();
    match weights {
        Some(bytes) => std::fs::write(dir.join("model.safetensors"), bytes).unwrap(),
        None => {
            std::fs::copy(
                demo().join("model.safetensors"),
                dir.join("model.safetensors"),
            )
            .unwrap();
        }
    }
    std::fs::copy(demo().join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    dir.to_path_buf()
}

/// `qklab run` on `ckpt` with `backend`: its exit code and stderr.
fn run(ckpt: &Path, backend: &str) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_qklab"))
        .args([
            "run",
            "--ids",
            "256,72,105",
            "--max-new",
            "4",
            "--no-stop",
            "--backend",
            backend,
        ])
        .arg(ckpt)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether `stderr` says this machine has no GPU for `--backend gpu`.
fn no_gpu(stderr: &str) -> bool {
    stderr.contains("no GPU") || stderr.contains("no adapter")
}

#[test]
fn every_lying_config_gets_its_own_error_on_every_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let mut gpu_checked = 0;
    for (case, _, _, expected) in cases() {
        let config = std::fs::read_to_string(corpus_dir().join(format!("{case}.json"))).unwrap();
        let ckpt = checkpoint(&tmp.path().join(case), &config, None);
        for backend in ["cpu", "reference", "gpu"] {
            let (code, stderr) = run(&ckpt, backend);
            assert!(
                !stderr.contains("panicked"),
                "{case} on {backend}: panicked: {stderr}"
            );
            assert_eq!(code, Some(1), "{case} on {backend}: exit {code:?} (a panic exits 101, an abort has none): {stderr}");
            if backend == "gpu" && no_gpu(&stderr) {
                continue;
            }
            gpu_checked += usize::from(backend == "gpu");
            assert!(
                stderr.contains(expected),
                "{case} on {backend}: expected {expected:?} in {stderr:?}"
            );
        }
    }
    eprintln!(
        "checked {} cases on cpu and reference, {gpu_checked} on the GPU",
        cases().len()
    );
}

/// The demo's weights with every value of `tensor` set to bf16 infinity.
fn with_infinite(tensor: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(demo().join("model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let entry = &header[tensor];
    assert_eq!(entry["dtype"], "BF16", "{tensor} is not bf16 in the demo");
    let [start, end] =
        [0, 1].map(|i| entry["data_offsets"][i].as_u64().unwrap() as usize + 8 + header_len);
    for v in bytes[start..end].chunks_mut(2) {
        v.copy_from_slice(&0x7f80u16.to_le_bytes());
    }
    bytes
}

#[test]
fn weights_that_turn_to_nan_stop_the_run_and_name_the_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(demo().join("config.json")).unwrap();
    let ckpt = checkpoint(
        &tmp.path().join("inf-norm"),
        &config,
        Some(&with_infinite(
            "model.layers.2.post_attention_layernorm.weight",
        )),
    );
    for backend in ["cpu", "reference", "gpu"] {
        let (code, stderr) = run(&ckpt, backend);
        assert!(
            !stderr.contains("panicked"),
            "{backend}: panicked: {stderr}"
        );
        assert_eq!(code, Some(1), "{backend}: exit {code:?}: {stderr}");
        if backend == "gpu" && no_gpu(&stderr) {
            eprintln!("no GPU here: the GPU's NaN watch was not run");
            continue;
        }
        let expected = if backend == "gpu" {
            "the model produced NaN/inf in its logits on the GPU"
        } else {
            "the model produced NaN/inf at layer 2 (Lightning)"
        };
        assert!(
            stderr.contains(expected),
            "{backend}: expected {expected:?} in {stderr:?}"
        );
    }
}
