//! Merging Qwen3.5 (issue 26, SPEC-gdn "What a merge means here"): an
//! "SFT" copy of each f32 fixture with every tensor moved (written by the
//! crate's writer), merged by the CLI, and every output tensor checked
//! byte for byte against the rule read off the spec: the query rows of
//! the softmax layers' q_proj and all of k_proj from pre, the gate rows
//! and everything else (the vision tower included) from sft. Also the
//! refusals, drift's "q gate" column and `inspect` on the wrapper.
//! reference/qwen35_fixtures.py --merge-pair checks the same merge's
//! logits in transformers.

mod common;

use std::path::{Path, PathBuf};

use common::{make_sft, merge, ok, qklab};
use qklab::checkpoint::Checkpoint;
use qklab::safetensors::{encode_header, parse_header, parse_header_len};
use qklab::source::{block_on, FsSource};

const HEAD_DIM: usize = 16;
const HIDDEN: usize = 32;
const SOFTMAX: [usize; 2] = [3, 7];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/qwen35/{name}"))
}

fn ck(path: &Path) -> Checkpoint<FsSource> {
    block_on(Checkpoint::open(FsSource::open(path).unwrap())).unwrap()
}

fn bytes(ck: &Checkpoint<FsSource>, name: &str) -> Vec<u8> {
    block_on(ck.read_tensor_bytes(name)).unwrap()
}

/// `q_proj` rows by origin: per head, the query rows from `query`, the gate rows from `gate`.
fn spliced_q(query: &[u8], gate: &[u8]) -> Vec<u8> {
    let head = 2 * HEAD_DIM * HIDDEN * 4;
    let half = head / 2;
    let mut out = gate.to_vec();
    for h in 0..out.len() / head {
        out[h * head..h * head + half].copy_from_slice(&query[h * head..h * head + half]);
    }
    out
}

fn err(out: std::process::Output) -> String {
    assert!(!out.status.success(), "expected a refusal");
    let e = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!e.contains("panicked"), "{e}");
    e
}

#[test]
fn qk_restore_takes_query_rows_and_k_and_keeps_gate_rows_and_vision() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["qwen35-text-f32", "qwen35-vl-f32"] {
        let (pre_path, sft_path) = (fixture(name), dir.path().join(format!("{name}-sft")));
        make_sft(&pre_path, &sft_path);
        let root = if name.contains("vl") {
            "model.language_model.layers."
        } else {
            "model.layers."
        };
        let q = |l: usize| format!("{root}{l}.self_attn.q_proj.weight");
        let k = |l: usize| format!("{root}{l}.self_attn.k_proj.weight");
        let norm = |l: usize, x: &str| format!("{root}{l}.self_attn.{x}_norm.weight");
        let (pre, sft) = (ck(&pre_path), ck(&sft_path));

        // Default: query rows and k_proj of every softmax layer.
        let out = dir.path().join(format!("{name}-qk"));
        let text = ok(merge(&pre_path, &sft_path, &out, &[]));
        assert!(
            text.contains("rows 0..16, 32..48, 64..80, 96..112"),
            "{text}"
        );
        let merged = ck(&out);
        assert_eq!(merged.tensors.len(), sft.tensors.len());
        let mut vision = 0;
        for t in &sft.tensors {
            let got = bytes(&merged, &t.name);
            let want = match SOFTMAX.iter().find(|&&l| t.name == q(l) || t.name == k(l)) {
                Some(&l) if t.name == q(l) => spliced_q(&bytes(&pre, &q(l)), &bytes(&sft, &q(l))),
                Some(_) => bytes(&pre, &t.name),
                None => bytes(&sft, &t.name),
            };
            assert!(
                got == want,
                "{name}: {} is not what QK-Restore gives",
                t.name
            );
            vision += t.name.starts_with("model.visual.") as usize;
        }
        assert_eq!(vision > 0, name.contains("vl"));
        // The provenance names the rows.
        let meta = &merged.shards[0].header.metadata["qklab.provenance"];
        let prov: serde_json::Value = serde_json::from_str(meta).unwrap();
        let restored: Vec<&str> = prov["params"]["restored"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(restored.len(), 4, "{restored:?}");
        assert!(restored[0].starts_with(&format!("{} rows 0..16, 32..48", q(3))));
        assert!(restored[0].contains("the gate rows 16..32, 48..64, 80..96, 112..128 are sft's"));
        assert_eq!(restored[1], k(3));

        // The options: gate rows and norms too, layer 7 only: q_proj whole.
        let out = dir.path().join(format!("{name}-all"));
        let opts = ["--layers", "7", "--restore-gate-rows", "--restore-qk-norms"];
        ok(merge(&pre_path, &sft_path, &out, &opts));
        let merged = ck(&out);
        for t in &sft.tensors {
            let from_pre = [q(7), k(7), norm(7, "q"), norm(7, "k")].contains(&t.name);
            let want = bytes(if from_pre { &pre } else { &sft }, &t.name);
            assert!(bytes(&merged, &t.name) == want, "{name}: {}", t.name);
        }

        // Q-Restore, a blend and QK-Pro touch the query rows only.
        for opts in [
            &["--method", "q-restore"][..],
            &["--alpha", "0.5"],
            &["--method", "qk-pro"],
        ] {
            let out = dir.path().join(format!("{name}-{}", opts[1]));
            ok(merge(&pre_path, &sft_path, &out, opts));
            let merged = ck(&out);
            for l in SOFTMAX {
                let (got, s, p) = (
                    bytes(&merged, &q(l)),
                    bytes(&sft, &q(l)),
                    bytes(&pre, &q(l)),
                );
                assert_eq!(spliced_q(&s, &got), s, "{name} {opts:?}: gate rows moved");
                assert_ne!(spliced_q(&got, &s), s, "{name} {opts:?}: query rows kept");
                if opts[1] == "0.5" {
                    let f = |b: &[u8]| -> Vec<f32> {
                        b.chunks(4)
                            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                            .collect()
                    };
                    let (g, s, p) = (f(&got), f(&s), f(&p));
                    let head = 2 * HEAD_DIM * HIDDEN;
                    for i in (0..g.len()).filter(|i| i % head < head / 2) {
                        assert_eq!(g[i], s[i] + 0.5 * (p[i] - s[i]), "{name}: blend at {i}");
                    }
                }
                let k_want = if opts[1] == "q-restore" { &sft } else { &pre };
                if opts[1] != "0.5" {
                    assert!(bytes(&merged, &k(l)) == bytes(k_want, &k(l)), "{opts:?} k");
                }
            }
        }

        // mergekit cannot weigh rows.
        let out = dir.path().join(format!("{name}-mk"));
        let yaml = dir.path().join("mk.yaml");
        let e = err(merge(
            &pre_path,
            &sft_path,
            &out,
            &["--mergekit-out", yaml.to_str().unwrap()],
        ));
        assert!(
            e.contains("mergekit cannot express this merge: it restores only some rows of"),
            "{e}"
        );

        // A gated-delta layer is refused with the reason.
        let e = err(merge(
            &pre_path,
            &sft_path,
            &dir.path().join("x"),
            &["--layers", "2"],
        ));
        assert!(
            e.contains("layer 2 is a gated-delta (linear_attention) layer: qk-restore restores")
                && e.contains("the softmax layers are [3, 7]"),
            "{e}"
        );
        // Gate rows need a method that touches q.
        let e = err(merge(
            &pre_path,
            &sft_path,
            &dir.path().join("y"),
            &["--method", "k-restore", "--restore-gate-rows"],
        ));
        assert!(e.contains("the gate rows live in q_proj"), "{e}");

        // Drift shows the gate rows apart from the query rows.
        let text = ok(qklab(&[
            "drift",
            "--pre",
            pre_path.to_str().unwrap(),
            "--sft",
            sft_path.to_str().unwrap(),
            "--json",
        ]));
        let report: serde_json::Value = serde_json::from_str(&text).unwrap();
        for l in &report["layers"].as_array().unwrap()[..] {
            let softmax = l["softmax"].as_bool().unwrap();
            assert_eq!(l.get("q_gate").is_some(), softmax, "{l}");
            if softmax {
                assert!(l["q"].as_f64().unwrap() > 0.0 && l["q_gate"].as_f64().unwrap() > 0.0);
            } else {
                // A gated-delta layer's in_proj_qkv, in_proj_z and out_proj
                // feed its q, k, v, gate and o columns.
                for c in ["q", "k", "v", "o", "gate", "mlp"] {
                    assert!(
                        l[c].as_f64().unwrap() > 0.0,
                        "layer {} {c}: {l}",
                        l["index"]
                    );
                }
            }
        }
    }
}

#[test]
fn a_restore_gate_rows_merge_of_another_family_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pre = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/qwen3-f32");
    let e = err(merge(
        &pre,
        &pre,
        &dir.path().join("x"),
        &["--layers", "0", "--restore-gate-rows"],
    ));
    assert!(
        e.contains("restoring the gate rows applies to Qwen3.5"),
        "{e}"
    );
}

#[test]
fn a_qwen35_and_qwen3_pair_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let qwen3 = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/qwen3-f32");
    let e = err(merge(
        &fixture("qwen35-text-f32"),
        &qwen3,
        &dir.path().join("x"),
        &[],
    ));
    assert!(
        e.contains("pre is Qwen3.5, sft is Qwen3: a merge needs two checkpoints of one model"),
        "{e}"
    );
    let e = err(merge(
        &fixture("qwen35-vl-f32"),
        &fixture("qwen35-text-f32"),
        &dir.path().join("y"),
        &[],
    ));
    assert!(
        e.contains("pre is Qwen3.5 (vision-language wrapper), sft is Qwen3.5:"),
        "{e}"
    );
    assert!(e.lines().count() < 6, "{e}");
}

#[test]
fn inspect_names_the_wrapper_the_layer_map_and_the_vision_tower() {
    let text = ok(qklab(&[
        "inspect",
        fixture("qwen35-vl-bf16").to_str().unwrap(),
    ]));
    assert!(text.contains("family: Qwen3.5"), "{text}");
    assert!(text.contains("vision-language wrapper"), "{text}");
    assert!(
        text.contains("layer map: GGGS GGGS  (G gated delta (6), S softmax (2))"),
        "{text}"
    );
    assert!(
        text.contains("vision tower: 21 model.visual.* tensors"),
        "{text}"
    );
    assert!(text.contains("not used by the text model"), "{text}");
    assert!(
        !text.contains("model.visual.blocks"),
        "one line, not one per tensor:\n{text}"
    );
    let text = ok(qklab(&[
        "inspect",
        fixture("qwen35-text-f32").to_str().unwrap(),
    ]));
    assert!(
        !text.contains("wrapper") && !text.contains("vision"),
        "{text}"
    );
}

/// A copy of fixture `name` with `edit` applied to its config.json.
fn with_config(dir: &Path, name: &str, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let out = dir.join(format!("{name}-edited"));
    std::fs::create_dir_all(&out).unwrap();
    let src = fixture(name);
    std::fs::copy(src.join("model.safetensors"), out.join("model.safetensors")).unwrap();
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    edit(&mut c);
    std::fs::write(out.join("config.json"), c.to_string()).unwrap();
    out
}

#[test]
fn hostile_qwen35_inputs_get_specific_errors() {
    let dir = tempfile::tempdir().unwrap();
    let inspect = |p: &Path| err(qklab(&["inspect", p.to_str().unwrap()]));

    let no_text = with_config(dir.path(), "qwen35-vl-f32", |c| {
        c.as_object_mut().unwrap().remove("text_config");
    });
    let e = inspect(&no_text);
    assert!(e.contains("has no text_config object"), "{e}");

    let short = with_config(dir.path(), "qwen35-text-f32", |c| {
        c["layer_types"].as_array_mut().unwrap().pop();
    });
    let e = inspect(&short);
    assert!(
        e.contains("layer_types has 7 entries but num_hidden_layers is 8"),
        "{e}"
    );

    // conv1d [C, 1, K] stored as [C, K, 1]: same bytes, wrong shape.
    let conv = dir.path().join("conv");
    std::fs::create_dir_all(&conv).unwrap();
    let src = fixture("qwen35-text-f32");
    std::fs::copy(src.join("config.json"), conv.join("config.json")).unwrap();
    let file = std::fs::read(src.join("model.safetensors")).unwrap();
    let len = parse_header_len("m", &file[..8], file.len() as u64).unwrap() as usize;
    let mut header = parse_header("m", &file[8..8 + len], file.len() as u64).unwrap();
    let name = "model.layers.0.linear_attn.conv1d.weight";
    let t = header.tensors.iter_mut().find(|t| t.name == name).unwrap();
    t.shape = vec![t.shape[0], t.shape[2], t.shape[1]];
    let mut out = encode_header(&header.tensors, &header.metadata);
    out.extend_from_slice(&file[8 + len..]);
    std::fs::write(conv.join("model.safetensors"), out).unwrap();
    let e = inspect(&conv);
    assert!(
        e.contains(&format!(
            "tensor {name} has shape [64, 4, 1], expected [64, 1, 4]"
        )),
        "{e}"
    );
    let e = err(merge(&src, &conv, &dir.path().join("m"), &[]));
    assert!(e.contains(name), "{e}");
    let e = err(qklab(&[
        "run",
        conv.to_str().unwrap(),
        "--ids",
        "1,2",
        "--backend",
        "reference",
    ]));
    assert!(e.contains(name), "{e}");

    // Opening a checkpoint needs no panic either for an empty layer_types.
    let empty = with_config(dir.path(), "qwen35-vl-f32", |c| {
        c["text_config"]["layer_types"] = serde_json::json!([]);
    });
    let e = inspect(&empty);
    assert!(e.contains("layer_types has 0 entries"), "{e}");
}

/// Logits of `ck` on the reference engine, after swapping `swaps` (each a
/// tensor as stored in `from`) into it.
fn logits(ck: &Checkpoint<FsSource>, swaps: &[(String, &Checkpoint<FsSource>)]) -> Vec<f32> {
    use qklab::model::calls::Logits;
    use qklab::model::engine::{Device, Engine};
    let arch = qklab::config::arch_of(ck).unwrap();
    let mut engine = block_on(Engine::load(
        Device::Reference,
        ck,
        arch,
        Default::default(),
        &mut |_| {},
    ))
    .unwrap();
    for (name, from) in swaps {
        let dtype = from.tensor(name).unwrap().dtype;
        engine.set_tensor(name, dtype, &bytes(from, name)).unwrap();
    }
    let mut s = engine.session(false);
    let ids: Vec<u32> = (0..20).map(|i| (i * 37 + 11) % 259).collect();
    block_on(engine.prefill(&mut s, &ids, Logits::All)).unwrap()
}

#[test]
fn swapping_a_merges_tensors_into_a_loaded_sft_gives_the_merges_logits() {
    // What `qklab tune` does: the stored q_proj (query and gate rows) and
    // zero-centred norms go into an engine that holds them in its own form.
    let dir = tempfile::tempdir().unwrap();
    let pre_path = fixture("qwen35-vl-f32");
    let sft_path = dir.path().join("sft");
    make_sft(&pre_path, &sft_path);
    let out = dir.path().join("merged");
    ok(merge(&pre_path, &sft_path, &out, &["--restore-qk-norms"]));
    let (sft, merged) = (ck(&sft_path), ck(&out));
    let recipe: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("qklab-recipe.json")).unwrap())
            .unwrap();
    let swaps: Vec<(String, &Checkpoint<FsSource>)> = recipe["restored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["tensor"].as_str().unwrap().to_string(), &merged))
        .collect();
    assert_eq!(swaps.len(), 8);
    let (swapped, loaded, before) = (
        logits(&sft, &swaps),
        logits(&merged, &[]),
        logits(&sft, &[]),
    );
    assert_eq!(swapped, loaded);
    assert_ne!(swapped, before);
}
