//! The WebGPU engine (natively: llvmpipe in CI) against its oracles: the
//! PyTorch golden logits, attention and greedy ids of the demo pair, and
//! the CPU reference on synthetic models with awkward shapes (sizes off
//! the tile sizes, T = 1, GQA groups of 1, 2 and 4, HyPE on and off,
//! biases, untied heads, f16 / f32 weights, chunked tensors and passes).

mod common;
use common::{fixture, floats, ints, mem_checkpoint, open, rel_diff, variant};

use qklab::checkpoint::Checkpoint;
use qklab::config::arch_of;
use qklab::config::Arch;
use qklab::gpu::kernels::WDtype;
use qklab::gpu::Gpu;
use qklab::model::cpu::CpuModel;
use qklab::model::engine::Logits;
use qklab::model::fit::{plan, EngineOptions};
use qklab::model::gpu::GpuModel;
use qklab::safetensors::Dtype;
use qklab::source::{block_on, ByteSource, FsSource};

fn load<S: ByteSource>(gpu: &Gpu, ck: &Checkpoint<S>, opts: EngineOptions) -> GpuModel {
    let arch = arch_of(ck).unwrap();
    block_on(GpuModel::load(gpu, ck, arch, opts, &mut |_| {})).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn demo_pair_matches_the_golden_logits_attention_and_greedy_ids() {
    let Some(gpu) = common::gpu() else { return };
    for (dir, file) in [
        ("www/demo/pre", "pre.safetensors"),
        ("www/demo/sft", "sft.safetensors"),
    ] {
        let fx = fixture(file);
        let m = load(
            &gpu,
            &open(dir),
            EngineOptions {
                max_context: 600,
                capture: true,
                ..Default::default()
            },
        );
        for seq in ["a", "b", "c"] {
            let ids = ints(&fx, &format!("ids_{seq}"));
            let mut s = m.session();
            let got = block_on(m.prefill(&mut s, &ids, Logits::All)).unwrap();
            let d = rel_diff(&got, &floats(&fx, &format!("logits_{seq}")));
            eprintln!(
                "{dir} seq {seq}: T={} max|diff|/max|logit| = {d:.2e}",
                ids.len()
            );
            assert!(d < 1e-4, "{dir} seq {seq}: {d:.3e}");
            if seq == "c" && file == "pre.safetensors" {
                // Layer 3, head 0: probabilities rebuilt from the captured
                // queries, keys and log-sum-exp, against PyTorch's explicit softmax.
                let cap = block_on(m.captured(&s, 3)).unwrap();
                let (t, a) = (ids.len(), &m.arch.attn);
                let (hq, hk, dh) = (
                    (a.heads * a.head_dim) as usize,
                    (a.kv_heads * a.head_dim) as usize,
                    a.head_dim as usize,
                );
                let scale = 1.0 / (dh as f32).sqrt();
                let mut probs = vec![0.0f32; t * t];
                for i in 0..t {
                    for j in 0..=i {
                        let q = &cap.q[i * hq..][..dh];
                        let k = &cap.k[j * hk..][..dh];
                        let logit = q.iter().zip(k).map(|(x, y)| x * y).sum::<f32>() * scale;
                        probs[i * t + j] = (logit - cap.lse[i * a.heads as usize]).exp();
                    }
                }
                let d = rel_diff(&probs, &floats(&fx, "attn_l3_h0_c"));
                eprintln!("attention layer 3 head 0: {d:.2e}");
                assert!(d < 1e-4, "attention: {d:.3e}");
            }
        }
        let ids = ints(&fx, "ids_c");
        let greedy = gpu_greedy(&m, &ids, 16);
        assert_eq!(greedy, ints(&fx, "greedy_c"), "{dir}: greedy continuation");
    }
}

/// `n` greedy tokens after `prompt`, a step at a time on a fresh sequence.
fn gpu_greedy(m: &GpuModel, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut s = m.session();
    let mut out = vec![block_on(m.next_token(&mut s, prompt)).unwrap()];
    while out.len() < n {
        let last = *out.last().unwrap();
        out.push(block_on(m.next_token(&mut s, &[last])).unwrap());
    }
    out
}

#[test]
fn engine_matches_the_cpu_reference_on_awkward_models() {
    let Some(gpu) = common::gpu() else { return };
    let vocab = 259u32;
    let ids: Vec<u32> = (0..83u32).map(|i| (i * 97 + 13) % vocab).collect();
    for (name, dtype) in [
        ("base", Dtype::BF16),
        ("gqa4-hype", Dtype::F16),
        ("mha-rope-bias", Dtype::F32),
        ("wide-heads", Dtype::BF16),
    ] {
        let ck = mem_checkpoint(&variant(name), dtype, 7);
        let arch = arch_of(&ck).unwrap();
        let cpu = block_on(CpuModel::load(&ck, arch)).unwrap();
        let want = cpu.forward(&ids).unwrap();
        // Prefill passes of 16 tokens, and bindings small enough to cut the
        // embedding (and LM head) into chunks, so every chunked path runs;
        // the wide heads' KV cache needs a little more.
        let binding = if name == "wide-heads" { 112 } else { 16 } * 1024;
        for opts in [
            EngineOptions {
                max_context: 96,
                ..Default::default()
            },
            EngineOptions {
                max_context: 96,
                prefill_chunk: 16,
                max_binding: Some(binding),
                ..Default::default()
            },
        ] {
            let gm = load(&gpu, &ck, opts.clone());
            let mut s = gm.session();
            let got = block_on(gm.prefill(&mut s, &ids, Logits::All)).unwrap();
            let d = rel_diff(&got, &want);
            eprintln!(
                "{name} ({dtype}) chunk {}: whole prompt {d:.2e}",
                gm.footprint.chunk
            );
            assert!(d < 1e-4, "{name}: {d:.3e}");
            // The same sequence as T = 1, uneven pieces and single steps.
            let mut s = gm.session();
            let mut got = Vec::new();
            for piece in [&ids[..1], &ids[1..6], &ids[6..37], &ids[37..80]] {
                got.extend(block_on(gm.prefill(&mut s, piece, Logits::All)).unwrap());
            }
            for &id in &ids[80..] {
                got.extend(block_on(gm.decode_step(&mut s, id)).unwrap());
            }
            let d = rel_diff(&got, &want);
            eprintln!("{name} ({dtype}): pieces and steps {d:.2e}");
            assert!(d < 1e-4, "{name} stepped: {d:.3e}");
        }
        // Greedy continuations agree with the CPU's.
        let gm = load(
            &gpu,
            &ck,
            EngineOptions {
                max_context: 96,
                ..Default::default()
            },
        );
        let mut cs = cpu.new_state(false);
        let want = cpu.generate_greedy(&mut cs, &ids[..20], 12, &[]).unwrap();
        let got = gpu_greedy(&gm, &ids[..20], 12);
        assert_eq!(got, want, "{name}: greedy");
    }
}

#[test]
fn chunked_demo_model_still_matches_the_golden_logits() {
    let Some(gpu) = common::gpu() else { return };
    let fx = fixture("sft.safetensors");
    let ids = ints(&fx, "ids_b");
    // The 259 x 192 bf16 embedding (99 KB) splits in two; passes of 32 tokens.
    let opts = EngineOptions {
        max_context: 160,
        prefill_chunk: 32,
        max_binding: Some(64 * 1024),
        ..Default::default()
    };
    let m = load(&gpu, &open("www/demo/sft"), opts);
    assert_eq!(m.footprint.chunk, 32);
    let got = block_on(m.prefill(&mut m.session(), &ids, Logits::All)).unwrap();
    let d = rel_diff(&got, &floats(&fx, "logits_b"));
    eprintln!("chunked demo: {d:.2e}");
    assert!(d < 1e-4, "{d:.3e}");
}

fn tensors_of<S: ByteSource>(ck: &Checkpoint<S>, arch: &Arch) -> Vec<(String, WDtype, Vec<u64>)> {
    arch.expected_tensors()
        .into_iter()
        .map(|(n, s)| {
            let dtype = WDtype::of(ck.tensor(&n).unwrap().dtype, &n).unwrap();
            (n, dtype, s)
        })
        .collect()
}

#[test]
fn a_model_too_large_is_refused_before_any_upload_with_the_limit_named() {
    // A HypeNet-2B-shaped checkpoint of headers only: plan() needs no data.
    let dir = tempfile::tempdir().unwrap();
    qklab::synth::write_dir(dir.path(), "2b", 2, Dtype::BF16, 1, true).unwrap();
    let ck = block_on(Checkpoint::open(FsSource::open(dir.path()).unwrap())).unwrap();
    let arch = arch_of(&ck).unwrap();
    let tensors = tensors_of(&ck, &arch);
    // WebGPU's default limits: 128 MiB bindings, 256 MiB buffers.
    let limits = wgpu::Limits::default();
    let fp = plan(&arch, &tensors, &limits, &EngineOptions::default()).unwrap();
    assert!(fp.weights > 3_500_000_000, "{fp:?}");
    let err = |limits: &wgpu::Limits, opts: EngineOptions| {
        plan(&arch, &tensors, limits, &opts)
            .unwrap_err()
            .to_string()
    };

    // One row of 151936 logits does not fit a 512 KiB binding.
    let small = wgpu::Limits {
        max_storage_buffer_binding_size: 512 * 1024,
        ..limits.clone()
    };
    let e = err(&small, EngineOptions::default());
    assert!(
        e.contains("maxStorageBufferBindingSize") && e.contains("the KV cache"),
        "{e}"
    );
    // A budget below the weights: the footprint and the excess are named.
    let e = err(
        &limits,
        EngineOptions {
            memory_budget: Some(2 << 30),
            ..Default::default()
        },
    );
    assert!(
        e.contains("memory budget (2.00 GiB)") && e.contains("over"),
        "{e}"
    );
    // A 4 KiB binding cannot hold one row of a 2048-wide matrix.
    let tiny = wgpu::Limits {
        max_storage_buffer_binding_size: 1 << 12,
        max_buffer_size: 1 << 12,
        ..limits.clone()
    };
    let e = err(
        &tiny,
        EngineOptions {
            max_context: 1,
            ..Default::default()
        },
    );
    assert!(
        e.contains("maxStorageBufferBindingSize") && e.contains("by"),
        "{e}"
    );

    // And load() refuses before reading a single tensor byte.
    let Some(gpu) = common::gpu() else { return };
    let before = ck.bytes_read();
    let opts = EngineOptions {
        memory_budget: Some(1 << 30),
        ..Default::default()
    };
    let e = block_on(GpuModel::load(&gpu, &ck, arch.clone(), opts, &mut |_| {
        panic!("no upload may start")
    }))
    .err()
    .unwrap();
    assert!(e.to_string().contains("memory budget"), "{e}");
    assert_eq!(ck.bytes_read(), before, "tensor data was read");
}

#[test]
fn a_long_prompt_in_one_pass_matches_the_cpu_reference() {
    // 700 tokens in one pass: Lightning layers cut the sequence into parts
    // run side by side, attention tiles 64 rows; then single decode steps
    // split their keys.
    let Some(gpu) = common::gpu() else { return };
    let ck = open("www/demo/sft");
    let ids: Vec<u32> = (0..700u32).map(|i| (i * 131 + 5) % 256).collect();
    let cpu = block_on(CpuModel::load(&ck, arch_of(&ck).unwrap())).unwrap();
    let want = cpu.forward(&ids).unwrap();
    let m = load(
        &gpu,
        &ck,
        EngineOptions {
            max_context: 704,
            ..Default::default()
        },
    );
    let mut s = m.session();
    let mut got = block_on(m.prefill(&mut s, &ids[..690], Logits::All)).unwrap();
    for &id in &ids[690..] {
        got.extend(block_on(m.decode_step(&mut s, id)).unwrap());
    }
    let d = rel_diff(&got, &want);
    eprintln!("700 tokens: {d:.2e}");
    assert!(d < 1e-4, "{d:.3e}");
}
