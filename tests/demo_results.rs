//! Every demo pair's recorded results (www/<dir>/results.json, written by
//! scripts/record-demo.sh; the pairs are `app::demo::DEMO_PAIRS`): made
//! from the checkpoints shipped beside them (their fingerprints match),
//! every cell complete with the reference's seeds, each sample's score
//! what RULER's rule gives its text, and what the guide says of the pair
//! (its layers, its retrieval head) true of those checkpoints.

mod common;

use qklab::app::demo::{LayerKind, Recorded, DEMO_PAIRS};
use qklab::config::arch_of;
use qklab::source::block_on;
use qklab::sweep::SampleResult;
use qklab::writer::SourceFingerprint;

fn results(dir: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("www")
        .join(dir)
        .join("results.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; record it with scripts/record-demo.sh QKLAB BACKEND www/{dir}",
            path.display()
        )
    });
    serde_json::from_slice(&bytes).unwrap()
}

/// The pairs www/demo-pairs.json says the page ships (a pair's code can
/// land before its training: docs/demo-reproduction.md).
fn shipped() -> Vec<&'static qklab::app::demo::DemoPair> {
    let www = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www");
    let keys: Vec<String> =
        serde_json::from_slice(&std::fs::read(www.join("demo-pairs.json")).unwrap()).unwrap();
    DEMO_PAIRS
        .iter()
        .filter(|p| keys.iter().any(|k| k == p.key))
        .collect()
}

#[test]
fn a_demo_pair_is_shipped_whole_or_not_at_all() {
    let www = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www");
    assert!(
        shipped().iter().any(|p| p.dir == "demo"),
        "the HypeNet demo is shipped"
    );
    let present: Vec<&str> = DEMO_PAIRS
        .iter()
        .filter(|p| www.join(p.dir).exists())
        .map(|p| p.key)
        .collect();
    let listed: Vec<&str> = shipped().iter().map(|p| p.key).collect();
    assert_eq!(
        listed, present,
        "www/demo-pairs.json lists the pairs whose folders are in www/"
    );
    for pair in DEMO_PAIRS.iter().filter(|p| www.join(p.dir).exists()) {
        for part in [
            "results.json",
            "pre/config.json",
            "pre/model.safetensors",
            "sft/config.json",
            "sft/model.safetensors",
        ] {
            assert!(
                www.join(pair.dir).join(part).is_file(),
                "www/{}/{part} is missing: a pair ships whole",
                pair.dir
            );
        }
    }
}

#[test]
fn recorded_results_are_of_the_shipped_checkpoints() {
    for pair in shipped() {
        let dir = pair.dir;
        let r = results(dir);
        for side in ["pre", "sft"] {
            let now = block_on(SourceFingerprint::of(
                side,
                &common::open(&format!("www/{dir}/{side}")),
            ))
            .unwrap();
            let then: SourceFingerprint =
                serde_json::from_value(r["checkpoints"][side].clone()).unwrap();
            assert_eq!(now, then, "www/{dir}/{side} is not the checkpoint the results were recorded with: run scripts/record-demo.sh QKLAB BACKEND www/{dir}");
        }
        for key in ["command", "adapter", "date"] {
            assert!(
                r["recorded"][key].as_str().is_some_and(|s| !s.is_empty()),
                "www/{dir}: recorded.{key}"
            );
        }
    }
}

#[test]
fn every_cell_is_complete_and_scored_by_the_rule() {
    for pair in shipped() {
        let dir = pair.dir;
        let r = results(dir);
        let models: Vec<&str> = r["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        for task in ["s1", "mk"] {
            let samples: Vec<SampleResult> =
                serde_json::from_value(r["niah"][task]["samples"].clone()).unwrap();
            for m in &models {
                let mine: Vec<&SampleResult> = samples.iter().filter(|s| s.model == *m).collect();
                assert_eq!(
                    mine.len(),
                    50,
                    "www/{dir} {task} {m}: 5 depths x 10 samples"
                );
                for (d, depth) in [0.0, 0.25, 0.5, 0.75, 1.0].iter().enumerate() {
                    for s in 0..10 {
                        let seed = qklab::prompts::sample_seed(12345, s, d, 2048);
                        assert!(
                            mine.iter().any(|x| x.depth == *depth && x.seed == seed),
                            "www/{dir} {task} {m}: depth {depth} seed {seed}"
                        );
                    }
                }
                for x in &mine {
                    assert_eq!(
                        x.score,
                        qklab::sweep::score(&x.generated, &x.value),
                        "www/{dir} {task} {m} seed {}",
                        x.seed
                    );
                }
            }
        }
    }
}

/// What the guide tells of a pair comes from its recording: the family and
/// every layer's kind as the shipped checkpoint's config resolves them, a
/// retrieval head that is a head of a full-attention layer, with its
/// needle mass in pre, sft and QK-Restore, and arithmetic only of
/// recorded models.
#[test]
fn the_guide_reads_the_pair_from_its_recording() {
    for pair in shipped() {
        let dir = pair.dir;
        let r: Recorded = serde_json::from_value(results(dir)).unwrap();
        let ck = common::open(&format!("www/{dir}/pre"));
        let arch = arch_of(&ck).unwrap();
        let layers = r
            .pair
            .as_ref()
            .unwrap_or_else(|| panic!("www/{dir}: no `pair` in the recording"));
        assert_eq!(layers.family, arch.family.name(), "www/{dir}: family");
        assert_eq!(
            layers.family, pair.name,
            "www/{dir}: the page's name for it"
        );
        let kinds: Vec<(usize, LayerKind, Option<u64>)> = (0..arch.num_layers())
            .map(|l| {
                let kind = match (arch.softmax_layers().contains(&l), arch.window(l)) {
                    (true, Some(_)) => LayerKind::Window,
                    (true, None) => LayerKind::Full,
                    (false, _) => LayerKind::Linear,
                };
                (l, kind, arch.window(l))
            })
            .collect();
        let recorded: Vec<(usize, LayerKind, Option<u64>)> = layers
            .layers
            .iter()
            .map(|l| (l.index, l.kind, l.window))
            .collect();
        assert_eq!(recorded, kinds, "www/{dir}: the layers' kinds");
        assert_eq!(
            r.layers_of(LayerKind::Full),
            arch.full_attention_layers(),
            "www/{dir}"
        );
        let head = r
            .retrieval
            .as_ref()
            .unwrap_or_else(|| panic!("www/{dir}: no `retrieval` in the recording"));
        assert!(
            arch.full_attention_layers().contains(&head.layer),
            "www/{dir}: the retrieval head's layer {} is no full-attention layer",
            head.layer
        );
        assert!(
            (head.head as u64) < arch.attn.heads,
            "www/{dir}: head {}",
            head.head
        );
        for m in ["pre", "sft", "qk-restore"] {
            let x = head.needle_mass.get(m).copied();
            assert!(
                x.is_some_and(|x| (0.0..=1.0).contains(&x)),
                "www/{dir}: needle mass of {m}: {x:?}"
            );
        }
        for (k, v) in &r.arithmetic {
            if k == "source" {
                assert!(v.is_string(), "www/{dir}: arithmetic.source");
            } else {
                assert!(r.models.contains(k), "www/{dir}: arithmetic of {k}");
                assert!(v.as_f64().is_some_and(|x| (0.0..=100.0).contains(&x)));
            }
        }
    }
}

/// The layer numbers a text names ("layer 5", "layers 3 and 6", "layers 0, 1 and 2").
fn layers_named(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let words: Vec<&str> = text.split(' ').collect();
    for (i, w) in words.iter().enumerate() {
        if *w != "layer" && *w != "layers" {
            continue;
        }
        for next in &words[i + 1..] {
            if *next == "and" {
                continue;
            }
            let digits = next.trim_end_matches([',', '.', ':', ';', ')']);
            match digits.parse::<usize>() {
                Ok(n) => out.push(n),
                Err(_) => break,
            }
            if digits.len() + 1 < next.len() || next.ends_with(['.', ':', ';', ')']) {
                break;
            }
        }
    }
    out
}

/// The guide's four texts, as the page shows them for each pair, name only
/// the pair's layers, each as what it is (the retrieval head's layer a
/// full-attention one, a window only where the pair has one), and the
/// pair's own linear mixer, never the other's.
#[test]
fn the_guide_names_only_the_pairs_layers() {
    assert_eq!(
        layers_named("layers 0, 1 and 2, then layer 5."),
        [0, 1, 2, 5]
    );
    for pair in shipped() {
        let dir = pair.dir;
        let r: Recorded = serde_json::from_value(results(dir)).unwrap();
        let layers = &r.pair.as_ref().unwrap().layers;
        for mlp_moved in [None, Some(false), Some(true)] {
            let texts = qklab::app::demo::guide_texts(Some(&r), mlp_moved);
            for (step, text) in texts.iter().enumerate() {
                for l in layers_named(text) {
                    assert!(
                        layers.iter().any(|x| x.index == l),
                        "www/{dir} step {}: layer {l}: {text}",
                        step + 1
                    );
                }
                for (mixer, word) in [("lightning-attn", "Lightning"), ("jet", "JetBlock")] {
                    if !layers.iter().any(|x| x.mixer == mixer) {
                        assert!(!text.contains(word), "www/{dir} step {}: {text}", step + 1);
                    }
                }
                if r.windows().is_empty() {
                    assert!(
                        !text.contains("sliding"),
                        "www/{dir} step {}: {text}",
                        step + 1
                    );
                }
            }
            let full = r.layers_of(LayerKind::Full);
            assert!(
                texts[1].contains(&format!(
                    "of the full-attention {} {} back",
                    if full.len() == 1 { "layer" } else { "layers" },
                    qklab::app::demo::and_list(&full)
                )),
                "www/{dir}: the repair names the full-attention layers: {}",
                texts[1]
            );
            let head = r.retrieval.as_ref().unwrap();
            assert!(
                texts[3].starts_with(&format!(
                    "Head {} of layer {} (full attention)",
                    head.head, head.layer
                )),
                "www/{dir}: {}",
                texts[3]
            );
            if let [(w, _)] = r.windows()[..] {
                assert!(
                    texts[1].contains(&format!("sliding-window layer {w} included")),
                    "www/{dir}: {}",
                    texts[1]
                );
            }
        }
    }
}
