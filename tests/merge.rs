//! `qklab merge` against an independent numpy oracle (tests/merge_oracle.py)
//! on random HypeNet-shaped pairs, every method, three dtypes, 1 and 3
//! shards; plus the refusal of incompatible pairs and recipe replay.
//!
//! Python comes from QKLAB_PYTHON (else `python3`) with safetensors, numpy
//! and ml_dtypes; without them the oracle test skips, unless
//! QKLAB_REQUIRE_PYTHON=1 (set by `cargo xtask test`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ok, python, qklab};

/// A pre/sft pair of the tiny preset (awkward sizes) with different weights.
fn pair(dir: &Path, dtype: &str, shards: usize) -> (PathBuf, PathBuf) {
    let (pre, sft) = (
        dir.join(format!("pre-{dtype}-{shards}")),
        dir.join(format!("sft-{dtype}-{shards}")),
    );
    for (path, seed) in [(&pre, "11"), (&sft, "22")] {
        let shards = shards.to_string();
        ok(qklab(&[
            "synth",
            "--preset",
            "tiny",
            "--dtype",
            dtype,
            "--shards",
            &shards,
            "--seed",
            seed,
            "--out",
            path.to_str().unwrap(),
        ]));
    }
    (pre, sft)
}

#[test]
fn every_method_matches_the_numpy_oracle() {
    let Some(py) = python() else { return };
    let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/merge_oracle.py");
    let dir = tempfile::tempdir().unwrap();
    let specs: Vec<(&[&str], serde_json::Value)> = vec![
        (
            &["--method", "qk-restore"],
            serde_json::json!({"method": "qk-restore"}),
        ),
        (
            &["--method", "q-restore"],
            serde_json::json!({"method": "q-restore"}),
        ),
        (
            &["--method", "k-restore", "--layers", "3"],
            serde_json::json!({"method": "k-restore", "layers": [3]}),
        ),
        (
            &["--method", "v-restore", "--include-norms"],
            serde_json::json!({"method": "v-restore", "include_norms": true}),
        ),
        (
            &[
                "--method",
                "qk-restore",
                "--alpha",
                "0.3",
                "--include-norms",
            ],
            serde_json::json!({"method": "qk-restore", "alpha": 0.3, "include_norms": true}),
        ),
        (
            &["--method", "qk-pro"],
            serde_json::json!({"method": "qk-pro"}),
        ),
        (
            &["--method", "qk-pro", "--beta", "0.5", "--layers", "1"],
            serde_json::json!({"method": "qk-pro", "beta": 0.5, "layers": [1]}),
        ),
    ];
    let mut runs = 0;
    for dtype in ["bf16", "f16", "f32"] {
        for shards in [1, 3] {
            let (pre, sft) = pair(dir.path(), dtype, shards);
            for (i, (args, spec)) in specs.iter().enumerate() {
                let out = dir.path().join(format!("out-{dtype}-{shards}-{i}"));
                ok(common::merge(&pre, &sft, &out, args));
                let res = Command::new(&py)
                    .arg(&oracle)
                    .args([
                        pre.to_str().unwrap(),
                        sft.to_str().unwrap(),
                        out.to_str().unwrap(),
                        &spec.to_string(),
                    ])
                    .output()
                    .unwrap();
                assert!(
                    res.status.success(),
                    "{dtype}, {shards} shard(s), {spec}: {}",
                    String::from_utf8_lossy(&res.stderr)
                );
                let summary: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
                assert!(
                    !summary["changed"].as_array().unwrap().is_empty(),
                    "{spec}: the oracle expected no change"
                );
                runs += 1;
            }
        }
    }
    assert_eq!(runs, 42);
}

#[test]
fn drift_matches_the_numpy_oracle() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (pre, sft) = pair(dir.path(), "bf16", 3);
    let report = dir.path().join("drift.json");
    let json = ok(qklab(&[
        "drift",
        "--pre",
        pre.to_str().unwrap(),
        "--sft",
        sft.to_str().unwrap(),
        "--json",
    ]));
    std::fs::write(&report, &json).unwrap();
    let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/merge_oracle.py");
    let res = Command::new(&py)
        .arg(&oracle)
        .args([
            "drift",
            pre.to_str().unwrap(),
            sft.to_str().unwrap(),
            report.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    // Identical checkpoints drift by exactly zero everywhere.
    let same: serde_json::Value = serde_json::from_str(&ok(qklab(&[
        "drift",
        "--pre",
        sft.to_str().unwrap(),
        "--sft",
        sft.to_str().unwrap(),
        "--json",
    ])))
    .unwrap();
    assert!(same["layers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| ["q", "k", "v", "o", "gate", "mlp"]
            .iter()
            .all(|c| l[c] == 0.0)));
}

#[test]
fn a_hostile_pair_gets_one_message_listing_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let (pre, sft) = pair(dir.path(), "bf16", 1);
    // Rebuild pre with three faults: a shape, a missing tensor, a dtype.
    let bytes = std::fs::read(pre.join("model.safetensors")).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let data = &bytes[8 + len..];
    let mut tensors: Vec<(String, serde_json::Value)> = header
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    tensors.sort_by_key(|(_, v)| v["data_offsets"][0].as_u64().unwrap());
    let mut new_data = Vec::new();
    header.clear();
    for (name, v) in tensors {
        let (b, e) = (
            v["data_offsets"][0].as_u64().unwrap() as usize,
            v["data_offsets"][1].as_u64().unwrap() as usize,
        );
        let mut chunk = data[b..e].to_vec();
        let mut v = v.clone();
        match name.as_str() {
            "model.layers.2.mlp.up_proj.weight" => continue, // missing
            "model.layers.1.self_attn.v_proj.weight" => v["shape"] = serde_json::json!([10, 40]), // was [20, 40]
            "model.layers.0.input_layernorm.weight" => {
                v["dtype"] = serde_json::json!("F32");
                chunk = chunk.chunks(2).flat_map(|c| [0, 0, c[0], c[1]]).collect();
            }
            _ => {}
        }
        if name == "model.layers.1.self_attn.v_proj.weight" {
            chunk.truncate(chunk.len() / 2);
        }
        let start = new_data.len();
        new_data.extend_from_slice(&chunk);
        v["data_offsets"] = serde_json::json!([start, new_data.len()]);
        header.insert(name, v);
    }
    let json = serde_json::to_vec(&header).unwrap();
    let mut file = (json.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&json);
    file.extend_from_slice(&new_data);
    std::fs::write(pre.join("model.safetensors"), file).unwrap();

    let out = qklab(&[
        "merge",
        "--pre",
        pre.to_str().unwrap(),
        "--sft",
        sft.to_str().unwrap(),
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot be merged"), "{err}");
    assert!(
        err.contains("model.layers.2.mlp.up_proj.weight is in sft but missing from pre"),
        "{err}"
    );
    assert!(
        err.contains(
            "model.layers.1.self_attn.v_proj.weight: shape [10, 40] in pre, [20, 40] in sft"
        ),
        "{err}"
    );
    assert!(
        err.contains("model.layers.0.input_layernorm.weight: dtype F32 in pre, BF16 in sft"),
        "{err}"
    );
    assert!(
        !dir.path().join("o").exists(),
        "nothing is written for a refused pair"
    );
}

#[test]
fn a_recipe_replays_the_same_bytes_and_refuses_other_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (pre, sft) = pair(dir.path(), "bf16", 3);
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let recipe = dir.path().join("r.json");
    let args = |out: &Path| {
        vec![
            "merge".to_string(),
            "--pre".into(),
            pre.display().to_string(),
            "--sft".into(),
            sft.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ]
    };
    let mut first = args(&a);
    first.extend(
        [
            "--method",
            "qk-pro",
            "--beta",
            "0.7",
            "--layers",
            "3",
            "--recipe-out",
            recipe.to_str().unwrap(),
        ]
        .map(String::from),
    );
    ok(qklab(&first.iter().map(String::as_str).collect::<Vec<_>>()));
    let mut again = args(&b);
    again.extend(["--recipe".to_string(), recipe.display().to_string()]);
    ok(qklab(&again.iter().map(String::as_str).collect::<Vec<_>>()));
    for f in std::fs::read_dir(&a).unwrap() {
        let name = f.unwrap().file_name();
        assert_eq!(
            std::fs::read(a.join(&name)).unwrap(),
            std::fs::read(b.join(&name)).unwrap(),
            "{name:?}"
        );
    }
    // The recipe is also in every shard's metadata and in the folder.
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("qklab-recipe.json")).unwrap()).unwrap();
    assert_eq!(
        (
            r["method"].as_str(),
            r["beta"].as_f64(),
            r["layers"].clone()
        ),
        (Some("qk-pro"), Some(0.7), serde_json::json!([3]))
    );
    // Swapping pre and sft is caught by the fingerprints.
    let swapped = [
        "merge",
        "--pre",
        sft.to_str().unwrap(),
        "--sft",
        pre.to_str().unwrap(),
        "--recipe",
        recipe.to_str().unwrap(),
        "--out",
        c.to_str().unwrap(),
    ];
    let out = qklab(&swapped);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("recipe does not match"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn copy_only_merge_reads_only_headers_and_fingerprint_samples() {
    // Nothing is decoded: the merge finishes without reading tensor data
    // beyond the fingerprints, so even a sparse 2B-shaped pair merges at once.
    let dir = tempfile::tempdir().unwrap();
    let (pre, sft, out) = (
        dir.path().join("pre"),
        dir.path().join("sft"),
        dir.path().join("out"),
    );
    for p in [&pre, &sft] {
        ok(qklab(&[
            "synth",
            "--preset",
            "2b",
            "--shards",
            "2",
            "--sparse",
            "--out",
            p.to_str().unwrap(),
        ]));
    }
    let text = ok(qklab(&[
        "merge",
        "--pre",
        pre.to_str().unwrap(),
        "--sft",
        sft.to_str().unwrap(),
        "--layers",
        "2,25",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(text.contains("nothing decoded"), "{text}");
    let bad = qklab(&[
        "merge",
        "--pre",
        pre.to_str().unwrap(),
        "--sft",
        sft.to_str().unwrap(),
        "--layers",
        "4",
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("layer 4 is a Lightning layer: qk-restore restores")
            && err.contains("the softmax layers are [2, 3, 6, 8, 9, 21, 25]"),
        "{err}"
    );
}
