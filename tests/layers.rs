//! `qklab layers` (issue 19): an ablated layer computes exactly what a
//! checkpoint with that layer's tensors zeroed does when run as a plain
//! checkpoint (the file written here by hand, not by the engine's swap),
//! on the CPU engine and the GPU, for a Qwen2 (q bias), a Llama in bf16
//! and the demo HypeNet (q norm); the ranking follows the drops, does not
//! depend on anything but the seed, finds the demo's retrieval layer, and
//! its baseline, sft and repair scores are what a plain sweep of each
//! checkpoint (the repair written out by the merge) gives.

mod common;

use std::path::{Path, PathBuf};

use qklab::app::layers::{
    ranking, run_layers, top_of, Ablation, Ablator, LayerScore, LayersReport, LayersSpec,
};
use qklab::app::merge::{merge_pair, plan_sources};
use qklab::app::model::{Backend, BackendChoice, OpenModel};
use qklab::app::sweep::{mean_recall, run_sweep, SweepSpec};
use qklab::model::engine::Logits;
use qklab::model::engine::{Device, Engine};
use qklab::model::fit::EngineOptions;
use qklab::prompts::TaskKind;
use qklab::source::{block_on, FsSource};
use qklab::writer::write_to_dir;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn open_model(name: &str, path: &Path) -> OpenModel<FsSource> {
    block_on(OpenModel::open(name, FsSource::open(path).unwrap())).unwrap()
}

/// `model`'s checkpoint as one new safetensors file (with its config and
/// tokenizer) in which `zeroed` hold zeros: the plain checkpoint the
/// ablation must equal, written without the engine.
fn zeroed_copy(model: &OpenModel<FsSource>, from: &Path, zeroed: &[String], out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    for extra in ["config.json", "tokenizer.json"] {
        if from.join(extra).exists() {
            std::fs::copy(from.join(extra), out.join(extra)).unwrap();
        }
    }
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for t in &model.ck.tensors {
        let bytes = block_on(model.ck.read_tensor_bytes(&t.name)).unwrap();
        let bytes = if zeroed.contains(&t.name) {
            vec![0u8; bytes.len()]
        } else {
            bytes
        };
        let range = [data.len(), data.len() + bytes.len()];
        header.insert(
            t.name.clone(),
            serde_json::json!({ "dtype": t.dtype.name(), "shape": t.shape, "data_offsets": range }),
        );
        data.extend(bytes);
    }
    let header = serde_json::to_vec(&header).unwrap();
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend(header);
    file.extend(data);
    std::fs::write(out.join("model.safetensors"), file).unwrap();
}

fn logits(engine: &Engine, ids: &[u32]) -> Vec<f32> {
    block_on(engine.prefill(&mut engine.session(false), ids, Logits::All)).unwrap()
}

fn load(device: Device, m: &OpenModel<FsSource>) -> Engine {
    block_on(Engine::load(
        device,
        &m.ck,
        m.arch.clone(),
        EngineOptions {
            max_context: 128,
            ..Default::default()
        },
        &mut |_| {},
    ))
    .unwrap()
}

#[test]
fn an_ablated_layer_computes_what_its_zeroed_checkpoint_does() {
    let gpu = common::gpu();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("tests/fixtures/hf/qwen2-f32", 1, 2),
        ("tests/fixtures/hf/llama-bf16", 2, 0),
        ("www/demo/pre", 6, 3),
    ];
    for (rel, layer, other) in cases {
        let model = open_model(rel, &repo(rel));
        for ablation in Ablation::ALL {
            let ablator = Ablator::new(&model, ablation);
            let zeroed = ablator.tensors(layer);
            assert!(
                !zeroed.is_empty(),
                "{rel}: {} zeroes nothing",
                ablation.name()
            );
            if rel.contains("qwen2") && ablation == Ablation::ZeroQuery {
                assert_eq!(
                    zeroed.len(),
                    2,
                    "Qwen2's q bias is zeroed with W_Q: {zeroed:?}"
                );
            }
            let copy = dir.path().join(format!(
                "{}-{}-{layer}",
                rel.replace('/', "_"),
                ablation.name()
            ));
            zeroed_copy(&model, &repo(rel), &zeroed, &copy);
            let plain = open_model("zeroed", &copy);
            let other_copy = copy.with_extension(format!("other-{other}"));
            zeroed_copy(&model, &repo(rel), &ablator.tensors(other), &other_copy);
            let other_plain = open_model("other zeroed", &other_copy);
            let ids: Vec<u32> = (0..40).map(|i| (i * 37 + 11) % 250).collect();
            let mut devices = vec![("cpu", Device::Cpu)];
            if let Some(g) = gpu.as_ref() {
                devices.push(("gpu", Device::Gpu(g)));
            }
            for (label, device) in devices {
                let mut engine = load(device, &model);
                let unablated = logits(&engine, &ids);
                block_on(ablator.set(&mut engine, layer, true)).unwrap();
                let ablated = logits(&engine, &ids);
                let want = logits(&load(device, &plain), &ids);
                let what = format!("{rel} {} layer {layer} on {label}", ablation.name());
                assert_eq!(
                    ablated, want,
                    "{what}: the swap must compute the zeroed checkpoint exactly"
                );
                assert_ne!(ablated, unablated, "{what}: the ablation changes nothing");
                // Putting it back restores the model, and ablating another
                // layer afterwards computes that layer's zeroed checkpoint alone.
                block_on(ablator.set(&mut engine, layer, false)).unwrap();
                assert_eq!(logits(&engine, &ids), unablated, "{what}: restored");
                block_on(ablator.set(&mut engine, other, true)).unwrap();
                assert_eq!(
                    logits(&engine, &ids),
                    logits(&load(device, &other_plain), &ids),
                    "{what}: then layer {other} alone"
                );
            }
        }
    }
}

#[test]
fn the_ranking_orders_by_drop_and_breaks_ties_by_layer() {
    let score = |layer, drop| LayerScore {
        layer,
        recall: 50.0 - drop,
        drop,
        cells: Vec::new(),
    };
    let scores = [
        score(0, 1.0),
        score(3, 20.0),
        score(5, 1.0),
        score(7, -4.0),
        score(9, 20.0),
    ];
    assert_eq!(ranking(&scores), vec![3, 9, 0, 5, 7]);
    assert_eq!(top_of(&ranking(&scores), 3), vec![0, 3, 9]);
}

fn report_of(
    backend: &Backend,
    pre: &OpenModel<FsSource>,
    sft: &OpenModel<FsSource>,
    spec: &LayersSpec,
) -> LayersReport {
    block_on(run_layers(backend, pre, Some(sft), spec, &mut |_| true))
        .unwrap()
        .expect("not cancelled")
}

#[test]
fn the_demo_ranking_is_deterministic_and_its_scores_are_plain_sweeps() {
    let (pre, sft) = (
        open_model("pre", &repo("www/demo/pre")),
        open_model("sft", &repo("www/demo/sft")),
    );
    let sweep = SweepSpec::new(
        TaskKind::parse("s1").unwrap(),
        vec![512],
        vec![0.0, 0.5, 1.0],
        2,
        7,
    );
    let spec = LayersSpec {
        sweeps: vec![sweep.clone()],
        ablation: Ablation::ZeroQuery,
        top: Some(1),
    };
    let backend = block_on(Backend::open(BackendChoice::Cpu)).unwrap();
    let first = report_of(&backend, &pre, &sft, &spec);
    let again = report_of(&backend, &pre, &sft, &spec);
    assert_eq!(
        LayersReport {
            seconds: 0.0,
            ..first.clone()
        },
        LayersReport {
            seconds: 0.0,
            ..again
        },
        "same seed, same report"
    );
    assert_eq!(
        first.layers.iter().map(|s| s.layer).collect::<Vec<_>>(),
        pre.arch.softmax_layers()
    );
    assert_eq!(first.ranking, ranking(&first.layers));
    // The demo's retrieval layer: without layer 6's routing the needle is lost.
    let six = first.layers.iter().find(|s| s.layer == 6).unwrap();
    assert!(
        six.drop >= 50.0,
        "ablating layer 6 costs {} points",
        six.drop
    );
    assert_eq!(
        (first.ranking[0], first.top.as_slice()),
        (6, [6].as_slice())
    );
    for s in &first.layers {
        assert!(
            (s.drop - (first.baseline - s.recall)).abs() < 1e-9,
            "layer {}: drop is baseline - recall",
            s.layer
        );
    }
    // The unablated, sft and repaired scores, through the plain sweep of
    // each checkpoint, the repair written out by the merge.
    let repair = first
        .repair
        .as_ref()
        .expect("with sft, the repair is scored");
    assert_eq!(repair.spec.layers.as_deref(), Some(first.top.as_slice()));
    let dir = tempfile::tempdir().unwrap();
    let merged = block_on(merge_pair(&pre.ck, &sft.ck, &repair.spec, &mut |_, _| {})).unwrap();
    block_on(write_to_dir(
        &merged.plan,
        &plan_sources(&pre.ck, &sft.ck),
        dir.path(),
        |_, _| {},
    ))
    .unwrap();
    let models = [pre, sft, open_model("merged", dir.path())];
    let mut plain = Vec::new();
    assert!(block_on(run_sweep(
        &backend,
        &models,
        &sweep,
        None,
        &mut plain,
        &mut |_| true
    ))
    .unwrap());
    let of = |m: &str| {
        mean_recall(
            &plain
                .iter()
                .filter(|r| r.model == m)
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        (first.baseline, repair.sft, repair.merged),
        (of("pre"), of("sft"), of("merged"))
    );

    // Its top is for the demo's layers; a Llama's merge refuses it.
    assert_eq!(first.top_for(&models[0].arch).unwrap(), vec![6]);
    let llama = open_model("llama", &repo("tests/fixtures/hf/llama-f32"));
    let refused = first.top_for(&llama.arch).unwrap_err().to_string();
    assert!(
        refused.contains("covers layers [3, 6]") && refused.contains("[0, 1, 2]"),
        "{refused}"
    );
    let empty = LayersReport {
        top: Vec::new(),
        ..first.clone()
    };
    assert!(empty
        .top_for(&models[0].arch)
        .unwrap_err()
        .to_string()
        .contains("no usable top"));
    // More layers than the model has softmax layers is refused before anything runs.
    let too_many = LayersSpec {
        top: Some(3),
        ..spec.clone()
    };
    let err = block_on(run_layers(
        &backend,
        &models[0],
        None,
        &too_many,
        &mut |_| true,
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("top 3") && err.contains("only 2 softmax layers"),
        "{err}"
    );
}
