//! Qwen3.5 (issue 26) against Hugging Face transformers itself:
//! tests/fixtures/qwen35 holds tiny random `qwen3_5_text` and `qwen3_5`
//! (vision-language wrapper) checkpoints in f32 and bf16 and their logits
//! on 150 ids, made by transformers' pure PyTorch Qwen3.5 classes
//! (reference/qwen35_fixtures.py). Every engine must reproduce them within
//! 1e-4 of the largest logit, whole and through prefill in pieces then
//! single decode steps.

mod common;
use common::{open, rel_diff};

use qklab::config::{arch_of, Family, Mixer};
use qklab::model::cpu::CpuModel;
use qklab::model::engine::{Device, Engine, Logits};
use qklab::model::fit::EngineOptions;
use qklab::names::Root;
use qklab::source::block_on;

const CHECKPOINTS: [(&str, Root); 4] = [
    ("qwen35-text-f32", Root::Plain),
    ("qwen35-text-bf16", Root::Plain),
    ("qwen35-vl-f32", Root::Wrapped),
    ("qwen35-vl-bf16", Root::Wrapped),
];

fn golden(name: &str) -> (Vec<u32>, Vec<f32>) {
    common::golden("tests/fixtures/qwen35", name)
}

#[test]
fn configs_resolve_to_the_three_to_one_hybrid() {
    for (name, root) in CHECKPOINTS {
        let ck = open(&format!("tests/fixtures/qwen35/{name}"));
        let arch = arch_of(&ck).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(arch.family, Family::Qwen35, "{name}");
        assert_eq!(arch.root, root, "{name}");
        assert_eq!(arch.softmax_layers(), [3, 7], "{name}");
        assert_eq!(
            arch.mixers
                .iter()
                .filter(|m| **m == Mixer::GatedDelta)
                .count(),
            6,
            "{name}"
        );
        assert_eq!(
            arch.rope_inv_freq(arch.attn.head_dim).len(),
            2,
            "{name}: RoPE on 4 of 16 dims"
        );
        assert_eq!(arch.tie_word_embeddings, root == Root::Wrapped, "{name}");
    }
}

#[test]
fn the_reference_matches_transformers() {
    for (name, _) in CHECKPOINTS {
        let ck = open(&format!("tests/fixtures/qwen35/{name}"));
        let arch = arch_of(&ck).unwrap();
        let (ids, want) = golden(name);
        let model = block_on(CpuModel::load(&ck, arch)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let d = rel_diff(&model.forward(&ids).unwrap(), &want);
        eprintln!("{name}: reference {d:.2e}");
        assert!(d < 1e-4, "{name}: reference {d:.3e}");
        // In pieces, then single steps: the convolution's and the delta
        // rule's states carried between calls.
        let mut state = model.new_state(false);
        let mut got = model.step(&mut state, &ids[..70]).unwrap();
        got.extend(model.step(&mut state, &ids[70..135]).unwrap());
        for &id in &ids[135..] {
            got.extend(model.step(&mut state, &[id]).unwrap());
        }
        let d = rel_diff(&got, &want);
        eprintln!("{name}: reference in pieces {d:.2e}");
        assert!(d < 1e-4, "{name}: reference in pieces {d:.3e}");
    }
}

/// An engine on `device` against transformers' logits: whole, then in
/// pieces across a chunk boundary (64) and single decode steps, so the
/// convolution's history, the delta rule's state, the caches and RoPE
/// positions are all carried.
fn engine_matches_transformers(label: &str, device: Device) {
    for (name, _) in CHECKPOINTS {
        let ck = open(&format!("tests/fixtures/qwen35/{name}"));
        let arch = arch_of(&ck).unwrap();
        let (ids, want) = golden(name);
        let e = block_on(Engine::load(
            device,
            &ck,
            arch,
            EngineOptions {
                max_context: 160,
                ..Default::default()
            },
            &mut |_| {},
        ))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        common::whole_and_in_pieces(&e, &ids, &want, &format!("{name}: {label}"));
    }
}

#[test]
fn the_cpu_engine_matches_transformers() {
    engine_matches_transformers("CPU engine", Device::Cpu);
}

#[test]
fn the_gpu_matches_transformers() {
    let Some(gpu) = common::gpu() else { return };
    engine_matches_transformers("GPU", Device::Gpu(&gpu));
}

#[test]
fn the_gpu_takes_swapped_tensors_as_a_checkpoint_holding_them() {
    // Every tensor of another checkpoint of the same shapes swapped into
    // a loaded one: the gated q_proj split into query and gate rows, the
    // zero-centred norms plus one, the gated-delta layers' f32 tensors.
    let Some(gpu) = common::gpu() else { return };
    let a = open("tests/fixtures/qwen35/qwen35-text-bf16");
    let config: serde_json::Value =
        serde_json::from_str(a.config_json.as_deref().unwrap()).unwrap();
    let b = common::mem_checkpoint(&config, qklab::safetensors::Dtype::BF16, 7);
    let ids: Vec<u32> = golden("qwen35-text-bf16").0[..100].to_vec();
    let opts = EngineOptions {
        max_context: 160,
        ..Default::default()
    };
    let run = |e: &Engine| {
        let mut s = e.session(false);
        let mut got = block_on(e.prefill(&mut s, &ids[..90], Logits::All)).unwrap();
        for &id in &ids[90..] {
            got.extend(block_on(e.prefill(&mut s, &[id], Logits::All)).unwrap());
        }
        got
    };
    fn load<S: qklab::source::ByteSource>(
        gpu: &qklab::gpu::Gpu,
        ck: &qklab::checkpoint::Checkpoint<S>,
        opts: &EngineOptions,
    ) -> Engine {
        let arch = arch_of(ck).unwrap();
        block_on(Engine::load(
            Device::Gpu(gpu),
            ck,
            arch,
            opts.clone(),
            &mut |_| {},
        ))
        .unwrap()
    }
    let want = run(&load(&gpu, &b, &opts));
    let mut e = load(&gpu, &a, &opts);
    let before = run(&e);
    assert_ne!(before, want, "the two checkpoints differ");
    for t in &b.tensors {
        let bytes = block_on(b.read_tensor_range(t, 0, t.end - t.start)).unwrap();
        e.set_tensor(&t.name, t.dtype, &bytes)
            .unwrap_or_else(|err| panic!("{}: {err}", t.name));
    }
    assert_eq!(run(&e), want, "swapped logits against loading them");
}
