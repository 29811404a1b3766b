//! The CPU engine's gated delta rule (chunked WY form in prefill, the
//! recurrence in decode) against the reference's literal recurrence, on
//! random Qwen3.5-shaped checkpoints made in memory: lengths on both sides
//! of a chunk (64), ragged batches of several sequences in one pass,
//! states carried across passes and into decode, more value heads than key
//! heads; and a merge's swap of a gated q_proj and a zero-centred norm.

mod common;
use common::rel_diff;

use qklab::checkpoint::Checkpoint;
use qklab::config::{arch_of, Arch};
use qklab::model::cpu::CpuModel;
use qklab::model::engine::{Device, Engine, Logits};
use qklab::model::fit::EngineOptions;
use qklab::safetensors::{encode_f32, Dtype};
use qklab::source::{block_on, MemSource};

/// Within this of the largest logit: the chunked form sums in another order.
const TOL: f32 = 2e-5;

/// A small `qwen3_5_text` config: GDN, softmax, GDN, GDN layers.
fn config(key_heads: u64, value_heads: u64) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["Qwen3_5ForCausalLM"],
        "model_type": "qwen3_5_text",
        "hidden_size": 48,
        "intermediate_size": 96,
        "num_hidden_layers": 4,
        "layer_types": ["linear_attention", "full_attention", "linear_attention", "linear_attention"],
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "linear_conv_kernel_dim": 4,
        "linear_key_head_dim": 16,
        "linear_num_key_heads": key_heads,
        "linear_num_value_heads": value_heads,
        "linear_value_head_dim": 8,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {"partial_rotary_factor": 0.25, "rope_theta": 10000.0, "rope_type": "default"},
        "tie_word_embeddings": false,
        "vocab_size": 259,
        "hidden_act": "silu",
        "attention_bias": false,
        "dtype": "float32"
    })
}

/// Random f32 weights for `config`; `tweak` may change any tensor's
/// values. A_log sits near -4, so that the state remembers across many
/// chunks (with decays near 1 a chunk boundary matters).
fn checkpoint(
    config: &serde_json::Value,
    seed: u64,
    tweak: impl Fn(&str, &mut Vec<f32>),
) -> Checkpoint<MemSource> {
    let arch = Arch::from_config_json(&config.to_string(), false).unwrap();
    let lay = qklab::synth::layout(&arch, 1, Dtype::F32).unwrap();
    let mut src = MemSource::new();
    src.insert("config.json", serde_json::to_vec(config).unwrap());
    for s in &lay.shards {
        let mut bytes = s.header.clone();
        for t in &s.tensors {
            let mut v = qklab::synth::tensor_values(t, seed);
            if t.name.ends_with("A_log") {
                v.iter_mut().for_each(|x| *x -= 4.0);
            }
            tweak(&t.name, &mut v);
            bytes.extend(encode_f32(&t.name, Dtype::F32, &v, "test").unwrap());
        }
        src.insert(&s.name, bytes);
    }
    block_on(Checkpoint::open(src)).unwrap()
}

fn engine(ck: &Checkpoint<MemSource>) -> Engine {
    block_on(Engine::load(
        Device::Cpu,
        ck,
        arch_of(ck).unwrap(),
        EngineOptions {
            max_context: 2048,
            ..Default::default()
        },
        &mut |_| {},
    ))
    .unwrap()
}

fn ids(n: usize, salt: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i * 97 + salt * 31 + 13) % 259)
        .collect()
}

#[test]
fn prefill_in_chunks_equals_the_recurrence_at_every_length() {
    for (nk, nv) in [(2, 2), (2, 6)] {
        let ck = checkpoint(&config(nk, nv), 3, |_, _| {});
        let reference = block_on(CpuModel::load(&ck, arch_of(&ck).unwrap())).unwrap();
        let e = engine(&ck);
        for n in [1, 63, 64, 65, 700] {
            let ids = ids(n, 1);
            let got = block_on(e.prefill(&mut e.session(false), &ids, Logits::All)).unwrap();
            let d = rel_diff(&got, &reference.forward(&ids).unwrap());
            eprintln!("nk {nk} nv {nv}, {n} tokens: {d:.2e}");
            assert!(d < TOL, "nk {nk} nv {nv}, {n} tokens: {d:.3e}");
        }
    }
}

#[test]
fn states_carry_across_passes_and_into_decode() {
    let ck = checkpoint(&config(2, 4), 5, |_, _| {});
    let reference = block_on(CpuModel::load(&ck, arch_of(&ck).unwrap())).unwrap();
    let e = engine(&ck);
    let ids = ids(300, 2);
    let want = reference.forward(&ids).unwrap();
    let mut s = e.session(false);
    let mut got = Vec::new();
    let mut at = 0;
    // Pieces shorter than the convolution's window, one token, a whole
    // chunk, then single decode steps.
    for n in [2, 1, 64, 65, 100, 3] {
        got.extend(block_on(e.prefill(&mut s, &ids[at..at + n], Logits::All)).unwrap());
        at += n;
    }
    for &id in &ids[at..] {
        got.extend(block_on(e.prefill(&mut s, &[id], Logits::All)).unwrap());
    }
    let d = rel_diff(&got, &want);
    eprintln!("in pieces then decode: {d:.2e}");
    assert!(d < TOL, "in pieces then decode: {d:.3e}");
}

#[test]
fn ragged_batches_equal_each_sequence_alone() {
    let ck = checkpoint(&config(2, 4), 7, |_, _| {});
    let reference = block_on(CpuModel::load(&ck, arch_of(&ck).unwrap())).unwrap();
    let e = engine(&ck);
    let v = e.arch().vocab_size as usize;
    let prompts: Vec<Vec<u32>> = [130, 1, 700, 63, 5]
        .iter()
        .enumerate()
        .map(|(i, &n)| ids(n, i as u32))
        .collect();
    let refs: Vec<&[u32]> = prompts.iter().map(|p| p.as_slice()).collect();
    let mut b = block_on(e.batch(refs.len(), false)).unwrap();
    let rows = block_on(e.prefill_batch(&mut b, &refs, Logits::Last)).unwrap();
    let mut states: Vec<_> = prompts.iter().map(|_| reference.new_state(false)).collect();
    for (j, (p, st)) in prompts.iter().zip(&mut states).enumerate() {
        let all = reference.step(st, p).unwrap();
        let d = rel_diff(&rows[j], &all[all.len() - v..]);
        eprintln!("batch, sequence {j} ({} tokens): {d:.2e}", p.len());
        assert!(d < TOL, "batch, sequence {j}: {d:.3e}");
    }
    // Decode steps of all sequences at once; one sequence sits a step out.
    for step in 0..4u32 {
        let next: Vec<Vec<u32>> = (0..prompts.len())
            .map(|j| {
                if j == 1 && step == 2 {
                    vec![]
                } else {
                    vec![(step * 7 + j as u32) % 259]
                }
            })
            .collect();
        let refs: Vec<&[u32]> = next.iter().map(|p| p.as_slice()).collect();
        let rows = block_on(e.prefill_batch(&mut b, &refs, Logits::Last)).unwrap();
        for (j, (t, st)) in next.iter().zip(&mut states).enumerate() {
            if t.is_empty() {
                continue;
            }
            let want = reference.step(st, t).unwrap();
            let d = rel_diff(&rows[j], &want);
            assert!(d < TOL, "decode step {step}, sequence {j}: {d:.3e}");
        }
    }
}

#[test]
fn swapping_a_gated_q_proj_and_a_zero_centred_norm_equals_loading_them() {
    let cfg = config(2, 4);
    let swapped = [
        "model.layers.1.self_attn.q_proj.weight",
        "model.layers.1.self_attn.q_norm.weight",
        "model.layers.1.self_attn.k_proj.weight",
    ];
    let before = checkpoint(&cfg, 11, |_, _| {});
    let after = checkpoint(&cfg, 11, |name, v| {
        if swapped.contains(&name) {
            v.iter_mut().enumerate().for_each(|(i, x)| {
                *x += 0.05 * ((i * 7919 % 13) as f32 - 6.0) / 6.0;
            });
        }
    });
    let ids = ids(90, 4);
    let want = {
        let e = engine(&after);
        block_on(e.prefill(&mut e.session(false), &ids, Logits::All)).unwrap()
    };
    let mut e = engine(&before);
    let old = block_on(e.prefill(&mut e.session(false), &ids, Logits::All)).unwrap();
    assert!(
        rel_diff(&old, &want) > 1e-3,
        "the swap must change the logits"
    );
    for name in swapped {
        let t = after.tensor(name).unwrap();
        let bytes = block_on(after.read_tensor_bytes(name)).unwrap();
        e.set_tensor(name, t.dtype, &bytes).unwrap();
    }
    let got = block_on(e.prefill(&mut e.session(false), &ids, Logits::All)).unwrap();
    assert_eq!(got, want, "swapped tensors give the logits of loading them");
}
