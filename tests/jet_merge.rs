//! Merging a Jet-Nemotron pair (issue 27): QK-Restore and its kin restore
//! the q/k weights and biases of the full-attention (`attn`) layers only,
//! the sliding-window (`swa`) ones on request, a JetBlock's never. The
//! oracle is byte equality: every restored tensor is pre's, every other
//! one sft's (the pair: NVlabs-made fixture as pre, every tensor moved as
//! sft).

mod common;
use common::{make_sft, merge, ok, open, qklab};

use std::path::{Path, PathBuf};

use qklab::checkpoint::Checkpoint;
use qklab::source::{block_on, FsSource};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jet")
        .join(name)
}

fn bytes(ck: &Checkpoint<FsSource>, name: &str) -> Vec<u8> {
    block_on(ck.read_tensor_bytes(name)).unwrap()
}

fn err(out: std::process::Output) -> String {
    assert!(!out.status.success(), "expected a refusal");
    let e = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!e.contains("panicked"), "{e}");
    e
}

/// q/k weights and biases of `layers`, as a merge restores them.
fn qk(layers: &[usize], projections: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for l in layers {
        for p in projections {
            for leaf in ["weight", "bias"] {
                out.push(format!("model.layers.{l}.self_attn.{p}_proj.{leaf}"));
            }
        }
    }
    out
}

/// Every tensor of the merge at `out` is pre's where `from_pre` names it
/// and sft's elsewhere, byte for byte.
fn assert_taken(pre: &Path, sft: &Path, out: &Path, from_pre: &[String], what: &str) {
    let (pre, sft, merged) = (open_path(pre), open_path(sft), open_path(out));
    assert_eq!(merged.tensors.len(), sft.tensors.len(), "{what}");
    for t in &sft.tensors {
        let want = if from_pre.contains(&t.name) {
            &pre
        } else {
            &sft
        };
        assert!(
            bytes(&merged, &t.name) == bytes(want, &t.name),
            "{what}: {}",
            t.name
        );
    }
}

fn open_path(p: &Path) -> Checkpoint<FsSource> {
    block_on(Checkpoint::open(FsSource::open(p).unwrap())).unwrap()
}

#[test]
fn qk_restore_takes_the_attn_layers_and_the_window_layers_on_request() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in ["f32", "bf16"] {
        let pre = fixture(&format!("jet-{dtype}"));
        let sft = dir.path().join(format!("sft-{dtype}"));
        make_sft(&pre, &sft);

        // Default: layer 2 (attn) only; not the swa layer 4, no JetBlock.
        let out = dir.path().join(format!("qk-{dtype}"));
        ok(merge(&pre, &sft, &out, &[]));
        assert_taken(&pre, &sft, &out, &qk(&[2], &["q", "k"]), "default");

        // The sliding-window layer when named, with a note on its reach.
        let out = dir.path().join(format!("swa-{dtype}"));
        let run = merge(&pre, &sft, &out, &["--layers", "2,4"]);
        let text = String::from_utf8_lossy(&run.stderr).into_owned();
        ok(run);
        assert!(
            text.contains(
                "layer 4 is a sliding-window layer: its queries reach only the last 16 tokens"
            ),
            "{text}"
        );
        assert_taken(&pre, &sft, &out, &qk(&[2, 4], &["q", "k"]), "--layers 2,4");

        // K-Restore: k alone.
        let out = dir.path().join(format!("k-{dtype}"));
        ok(merge(&pre, &sft, &out, &["--method", "k-restore"]));
        assert_taken(&pre, &sft, &out, &qk(&[2], &["k"]), "k-restore");

        // QK-Pro computes layer 2's q_proj; everything outside layer 2's q/k is sft's.
        let out = dir.path().join(format!("pro-{dtype}"));
        ok(merge(&pre, &sft, &out, &["--method", "qk-pro"]));
        let (pre_ck, sft_ck, merged) = (open_path(&pre), open_path(&sft), open_path(&out));
        let touched = qk(&[2], &["q", "k"]);
        for t in &sft_ck.tensors {
            let got = bytes(&merged, &t.name);
            if t.name == "model.layers.2.self_attn.q_proj.weight" {
                assert!(
                    got != bytes(&sft_ck, &t.name) && got != bytes(&pre_ck, &t.name),
                    "QK-Pro's q"
                );
            } else if touched.contains(&t.name) {
                assert!(got == bytes(&pre_ck, &t.name), "qk-pro: {}", t.name);
            } else {
                assert!(got == bytes(&sft_ck, &t.name), "qk-pro: {}", t.name);
            }
        }
    }
}

#[test]
fn a_jetblock_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let pre = fixture("jet-f32");
    let sft = dir.path().join("sft");
    make_sft(&pre, &sft);
    let e = err(merge(&pre, &sft, &dir.path().join("x"), &["--layers", "3"]));
    assert!(
        e.contains("layer 3 is a JetBlock") && e.contains("the softmax layers are [2, 4]"),
        "{e}"
    );
}

#[test]
fn inspect_and_drift_name_the_three_kinds_of_layer() {
    let dir = tempfile::tempdir().unwrap();
    let pre = fixture("jet-f32");
    let text = ok(qklab(&["inspect", pre.to_str().unwrap()]));
    assert!(
        text.contains(
            "layer map: JJSJ WJ  (J JetBlock (4), S softmax (1), W sliding-window softmax (1))"
        ),
        "{text}"
    );
    let sft = dir.path().join("sft");
    make_sft(&pre, &sft);
    let text = ok(qklab(&[
        "drift",
        "--pre",
        pre.to_str().unwrap(),
        "--sft",
        sft.to_str().unwrap(),
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    let layers = report["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 6);
    for l in layers {
        let i = l["index"].as_u64().unwrap();
        assert_eq!(l["softmax"].as_bool().unwrap(), i == 2 || i == 4, "{l}");
        for c in ["q", "k", "v", "o", "mlp"] {
            assert!(l[c].as_f64().unwrap() > 0.0, "layer {i} {c}: {l}");
        }
    }
    // The pair's arch as the page reads it: open() must see both kinds.
    let _ = open("tests/fixtures/jet/jet-bf16");
}
