//! Jet-Nemotron (issue 27) on the CPU engines against NVlabs' own
//! modeling code: tests/fixtures/jet holds a tiny random `jet_nemotron`
//! (layers `jet jet attn jet swa jet`: JetBlocks, a full softmax layer and
//! one with a 16-token sliding window) in f32 and bf16, and its logits on
//! 150 ids made by NVlabs/Jet-Nemotron's `jetai/modeling/hf/` run on the
//! CPU (reference/jet_fixtures.py, tests/fixtures/jet/README.md). The
//! reference and the CPU engine must reproduce them within 1e-4 of the
//! largest logit: whole, in pieces that cross the chunked gated delta
//! rule's 64-token chunks and the window, one decode step at a time, and
//! (the CPU engine) in a ragged batch. A sliding-window layer keeps only
//! what its window still sees, unless the session captures for routing,
//! whose probabilities then stop at the window.

mod common;
use common::{open, rel_diff};

use qklab::config::{arch_of, Mixer};
use qklab::model::cpu::CpuModel;
use qklab::model::engine::{Batch, Device, Engine, Logits};
use qklab::model::fit::EngineOptions;
use qklab::source::block_on;

const CHECKPOINTS: [&str; 2] = ["jet-f32", "jet-bf16"];
/// The fixtures' sliding-window layer and its window.
const SWA: usize = 4;
const WINDOW: usize = 16;

fn golden(name: &str) -> (Vec<u32>, Vec<f32>) {
    common::golden("tests/fixtures/jet", name)
}

fn load(device: Device, name: &str) -> Engine {
    let ck = open(&format!("tests/fixtures/jet/{name}"));
    let arch = arch_of(&ck).unwrap();
    block_on(Engine::load(
        device,
        &ck,
        arch,
        EngineOptions {
            max_context: 160,
            ..Default::default()
        },
        &mut |_| {},
    ))
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn the_fixtures_are_the_hybrid_the_tests_expect() {
    for name in CHECKPOINTS {
        let arch = arch_of(&open(&format!("tests/fixtures/jet/{name}"))).unwrap();
        let jet = Mixer::Jet;
        assert_eq!(
            arch.mixers,
            [jet, jet, Mixer::Softmax, jet, Mixer::Softmax, jet],
            "{name}"
        );
        assert_eq!(arch.window(SWA), Some(WINDOW as u64), "{name}");
        assert_eq!(arch.window(2), None, "{name}");
    }
}

#[test]
fn the_reference_matches_nvlabs() {
    for name in CHECKPOINTS {
        let ck = open(&format!("tests/fixtures/jet/{name}"));
        let model = block_on(CpuModel::load(&ck, arch_of(&ck).unwrap())).unwrap();
        let (ids, want) = golden(name);
        let d = rel_diff(&model.forward(&ids).unwrap(), &want);
        eprintln!("{name}: reference (CpuModel) {d:.2e}");
        assert!(d < 1e-4, "{name}: reference {d:.3e}");
    }
}

/// An engine against NVlabs' logits: whole, then in pieces (70 + 65
/// tokens, then single steps), so the dynamic convolution's history, the
/// delta rule's state, the caches (the window's trimmed between calls) and
/// RoPE positions are all carried.
fn engine_matches_nvlabs(label: &str, device: Device) {
    for name in CHECKPOINTS {
        let e = load(device, name);
        let (ids, want) = golden(name);
        common::whole_and_in_pieces(&e, &ids, &want, &format!("{name}: {label}"));
    }
}

#[test]
fn the_reference_engine_matches_nvlabs() {
    engine_matches_nvlabs("reference", Device::Reference);
}

#[test]
fn the_cpu_engine_matches_nvlabs() {
    engine_matches_nvlabs("CPU engine", Device::Cpu);
}

#[test]
fn a_ragged_batch_on_the_cpu_engine_matches_nvlabs() {
    // Two sequences of the same ids at different places, packed together:
    // one crosses a chunk while the other decodes, or idles.
    let v = 259;
    for name in CHECKPOINTS {
        let e = load(Device::Cpu, name);
        let (ids, want) = golden(name);
        let mut b = block_on(e.batch(2, false)).unwrap();
        let mut got: [Vec<f32>; 2] = Default::default();
        let mut at = [0usize, 0];
        let mut feed = |b: &mut Batch, ends: [usize; 2]| {
            let pieces: Vec<&[u32]> = (0..2).map(|i| &ids[at[i]..ends[i]]).collect();
            let rows = block_on(e.prefill_batch(b, &pieces, Logits::All)).unwrap();
            for i in 0..2 {
                got[i].extend(&rows[i]);
                at[i] = ends[i];
            }
        };
        feed(&mut b, [70, 5]);
        feed(&mut b, [71, 100]);
        feed(&mut b, [140, 100]);
        feed(&mut b, [140, 101]);
        for end in 141..=150 {
            feed(&mut b, [end, end - 40]);
        }
        for (i, rows) in got.iter().enumerate() {
            let n = rows.len() / v;
            let d = rel_diff(rows, &want[..n * v]);
            eprintln!("{name}: CPU engine batch, sequence {i} ({n} tokens) {d:.2e}");
            assert!(d < 1e-4, "{name}: sequence {i} {d:.3e}");
        }
    }
}

/// The positions sequence 0's layer `l` keeps on a CPU engine.
fn cached(b: &Batch, l: usize) -> std::ops::Range<usize> {
    match b {
        Batch::Reference(s) => s[0].cached(l),
        Batch::Cpu(s) => s[0].cached(l),
        Batch::Gpu(_) => unreachable!("CPU engines only"),
    }
    .expect("a softmax layer")
}

#[test]
fn a_window_layer_keeps_only_what_its_window_sees() {
    for device in [Device::Reference, Device::Cpu] {
        let e = load(device, "jet-f32");
        let (ids, _) = golden("jet-f32");
        let mut s = e.session(false);
        block_on(e.prefill(&mut s, &ids[..130], Logits::None)).unwrap();
        assert_eq!(cached(&s, SWA), 130 - (WINDOW - 1)..130);
        assert_eq!(cached(&s, 2), 0..130, "a full layer keeps everything");
        for (i, &id) in ids[130..].iter().enumerate() {
            block_on(e.prefill(&mut s, &[id], Logits::None)).unwrap();
            let pos = 131 + i;
            assert_eq!(cached(&s, SWA), pos - (WINDOW - 1)..pos);
        }
        // Shorter than the window: everything stays.
        let mut s = e.session(false);
        block_on(e.prefill(&mut s, &ids[..9], Logits::None)).unwrap();
        assert_eq!(cached(&s, SWA), 0..9);
        // With capture, routing needs every row.
        let mut s = e.session(true);
        block_on(e.prefill(&mut s, &ids, Logits::None)).unwrap();
        assert_eq!(cached(&s, SWA), 0..150);
    }
}

#[test]
fn capture_changes_no_logit() {
    for device in [Device::Reference, Device::Cpu] {
        let e = load(device, "jet-f32");
        let (ids, _) = golden("jet-f32");
        let run = |capture: bool| {
            let mut s = e.session(capture);
            let mut got = block_on(e.prefill(&mut s, &ids[..100], Logits::All)).unwrap();
            for &id in &ids[100..110] {
                got.extend(block_on(e.prefill(&mut s, &[id], Logits::All)).unwrap());
            }
            got
        };
        let d = rel_diff(&run(true), &run(false));
        assert!(d < 1e-6, "capture moved the logits by {d:.3e}");
    }
}

#[test]
fn routing_of_a_window_layer_stops_at_the_window() {
    let needle = 20..30;
    for device in [Device::Reference, Device::Cpu] {
        let e = load(device, "jet-f32");
        let (ids, _) = golden("jet-f32");
        let mut s = e.session(true);
        block_on(e.prefill(&mut s, &ids, Logits::None)).unwrap();
        let r = block_on(e.routing_stats(&s, SWA, 8, needle.start..needle.end)).unwrap();
        let full = block_on(e.routing_stats(&s, 2, 8, needle.start..needle.end)).unwrap();
        for t in 0..r.rows {
            for h in 0..r.heads {
                let at = t * r.heads + h;
                // Every key a row sees is at most WINDOW - 1 back.
                assert!(
                    r.dist[at] <= (WINDOW - 1) as f32 + 1e-3,
                    "row {t}: {}",
                    r.dist[at]
                );
                if t >= needle.end as usize + WINDOW - 1 {
                    assert_eq!(r.mass[at], 0.0, "row {t} head {h} sees the needle");
                }
                let blocks = &r.pooled[(h * r.rows + t) * r.blocks..][..r.blocks];
                let sum: f32 = blocks.iter().sum();
                assert!((sum - 1.0).abs() < 1e-4, "row {t}: {sum}");
                for (b, &p) in blocks.iter().enumerate() {
                    if (b + 1) * 8 + WINDOW <= t + 1 {
                        assert_eq!(p, 0.0, "row {t}, block {b} is out of the window");
                    }
                }
            }
        }
        // The full layer's late rows still reach the needle.
        let late = (r.rows - 1) * r.heads;
        assert!(full.mass[late..late + r.heads].iter().any(|&m| m > 0.0));
    }
}

#[test]
fn the_memory_estimate_counts_a_window_not_the_context() {
    use qklab::model::mixer::cpu_state_floats;
    let arch = arch_of(&open("tests/fixtures/jet/jet-f32")).unwrap();
    let a = &arch.attn;
    let kv_row = 2 * a.kv_heads * a.head_dim;
    let captured_row = a.heads * (a.head_dim + 1);
    for tokens in [5u64, 1000] {
        let w = tokens.min(WINDOW as u64);
        assert_eq!(cpu_state_floats(&arch, SWA, tokens, false), w * kv_row);
        assert_eq!(cpu_state_floats(&arch, 2, tokens, false), tokens * kv_row);
        assert_eq!(
            cpu_state_floats(&arch, SWA, tokens, true),
            tokens * (kv_row + captured_row),
            "with capture a window keeps every row"
        );
    }
    // A JetBlock's state does not grow: S of each head and v's last K-1 rows.
    let g = &arch.gdn;
    let state = g.value_heads * g.key_dim * g.value_dim + (g.conv_kernel - 1) * g.value_width();
    assert_eq!(cpu_state_floats(&arch, 0, 1000, false), state);
}
