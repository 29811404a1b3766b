//! The CPU engine against the plain reference (within 1e-5 relative on
//! the golden fixtures' sequences and on awkward models), and batches
//! against one sequence at a time on the CPU engine and the GPU: ragged
//! prompts, several batch sizes, prompts cut across prefill passes, HyPE
//! on; the same logits within 1e-5 and the same greedy tokens.

mod common;
use common::{fixture, floats, ints, mem_checkpoint, open, rel_diff, variant};

use qklab::checkpoint::Checkpoint;
use qklab::config::arch_of;
use qklab::config::LogitsScaling;
use qklab::model::cpu::{argmax, CpuModel};
use qklab::model::engine::Logits;
use qklab::model::engine::{Device, Engine};
use qklab::model::fit::EngineOptions;
use qklab::safetensors::Dtype;
use qklab::source::{block_on, ByteSource};

fn engine<S: ByteSource>(device: Device, ck: &Checkpoint<S>, opts: EngineOptions) -> Engine {
    block_on(Engine::load(
        device,
        ck,
        arch_of(ck).unwrap(),
        opts,
        &mut |_| {},
    ))
    .unwrap()
}

fn logits(e: &Engine, ids: &[u32]) -> Vec<f32> {
    block_on(e.prefill(&mut e.session(false), ids, Logits::All)).unwrap()
}

#[test]
fn cpu_engine_matches_the_reference_on_the_golden_sequences() {
    for (dir, file) in [
        ("www/demo/pre", "pre.safetensors"),
        ("www/demo/sft", "sft.safetensors"),
    ] {
        let (ck, fx) = (open(dir), fixture(file));
        let reference = block_on(CpuModel::load(&ck, arch_of(&ck).unwrap())).unwrap();
        let fast = engine(Device::Cpu, &ck, EngineOptions::default());
        for seq in ["a", "b", "c"] {
            let ids = ints(&fx, &format!("ids_{seq}"));
            let got = logits(&fast, &ids);
            let d = rel_diff(&got, &reference.forward(&ids).unwrap());
            let golden = rel_diff(&got, &floats(&fx, &format!("logits_{seq}")));
            eprintln!(
                "{dir} seq {seq}: T={} vs reference {d:.2e}, vs PyTorch {golden:.2e}",
                ids.len()
            );
            assert!(d < 1e-5, "{dir} seq {seq}: {d:.3e} from the reference");
            assert!(
                golden < 1e-4,
                "{dir} seq {seq}: {golden:.3e} from the golden logits"
            );
        }
        let ids = ints(&fx, "ids_c");
        let greedy =
            block_on(fast.generate_greedy(&mut fast.session(false), &ids, 16, &[])).unwrap();
        assert_eq!(greedy, ints(&fx, "greedy_c"), "{dir}: greedy continuation");
    }
}

#[test]
fn cpu_engine_matches_the_reference_on_awkward_models() {
    let ids: Vec<u32> = (0..150u32).map(|i| (i * 97 + 13) % 259).collect();
    for (name, dtype) in [
        ("base", Dtype::BF16),
        ("gqa4-hype", Dtype::F16),
        ("mha-rope-bias", Dtype::F32),
        ("wide-heads", Dtype::BF16),
    ] {
        let ck = mem_checkpoint(&variant(name), dtype, 7);
        let reference = block_on(CpuModel::load(&ck, arch_of(&ck).unwrap())).unwrap();
        let want = reference.forward(&ids).unwrap();
        let fast = engine(Device::Cpu, &ck, EngineOptions::default());
        let d = rel_diff(&logits(&fast, &ids), &want);
        eprintln!("{name} ({dtype}): {d:.2e}");
        assert!(d < 1e-5, "{name}: {d:.3e}");
        // Pieces and single steps continue the same sequence.
        let mut s = fast.session(false);
        let mut got = Vec::new();
        for piece in [&ids[..1], &ids[1..70], &ids[70..140]] {
            got.extend(block_on(fast.prefill(&mut s, piece, Logits::All)).unwrap());
        }
        for &id in &ids[140..] {
            got.extend(block_on(fast.prefill(&mut s, &[id], Logits::All)).unwrap());
        }
        let d = rel_diff(&got, &want);
        assert!(d < 1e-5, "{name} in pieces: {d:.3e}");
    }
}

/// Ragged prompts: one token, a short one, ones longer than a prefill
/// pass, and the demo's golden sequence.
fn prompts() -> Vec<Vec<u32>> {
    let fx = fixture("pre.safetensors");
    let mut out: Vec<Vec<u32>> = [1usize, 17, 150, 90]
        .iter()
        .map(|&n| (0..n as u32).map(|i| (i * 31 + 7) % 256).collect())
        .collect();
    out.push(ints(&fx, "ids_c"));
    out
}

/// Every sequence alone, then in batches of each size: the last-row
/// logits within 1e-5 and 6 greedy tokens decoded together equal alone.
fn batches_equal_single(e: &Engine, label: &str) {
    let prompts = prompts();
    let v = e.arch().vocab_size as usize;
    let mut alone = Vec::new();
    for p in &prompts {
        let mut s = e.session(false);
        let last = block_on(e.prefill(&mut s, p, Logits::Last)).unwrap();
        let greedy = block_on(e.generate_greedy(&mut e.session(false), p, 7, &[])).unwrap();
        alone.push((last, greedy));
    }
    for size in [1, 2, 3, prompts.len()] {
        for group in prompts.chunks(size).zip(alone.chunks(size)) {
            let (ps, want) = group;
            let refs: Vec<&[u32]> = ps.iter().map(|p| p.as_slice()).collect();
            let mut b = block_on(e.batch(refs.len(), false)).unwrap();
            let rows = block_on(e.prefill_batch(&mut b, &refs, Logits::Last)).unwrap();
            let mut first = Vec::new();
            for (j, (row, (last, greedy))) in rows.iter().zip(want).enumerate() {
                assert_eq!(row.len(), v);
                let d = rel_diff(row, last);
                assert!(d < 1e-5, "{label}: batch of {size}, sequence {j}: {d:.3e}");
                first.push(argmax(row));
                assert_eq!(
                    first[j], greedy[0],
                    "{label}: batch of {size}, sequence {j}: first token"
                );
            }
            let seqs: Vec<usize> = (0..refs.len()).collect();
            let rest = block_on(e.decode(&mut b, &seqs, &first, 6)).unwrap();
            for (j, (toks, (_, greedy))) in rest.iter().zip(want).enumerate() {
                assert_eq!(
                    toks.as_slice(),
                    &greedy[1..],
                    "{label}: batch of {size}, sequence {j}: greedy tokens"
                );
            }
        }
    }
}

#[test]
fn batches_equal_one_sequence_at_a_time_on_the_cpu_engine() {
    let ck = open("www/demo/sft");
    let mut e = engine(Device::Cpu, &ck, EngineOptions::default());
    batches_equal_single(&e, "cpu");
    e.set_logits_scaling(LogitsScaling::Hype(500.0));
    batches_equal_single(&e, "cpu, HyPE");
}

#[test]
fn batches_equal_one_sequence_at_a_time_on_the_gpu() {
    let Some(gpu) = common::gpu() else { return };
    let ck = open("www/demo/sft");
    // Passes of 64 rows: the longer prompts are cut across passes, and a
    // pass holds pieces of several sequences.
    let opts = EngineOptions {
        max_context: 512,
        prefill_chunk: 64,
        ..Default::default()
    };
    let mut e = engine(Device::Gpu(&gpu), &ck, opts);
    batches_equal_single(&e, "gpu");
    e.set_logits_scaling(LogitsScaling::Hype(500.0));
    batches_equal_single(&e, "gpu, HyPE");
}
