//! Checkpoint reading, the architecture check and the writer, on synthetic
//! HypeNet-shaped checkpoints, through the library and through `qklab`.

mod common;

use std::sync::Arc;

use common::qklab;

use qklab::checkpoint::Checkpoint;
use qklab::config::arch_of;
use qklab::config::Arch;
use qklab::safetensors::Dtype;
use qklab::source::{block_on, ByteSource, FsSource, MemSource};
use qklab::summary::summarize;
use qklab::synth;
use qklab::writer::{
    verify_written, write_to_dir, PlanBuilder, Provenance, SourceFingerprint, TensorData,
};

/// Parameter count of a HypeNet from its config, written out term by term
/// (independent of `Arch::expected_tensors`).
fn hypenet_parameters(c: &serde_json::Value) -> u64 {
    let g = |k: &str| c[k].as_u64().unwrap();
    let (v, d, i) = (g("vocab_size"), g("hidden_size"), g("intermediate_size"));
    let (h, hkv, dh) = (
        g("num_attention_heads"),
        g("num_key_value_heads"),
        g("head_dim"),
    );
    let (nh, nkv, dl) = (
        g("lightning_nh"),
        g("lightning_nkv"),
        g("lightning_head_dim"),
    );
    let mut total = v * d + d; // tied embedding, final norm
    for m in c["mixer_types"].as_array().unwrap() {
        total += 2 * d + 3 * i * d; // two norms, SwiGLU MLP
        total += if m == "attn" {
            h * dh * d + 2 * hkv * dh * d + d * h * dh + 2 * dh + h * dh * d // q, k+v, o, q/k norms, o_gate
        } else {
            nh * dl * d + 2 * nkv * dl * d + d * nh * dl + 2 * dl + nh * dl + nh * dl * d
            // … o_norm, z_proj
        };
    }
    total
}

#[test]
fn inspect_two_shard_bf16_hypenet() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let out = qklab(&[
        "synth",
        "--preset",
        "demo",
        "--shards",
        "2",
        "--out",
        ck.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = qklab(&["inspect", ck.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ck.join("config.json")).unwrap()).unwrap();

    let layers = s["layers"].as_array().unwrap();
    let mixers: Vec<&str> = layers
        .iter()
        .map(|l| l["mixer"].as_str().unwrap())
        .collect();
    let softmax: Vec<u64> = layers
        .iter()
        .filter(|l| l["mixer"] == "attn")
        .map(|l| l["index"].as_u64().unwrap())
        .collect();
    assert_eq!(mixers.len(), 8);
    assert_eq!(softmax, [3, 6], "the demo's softmax layers");
    assert_eq!(serde_json::json!(mixers), config["mixer_types"]);
    assert_eq!(
        s["parameters"].as_u64().unwrap(),
        hypenet_parameters(&config)
    );
    assert_eq!(s["files"].as_array().unwrap().len(), 2);
    assert_eq!(
        s["dtypes"]["BF16"].as_u64().unwrap(),
        hypenet_parameters(&config)
    );
    assert!(s["problems"].as_array().unwrap().is_empty());

    let text = String::from_utf8(qklab(&["inspect", ck.to_str().unwrap()]).stdout).unwrap();
    assert!(text.contains("softmax layers (*): [3, 6]"), "{text}");
}

#[test]
fn summary_of_a_4gb_checkpoint_reads_only_headers() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("2b");
    // Sparse: headers are written, tensor data is a hole.
    let layout = synth::write_dir(&ck, "2b", 2, Dtype::BF16, 0, true).unwrap();
    let out = qklab(&["inspect", ck.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let on_disk = s["bytes_on_disk"].as_u64().unwrap();
    let read = s["bytes_read"].as_u64().unwrap();
    let headers: u64 = layout.shards.iter().map(|s| s.header.len() as u64).sum();
    let small_files = std::fs::metadata(ck.join("config.json")).unwrap().len()
        + std::fs::metadata(ck.join("model.safetensors.index.json"))
            .unwrap()
            .len();
    eprintln!("on disk {on_disk} bytes, read {read} bytes (headers {headers}, config + index {small_files})");
    assert!(on_disk > 3_500_000_000, "a HypeNet-2B-sized checkpoint");
    // The 8-byte length fields are read with up to 8 bytes of look-ahead each.
    assert!(
        read <= headers + small_files + 8 * layout.shards.len() as u64,
        "read {read}"
    );
    let softmax: Vec<u64> = serde_json::from_value(s["softmax_layers"].clone()).unwrap();
    assert_eq!(softmax, [2, 3, 6, 8, 9, 21, 25]);
}

fn tiny(shards: usize) -> MemSource {
    let mut src = MemSource::new();
    for (name, bytes) in synth::files_in_memory("tiny", shards, Dtype::BF16, 3).unwrap() {
        src.insert(&name, bytes);
    }
    src
}

fn without(src: &MemSource, skip: &str) -> MemSource {
    let mut out = MemSource::new();
    for f in src.files() {
        if f.name != skip {
            out.insert(&f.name, block_on(src.read(&f.name, 0..f.size)).unwrap());
        }
    }
    out
}

#[test]
fn inferred_architecture_matches_the_config_and_says_it_guessed() {
    let src = tiny(1);
    let with = block_on(Checkpoint::open(src.clone())).unwrap();
    let from_config = arch_of(&with).unwrap();
    let bare = block_on(Checkpoint::open(without(&src, "config.json"))).unwrap();
    let inferred = arch_of(&bare).unwrap();
    assert!(from_config.from_config && !inferred.from_config);
    assert_eq!(inferred.mixers, from_config.mixers);
    assert_eq!(inferred.attn, from_config.attn);
    assert_eq!(inferred.lightning, from_config.lightning);
    assert_eq!(inferred.expected_tensors(), from_config.expected_tensors());
    assert!(inferred.guesses.iter().any(|g| g.contains("rms_norm_eps")));
    assert!(inferred
        .guesses
        .iter()
        .any(|g| g.contains("attn_logits_scaling")));
}

#[test]
fn every_mismatch_with_the_config_is_reported() {
    let config = synth::preset_config("tiny").unwrap();
    let mut wrong = config.clone();
    wrong["intermediate_size"] = serde_json::json!(80); // 3 MLP tensors x 4 layers
    wrong["mixer_types"][0] = serde_json::json!("attn"); // layer 0 is Lightning in the file
    let mut src = tiny(1);
    src.insert("config.json", wrong.to_string().into_bytes());
    let ck = block_on(Checkpoint::open(src)).unwrap();
    let arch = arch_of(&ck).unwrap();
    let s = summarize(&ck, &arch);
    let mlp = s.problems.iter().filter(|p| p.contains("mlp.")).count();
    assert_eq!(mlp, 12, "{:#?}", s.problems);
    assert!(s
        .problems
        .iter()
        .any(|p| p.contains("missing tensor model.layers.0.self_attn.o_gate.weight")));
    assert!(s.problems.iter().any(
        |p| p.contains("model.layers.0.self_attn.q_norm.weight has shape [20], expected [10]")
    ));
    assert!(s
        .extra_tensors
        .iter()
        .any(|t| t == "model.layers.0.self_attn.z_proj.weight"));
}

#[test]
fn bad_configs_are_refused_with_the_reason() {
    let base = synth::preset_config("tiny").unwrap();
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (serde_json::json!({"hidden_size": 4}), "missing field"),
        (
            {
                let mut c = base.clone();
                c["mixer_types"] = serde_json::json!(["attn"]);
                c
            },
            "mixer_types has 1 entries but num_hidden_layers is 4",
        ),
        (
            {
                let mut c = base.clone();
                c["mixer_types"][2] = serde_json::json!("mamba");
                c
            },
            "mixer_types[2] is \"mamba\"",
        ),
        (
            {
                let mut c = base.clone();
                c["lightning_use_short_conv"] = serde_json::json!(true);
                c
            },
            "short convolution is not supported",
        ),
        (
            {
                let mut c = base.clone();
                c["attn_logits_scaling"] = serde_json::json!("hype zero");
                c
            },
            "A must be a number above 1",
        ),
        (
            {
                let mut c = base.clone();
                c["num_key_value_heads"] = serde_json::json!(3);
                c
            },
            "heads must be a positive multiple of kv heads",
        ),
    ];
    for (config, expected) in cases {
        let err = Arch::from_config_json(&config.to_string(), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{expected:?} not in {err:?}");
    }
    let hype = |v: serde_json::Value| {
        let mut c = base.clone();
        c["attn_logits_scaling"] = v;
        Arch::from_config_json(&c.to_string(), false)
            .unwrap()
            .logits_scaling
    };
    assert_eq!(
        hype(serde_json::json!("hype 500")),
        qklab::config::LogitsScaling::Hype(500.0)
    );
    assert_eq!(
        hype(serde_json::json!("hype")),
        qklab::config::LogitsScaling::Hype(362.0)
    );
    assert_eq!(
        hype(serde_json::json!(0.5)),
        qklab::config::LogitsScaling::Constant(0.5)
    );
}

#[test]
fn written_checkpoint_mirrors_sharding_and_changes_only_replaced_tensors() {
    let sft = block_on(Checkpoint::open(tiny(2))).unwrap();
    let pre_src = {
        let mut s = MemSource::new();
        for (name, bytes) in synth::files_in_memory("tiny", 2, Dtype::BF16, 99).unwrap() {
            s.insert(&name, bytes);
        }
        s
    };
    let pre = block_on(Checkpoint::open(pre_src)).unwrap();
    let q = "model.layers.1.self_attn.q_proj.weight";
    let k = "model.layers.3.self_attn.k_proj.weight";
    let mut plan = PlanBuilder::new(&sft, 0);
    // q copied from pre as a byte range, k recomputed.
    let pre_q = pre.tensor(q).unwrap().clone();
    let pre_q_file = pre.shard_of(&pre_q).file.name.clone();
    plan.replace(
        q,
        TensorData::Copy {
            source: 1,
            file: pre_q_file,
            entry: pre_q,
        },
    )
    .unwrap();
    let new_k = vec![7u8; (sft.tensor(k).unwrap().end - sft.tensor(k).unwrap().start) as usize];
    plan.replace(k, TensorData::Bytes(Arc::new(new_k.clone())))
        .unwrap();
    // A wrong-sized replacement is refused.
    assert!(plan
        .replace(k, TensorData::Bytes(Arc::new(vec![0; 3])))
        .unwrap_err()
        .to_string()
        .contains("expected BF16"));
    let prov = Provenance::new(
        "qk-restore",
        serde_json::json!({}),
        vec![
            block_on(SourceFingerprint::of("pre", &pre)).unwrap(),
            block_on(SourceFingerprint::of("sft", &sft)).unwrap(),
        ],
    );
    let plan = plan.build(&prov).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged");
    block_on(write_to_dir(
        &plan,
        &[sft.source(), pre.source()],
        &out,
        |_, _| {},
    ))
    .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json"
        ]
    );

    let merged = block_on(Checkpoint::open(FsSource::open(&out).unwrap())).unwrap();
    assert_eq!(merged.tensors.len(), sft.tensors.len());
    for t in &sft.tensors {
        let m = merged.tensor(&t.name).unwrap();
        assert_eq!(
            (m.dtype, &m.shape, m.shard),
            (t.dtype, &t.shape, t.shard),
            "{}",
            t.name
        );
        let got = block_on(merged.read_tensor_bytes(&t.name)).unwrap();
        let want = match t.name.as_str() {
            n if n == q => block_on(pre.read_tensor_bytes(q)).unwrap(),
            n if n == k => new_k.clone(),
            n => block_on(sft.read_tensor_bytes(n)).unwrap(),
        };
        assert!(got == want, "{}", t.name);
    }
    assert!(merged.shards[0]
        .header
        .metadata
        .contains_key(qklab::writer::PROVENANCE_KEY));
    block_on(verify_written(&plan, &FsSource::open(&out).unwrap())).unwrap();

    // The output folder must be new: writing again over it is refused.
    let again = block_on(write_to_dir(
        &plan,
        &[sft.source(), pre.source()],
        &out,
        |_, _| {},
    ));
    assert!(again.unwrap_err().to_string().contains("not empty"));
}

#[test]
fn stray_weight_files_are_ignored_and_never_carried() {
    let mut src = tiny(2);
    src.insert("pytorch_model.bin", vec![0; 64]);
    src.insert("consolidated.safetensors", vec![0; 64]); // broken, but the index does not name it
    src.insert("modeling_hypenet.py", b"# remote code".to_vec());
    let ck = block_on(Checkpoint::open(src)).unwrap();
    let ignored: Vec<&str> = ck.ignored_files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(ignored, ["pytorch_model.bin", "consolidated.safetensors"]);
    let plan = PlanBuilder::new(&ck, 0)
        .build(&Provenance::new("copy", serde_json::json!({}), vec![]))
        .unwrap();
    let names: Vec<&str> = plan.files.iter().map(|f| f.name.as_str()).collect();
    assert!(
        names.contains(&"modeling_hypenet.py") && names.contains(&"config.json"),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with(".bin") || n.starts_with("consolidated")),
        "{names:?}"
    );
}

#[test]
fn a_failed_write_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    synth::write_dir(&input, "tiny", 2, Dtype::BF16, 5, false).unwrap();
    let ck = block_on(Checkpoint::open(FsSource::open(&input).unwrap())).unwrap();
    let plan = PlanBuilder::new(&ck, 0)
        .build(&Provenance::new("copy", serde_json::json!({}), vec![]))
        .unwrap();
    // The input vanishes between planning and writing.
    std::fs::remove_file(input.join("model-00002-of-00002.safetensors")).unwrap();
    let out = dir.path().join("out");
    let err = block_on(write_to_dir(&plan, &[ck.source()], &out, |_, _| {}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
    assert!(!out.exists(), "the output folder is removed again");
}

#[test]
fn verification_catches_a_damaged_output() {
    let sft = block_on(Checkpoint::open(tiny(1))).unwrap();
    let plan = PlanBuilder::new(&sft, 0)
        .build(&Provenance::new("copy", serde_json::json!({}), vec![]))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    block_on(write_to_dir(&plan, &[sft.source()], &out, |_, _| {})).unwrap();
    let path = out.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 2);
    std::fs::write(&path, &bytes).unwrap();
    let err = block_on(verify_written(&plan, &FsSource::open(&out).unwrap()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("written size"), "{err}");
}

#[test]
fn the_demo_checkpoints_and_fixtures_load() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for which in ["pre", "sft"] {
        let dir = root.join("www/demo").join(which);
        let out = qklab(&["inspect", dir.to_str().unwrap(), "--json"]);
        assert!(
            out.status.success(),
            "{which}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(s["softmax_layers"], serde_json::json!([3, 6]), "{which}");
        assert_eq!(s["config"], "config.json");
        assert!(
            s["problems"].as_array().unwrap().is_empty(),
            "{which}: {}",
            s["problems"]
        );
        assert_eq!(
            s["dtypes"].as_object().unwrap().keys().collect::<Vec<_>>(),
            ["BF16"]
        );
        let verify = qklab(&["verify", dir.to_str().unwrap()]);
        assert!(
            verify.status.success(),
            "{which}: {}",
            String::from_utf8_lossy(&verify.stderr)
        );
    }
    // The golden fixtures are readable safetensors with the shapes their README gives.
    let pre = block_on(Checkpoint::open(
        FsSource::open(&root.join("tests/fixtures/demo/pre.safetensors")).unwrap(),
    ))
    .unwrap();
    let t = pre.tensor("ids_c").unwrap().shape[0];
    assert_eq!(pre.tensor("logits_c").unwrap().shape, [t, 259]);
    assert_eq!(pre.tensor("attn_l3_h0_c").unwrap().shape, [t, t]);
    assert_eq!(
        pre.tensor("lightning_state_l0_c").unwrap().shape,
        [4, 48, 48]
    );
}

#[test]
fn token_ids_in_the_config_may_be_one_or_a_list() {
    // Llama 3.1's instruct models end on any of three EOS ids.
    let mut config = qklab::synth::preset_config("tiny").unwrap();
    config["eos_token_id"] = serde_json::json!([257, 7, 9]);
    config["bos_token_id"] = serde_json::json!(256);
    config["pad_token_id"] = serde_json::Value::Null;
    let ck = common::mem_checkpoint(&config, qklab::safetensors::Dtype::F32, 1);
    assert_eq!(ck.config_ids("eos_token_id"), vec![257, 7, 9]);
    assert_eq!(ck.config_ids("bos_token_id"), vec![256]);
    assert_eq!(ck.config_ids("pad_token_id"), Vec::<u32>::new());
    assert_eq!(ck.special_ids(), vec![256, 257, 7, 9]);
}
