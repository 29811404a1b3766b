//! Routing diagnostics: the GPU's per-row reductions (shaders/routing.wgsl)
//! against the naive T x T computation on the CPU reference's captured
//! attention, on the demo model and a NIAH prompt; and the properties the
//! pictures rely on.

mod common;
use common::open;

use qklab::app::model::{Backend, BackendChoice};
use qklab::app::routing::RoutingReport;
use qklab::config::arch_of;
use qklab::model::cpu::CpuModel;
use qklab::model::engine::Logits;
use qklab::model::fit::EngineOptions;
use qklab::model::gpu::GpuModel;
use qklab::model::rowstats::RowStats;
use qklab::routing::{log_ratio, most_affected};
use qklab::source::block_on;

fn prompt() -> Vec<u32> {
    let fx = open("tests/fixtures/demo/pre.safetensors");
    let bytes = block_on(fx.read_tensor_bytes("ids_c")).unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u32)
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn gpu_row_stats_equal_the_naive_cpu_computation() {
    let Some(gpu) = common::gpu() else { return };
    let ids = prompt();
    let ck = open("www/demo/pre");
    let cpu = block_on(CpuModel::load(&ck, arch_of(&ck).unwrap())).unwrap();
    let mut state = cpu.new_state(true);
    cpu.step(&mut state, &ids).unwrap();
    let opts = EngineOptions {
        max_context: ids.len() as u32,
        capture: true,
        ..Default::default()
    };
    let gm = block_on(GpuModel::load(
        &gpu,
        &ck,
        arch_of(&ck).unwrap(),
        opts,
        &mut |_| {},
    ))
    .unwrap();
    let mut s = gm.session();
    block_on(gm.prefill(&mut s, &ids, Logits::None)).unwrap();
    let needle = 200..240;
    for layer in [3usize, 6] {
        // A block size that does not divide T = 497.
        let got = block_on(gm.routing_stats(&s, layer, 32, needle.start as u32..needle.end as u32))
            .unwrap();
        let cap = state.captured(layer).unwrap();
        let want = RowStats::from_probs(ids.len(), cap.heads, 32, needle.clone(), |h, t, s| {
            cap.prob(h, t, s)
        });
        let dist = max_abs_diff(&got.mean_distance(), &want.mean_distance());
        let scale = want.mean_distance().iter().fold(0.0f32, |m, x| m.max(*x));
        eprintln!(
            "layer {layer}: mean distance {:?} (max diff {dist:.2e})",
            got.mean_distance()
        );
        assert!(dist / scale < 1e-4, "distance {dist} of {scale}");
        assert!(max_abs_diff(&got.mass, &want.mass) < 1e-5, "needle mass");
        assert!(
            max_abs_diff(&got.pooled, &want.pooled) < 1e-5,
            "pooled rows"
        );
        for h in 0..got.heads {
            assert!(
                max_abs_diff(&got.pooled_map(h), &want.pooled_map(h)) < 1e-6,
                "pooled map of head {h}"
            );
            // Every attention row sums to one over its key blocks.
            for t in 0..got.rows {
                let row: f32 = got.pooled[(h * got.rows + t) * got.blocks..][..got.blocks]
                    .iter()
                    .sum();
                assert!(
                    (row - 1.0).abs() < 1e-4,
                    "row {t} of head {h} sums to {row}"
                );
            }
        }
    }
}

/// A sliding-window layer (Jet-Nemotron's `swa`, window 16) and a full
/// one of the same model: the GPU's reductions against the plain
/// computation from what the GPU captured (queries, keys, log-sum-exps),
/// with a(t, s) zero outside row t's window. Every row must still sum to
/// one: the attention kernel's lse is over the window too.
#[test]
fn gpu_row_stats_of_a_sliding_window_layer_see_only_the_window() {
    let Some(gpu) = common::gpu() else { return };
    let ck = open("tests/fixtures/jet/jet-f32");
    let ids = common::golden("tests/fixtures/jet", "jet-f32").0;
    let arch = arch_of(&ck).unwrap();
    let opts = EngineOptions {
        max_context: ids.len() as u32,
        capture: true,
        ..Default::default()
    };
    let gm = block_on(GpuModel::load(&gpu, &ck, arch.clone(), opts, &mut |_| {})).unwrap();
    let mut s = gm.session();
    // In two calls: the second's rows see keys the first cached.
    block_on(gm.prefill(&mut s, &ids[..70], Logits::None)).unwrap();
    block_on(gm.prefill(&mut s, &ids[70..], Logits::None)).unwrap();
    let a = &arch.attn;
    let (heads, kv, dh) = (a.heads as usize, a.kv_heads as usize, a.head_dim as usize);
    let rows = ids.len();
    let needle = 40..60;
    for layer in [2usize, 4] {
        let window = arch.window(layer).map_or(0, |w| w as usize);
        let cap = block_on(gm.captured(&s, layer)).unwrap();
        let prob = |h: usize, t: usize, u: usize| {
            if window > 0 && u + window <= t {
                return 0.0;
            }
            let q = &cap.q[(t * heads + h) * dh..][..dh];
            let k = &cap.k[(u * kv + h / (heads / kv)) * dh..][..dh];
            let dot: f32 = q.iter().zip(k).map(|(x, y)| x * y).sum();
            (dot / (dh as f32).sqrt() - cap.lse[t * heads + h]).exp()
        };
        let want = RowStats::from_probs(rows, heads, 32, needle.clone(), prob);
        let got = block_on(gm.routing_stats(&s, layer, 32, 40..60)).unwrap();
        assert!(
            max_abs_diff(&got.dist, &want.dist) < 1e-3,
            "layer {layer}: distance"
        );
        assert!(
            max_abs_diff(&got.mass, &want.mass) < 1e-5,
            "layer {layer}: needle mass"
        );
        assert!(
            max_abs_diff(&got.pooled, &want.pooled) < 1e-5,
            "layer {layer}: pooled rows"
        );
        let widest = (0..rows)
            .map(|t| {
                (0..heads)
                    .map(|h| got.dist[t * heads + h])
                    .fold(0.0f32, f32::max)
            })
            .fold(0.0f32, f32::max);
        if window > 0 {
            // No row reaches further back than its window.
            assert!(
                widest <= (window - 1) as f32 + 1e-3,
                "layer {layer}: {widest}"
            );
        }
        for h in 0..heads {
            for t in 0..rows {
                let row: f32 = got.pooled[(h * rows + t) * got.blocks..][..got.blocks]
                    .iter()
                    .sum();
                assert!(
                    (row - 1.0).abs() < 1e-4,
                    "layer {layer}: row {t} of head {h} sums to {row}"
                );
            }
        }
        eprintln!(
            "layer {layer} (window {window}): mean distance {:?}",
            got.mean_distance()
        );
    }
}

#[test]
fn pooled_maps_log_ratios_and_rankings_behave() {
    // Uniform causal attention over 5 keys: a(t, s) = 1 / (t + 1).
    let r = RowStats::from_probs(5, 1, 2, 0..1, |_, t, _| 1.0 / (t + 1) as f32);
    // Eq. 17: the expected distance of row t is t / 2.
    assert!((r.mean_distance()[0] - (0.0 + 0.5 + 1.0 + 1.5 + 2.0) / 5.0).abs() < 1e-6);
    // Block (0, 0) holds rows 0-1 x keys 0-1: (1 + 0 + 1/2 + 1/2) / 4.
    let map = r.pooled_map(0);
    assert_eq!(r.blocks, 3);
    assert!((map[0] - 0.5).abs() < 1e-6, "{map:?}");
    // The last block is one row and one key: a(4, 4) = 1/5.
    assert!((map[8] - 0.2).abs() < 1e-6, "{map:?}");
    assert!(map[1].abs() < 1e-9, "above the diagonal");
    // Needle on key 0: row t puts 1 / (t + 1) there.
    assert!((r.needle_mass(4..5)[0] - 0.2).abs() < 1e-6);
    assert_eq!(
        log_ratio(&[0.0, 0.5], &[0.0, 0.25], 1e-9),
        vec![0.0, 2f32.ln()]
    );
    // Layer 6 loses distance in 3 heads of 4, layer 3 in 1.
    let before = vec![
        (3, vec![10.0, 10.0, 10.0, 10.0]),
        (6, vec![10.0, 10.0, 10.0, 10.0]),
    ];
    let after = vec![
        (3, vec![9.0, 11.0, 11.0, 11.0]),
        (6, vec![5.0, 9.0, 9.0, 12.0]),
    ];
    assert_eq!(most_affected(&before, &after), vec![(6, 3, 4), (3, 1, 4)]);
}

/// `qklab routing` on the demo pair and its QK-Restore merge, against the
/// PyTorch reference's full T x T computation (reference/routing.py, stored
/// in tests/fixtures/demo/routing-reference.json): the same mean attention
/// distance per head (so the same heads attending closer after SFT), the
/// same needle mass from the question, and the same most affected layer
/// and head (the largest loss of needle mass). It runs on whatever
/// `--backend auto` picks: the GPU where there is one, else the CPU engine
/// (CI), and says which.
#[test]
fn qklab_routing_finds_the_heads_the_reference_says_attend_closer_after_sft() {
    let backend = block_on(Backend::open(BackendChoice::Auto)).unwrap();
    match backend.gpu() {
        Some(g) => eprintln!(
            "qklab routing --backend auto runs on the GPU: {}",
            g.describe()
        ),
        None => eprintln!(
            "qklab routing --backend auto runs on the CPU engine{}",
            backend.note
        ),
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let reference: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("tests/fixtures/demo/routing-reference.json")).unwrap(),
    )
    .unwrap();
    let p = &reference["prompt"];
    let dir = std::env::temp_dir().join(format!("qklab-routing-{}", std::process::id()));
    let merged = dir.join("qk-restore");
    let json = dir.join("routing.json");
    common::ok(common::qklab(&[
        "merge",
        "--pre",
        "www/demo/pre",
        "--sft",
        "www/demo/sft",
        "--method",
        "qk-restore",
        "--out",
        merged.to_str().unwrap(),
    ]));
    let s = |v: &serde_json::Value| v.to_string().trim_matches('"').to_string();
    let out = common::ok(common::qklab(&[
        "routing",
        "www/demo/pre",
        "www/demo/sft",
        merged.to_str().unwrap(),
        "--task",
        &s(&p["task"]),
        "--length",
        &s(&p["length"]),
        "--depth",
        &s(&p["depth"]),
        "--prompt-seed",
        &s(&p["seed"]),
        "--layer",
        "6",
        "--head",
        "0",
        "--block",
        "64",
        "--backend",
        "auto",
        "--json",
        json.to_str().unwrap(),
    ]));
    eprintln!("{out}");
    let bytes = std::fs::read(&json).unwrap();
    let ours: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    // The file reads back as the report type it was written from, byte for byte.
    let typed: RoutingReport = serde_json::from_slice(&bytes).unwrap();
    let again = serde_json::to_vec_pretty(&typed).unwrap();
    assert_eq!(again.len(), bytes.len(), "the report written back: bytes");
    assert!(again == bytes, "the report written back differs");
    assert_eq!(
        ours["models"].as_array().unwrap().len(),
        3,
        "one entry per model"
    );
    let distance = |model: usize, layer: &str| -> Vec<f64> {
        let layers = ours["models"][model]["layers"].as_array().unwrap();
        let l = layers
            .iter()
            .find(|l| l["layer"].as_u64().map(|x| x.to_string()).as_deref() == Some(layer))
            .unwrap();
        l["mean_distance"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let mut worst = 0.0f64;
    for (m, name) in ["pre", "sft", "qk-restore"].iter().enumerate() {
        assert_eq!(
            ours["models"][m]["tokens"], reference["tokens"],
            "{name}: prompt length in tokens"
        );
        let layers = reference["mean_distance"][name].as_object().unwrap();
        assert_eq!(
            ours["models"][m]["layers"].as_array().unwrap().len(),
            layers.len(),
            "{name}: softmax layers"
        );
        for (layer, want) in layers {
            let (got, want) = (distance(m, layer), want.as_array().unwrap());
            assert_eq!(got.len(), want.len(), "{name} layer {layer}: heads");
            for (got, want) in got.iter().zip(want) {
                worst = worst.max((got - want.as_f64().unwrap()).abs() / want.as_f64().unwrap());
            }
        }
    }
    eprintln!("mean attention distance vs the reference: worst relative difference {worst:.2e}");
    assert!(
        worst < 2e-5,
        "mean attention distances differ from the reference by {worst:.2e} relative"
    );
    for (layer, heads) in reference["heads_closer_after_sft"].as_object().unwrap() {
        let (pre, sft) = (distance(0, layer), distance(1, layer));
        assert_eq!(pre.len(), sft.len(), "layer {layer}: heads of pre and sft");
        let closer: Vec<serde_json::Value> = (0..pre.len())
            .filter(|&h| sft[h] < pre[h])
            .map(|h| h.into())
            .collect();
        assert_eq!(
            &closer,
            heads.as_array().unwrap(),
            "layer {layer}: heads closer after SFT"
        );
    }
    // Needle mass from the question's last rows, and the layer and head
    // that lose the most of it: the ranking qklab shows first.
    let mut worst_mass = 0.0f64;
    for (m, name) in ["pre", "sft", "qk-restore"].iter().enumerate() {
        for (layer, want) in reference["needle_mass"][name].as_object().unwrap() {
            let layers = ours["models"][m]["layers"].as_array().unwrap();
            let l = layers
                .iter()
                .find(|l| {
                    l["layer"].as_u64().map(|n| n.to_string()).as_deref() == Some(layer.as_str())
                })
                .unwrap();
            let (got, want) = (
                l["needle_mass"].as_array().unwrap(),
                want.as_array().unwrap(),
            );
            assert_eq!(
                got.len(),
                want.len(),
                "{name} layer {layer}: needle mass per head"
            );
            for (got, want) in got.iter().zip(want) {
                worst_mass = worst_mass.max((got.as_f64().unwrap() - want.as_f64().unwrap()).abs());
            }
        }
    }
    eprintln!("needle mass vs the reference: worst absolute difference {worst_mass:.2e}");
    assert!(
        worst_mass < 1e-5,
        "needle masses differ from the reference by {worst_mass:.2e}"
    );
    let top = &ours["most_affected"].as_array().unwrap()[0];
    let want = &reference["largest_needle_mass_drop"];
    assert_eq!(
        (&top["layer"], &top["head"]),
        (&want["layer"], &want["head"]),
        "most affected layer and head"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
