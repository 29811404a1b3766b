//! Jet-Nemotron's config (issue 27): the fixtures NVlabs' own code wrote
//! (tests/fixtures/jet, reference/jet_fixtures.py) resolve to their three
//! kinds of layer and the JetBlock's sizes, their tensors are exactly the
//! ones the architecture lists, and configs the NVlabs code would not
//! build, or that qklab cannot run, are refused by name.

mod common;
use common::{open, qklab};

use std::path::{Path, PathBuf};

use qklab::config::{arch_of, Family, Mixer};

const CHECKPOINTS: [&str; 2] = ["jet-f32", "jet-bf16"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jet")
        .join(name)
}

#[test]
fn the_fixtures_resolve_to_jetblocks_full_and_sliding_window_layers() {
    for name in CHECKPOINTS {
        let ck = open(&format!("tests/fixtures/jet/{name}"));
        let arch = arch_of(&ck).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(arch.family, Family::Jet, "{name}");
        use Mixer::{Jet, Softmax};
        assert_eq!(
            arch.mixers,
            [Jet, Jet, Softmax, Jet, Softmax, Jet],
            "{name}"
        );
        assert_eq!(
            arch.windows,
            [None, None, None, None, Some(16), None],
            "{name}"
        );
        assert_eq!(arch.softmax_layers(), [2, 4], "{name}");
        assert_eq!(arch.full_attention_layers(), [2], "{name}");
        let g = arch.gdn;
        assert_eq!(
            (
                g.key_heads,
                g.value_heads,
                g.key_dim,
                g.value_dim,
                g.conv_kernel,
                g.generator
            ),
            (2, 2, 8, 16, 4, 8),
            "{name}"
        );
        assert_eq!(arch.gdn_norm_eps, 1e-5, "{name}");
        assert!(
            arch.attention_bias && !arch.o_bias,
            "{name}: Qwen2's biases"
        );
        assert!(arch.tie_word_embeddings, "{name}");
        let (problems, extra) = arch.check(&ck.tensors);
        assert!(problems.is_empty(), "{name}: {problems:?}");
        assert!(extra.is_empty(), "{name}: unused tensors {extra:?}");
    }
}

#[test]
fn the_published_2b_config_resolves() {
    // jetai/modeling/configs/jetlm_2B.json's JetBlock: 12 heads of 96,
    // expand_v 2.6666666667 (value heads of 256), norm_eps as a string.
    let config = qklab::synth::preset_config(qklab::synth::JET_2B)
        .unwrap()
        .to_string();
    let arch = qklab::config::Arch::from_config_json(&config, false).unwrap();
    assert_eq!(arch.family, Family::Jet);
    assert_eq!(arch.full_attention_layers(), [14, 19]);
    assert_eq!(arch.softmax_layers(), [14, 19, 20, 21]);
    assert_eq!(arch.window(20), Some(1152));
    assert_eq!((arch.gdn.value_dim, arch.gdn.generator), (256, 384));
    assert_eq!(arch.gdn_norm_eps, 1e-5);
}

/// The f32 fixture with its config edited.
fn with_config(dir: &Path, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let out = dir.join(format!("edited-{}", rand_name()));
    std::fs::create_dir_all(&out).unwrap();
    let src = fixture("jet-f32");
    std::fs::copy(src.join("model.safetensors"), out.join("model.safetensors")).unwrap();
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    edit(&mut c);
    std::fs::write(out.join("config.json"), c.to_string()).unwrap();
    out
}

fn rand_name() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

/// `qklab inspect`'s error for a folder: it must fail, with a message.
fn inspect_err(p: &Path) -> String {
    let out = qklab(&["inspect", p.to_str().unwrap()]);
    assert!(!out.status.success(), "inspect accepted {}", p.display());
    let e = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!e.contains("panicked"), "{e}");
    e
}

#[test]
fn hostile_jet_configs_get_specific_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Box<dyn Fn(&mut serde_json::Value)>); 8] = [
        (
            "efficient_attention_config.swa.window_size is 0",
            Box::new(|c| c["efficient_attention_config"]["swa"]["window_size"] = 0.into()),
        ),
        (
            "layer_types has 5 entries but num_hidden_layers is 6",
            Box::new(|c| {
                c["layer_types"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "layer_types[1] is \"mamba2\"",
            Box::new(|c| c["layer_types"][1] = "mamba2".into()),
        ),
        (
            "efficient_attention_config.mamba2 is not supported",
            Box::new(|c| c["efficient_attention_config"]["mamba2"] = serde_json::json!({})),
        ),
        (
            "efficient_attention_config.jet.use_short_conv is not supported",
            Box::new(|c| c["efficient_attention_config"]["jet"]["use_short_conv"] = true.into()),
        ),
        (
            "a layer is \"swa\" but efficient_attention_config has no \"swa\" entry",
            Box::new(|c| {
                c["efficient_attention_config"].as_object_mut().unwrap().remove("swa");
            }),
        ),
        (
            "efficient_attention_config.jet.mode is \"parallel\"",
            Box::new(|c| c["efficient_attention_config"]["jet"]["mode"] = "parallel".into()),
        ),
        (
            "efficient_attention_config.jet.num_heads is 1000000000000000000000000000000: expected a whole number",
            Box::new(|c| c["efficient_attention_config"]["jet"]["num_heads"] = 1e30.into()),
        ),
    ];
    for (want, edit) in cases {
        let e = inspect_err(&with_config(dir.path(), edit));
        assert!(e.contains(want), "wanted {want:?} in: {e}");
    }
}

#[test]
fn a_jetblock_without_its_kernel_generator_is_named() {
    use qklab::safetensors::{encode_header, parse_header, parse_header_len};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("no-generator");
    std::fs::create_dir_all(&out).unwrap();
    let src = fixture("jet-f32");
    std::fs::copy(src.join("config.json"), out.join("config.json")).unwrap();
    // The generator's first matrix renamed away: its bytes stay, its name goes.
    let name = "model.layers.3.self_attn.dynamic_conv1d.kernel_generator.w1.weight";
    let file = std::fs::read(src.join("model.safetensors")).unwrap();
    let len = parse_header_len("m", &file[..8], file.len() as u64).unwrap() as usize;
    let mut header = parse_header("m", &file[8..8 + len], file.len() as u64).unwrap();
    header
        .tensors
        .iter_mut()
        .find(|t| t.name == name)
        .unwrap()
        .name = "stray".into();
    let mut bytes = encode_header(&header.tensors, &header.metadata);
    bytes.extend_from_slice(&file[8 + len..]);
    std::fs::write(out.join("model.safetensors"), bytes).unwrap();
    let e = inspect_err(&out);
    assert!(e.contains(&format!("missing tensor {name}")), "{e}");
    let run = qklab(&[
        "run",
        out.to_str().unwrap(),
        "--ids",
        "1,2",
        "--backend",
        "reference",
    ]);
    let e = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(
        !run.status.success() && e.contains(name) && !e.contains("panicked"),
        "{e}"
    );
}
