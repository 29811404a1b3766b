//! The demo's recorded results (www/demo/results.json, written by
//! scripts/record-demo.sh): made from the checkpoints shipped beside them
//! (their fingerprints match), every cell complete with the reference's
//! seeds, and each sample's score what RULER's rule gives its text.

mod common;

use qklab::source::block_on;
use qklab::sweep::SampleResult;
use qklab::writer::SourceFingerprint;

fn results() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/demo/results.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn recorded_results_are_of_the_shipped_checkpoints() {
    let r = results();
    for side in ["pre", "sft"] {
        let now = block_on(SourceFingerprint::of(
            side,
            &common::open(&format!("www/demo/{side}")),
        ))
        .unwrap();
        let then: SourceFingerprint =
            serde_json::from_value(r["checkpoints"][side].clone()).unwrap();
        assert_eq!(now, then, "www/demo/{side} is not the checkpoint the results were recorded with: run scripts/record-demo.sh");
    }
    for key in ["command", "adapter", "date"] {
        assert!(
            r["recorded"][key].as_str().is_some_and(|s| !s.is_empty()),
            "recorded.{key}"
        );
    }
}

#[test]
fn every_cell_is_complete_and_scored_by_the_rule() {
    let r = results();
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
            assert_eq!(mine.len(), 50, "{task} {m}: 5 depths x 10 samples");
            for (d, depth) in [0.0, 0.25, 0.5, 0.75, 1.0].iter().enumerate() {
                for s in 0..10 {
                    let seed = qklab::prompts::sample_seed(12345, s, d, 2048);
                    assert!(
                        mine.iter().any(|x| x.depth == *depth && x.seed == seed),
                        "{task} {m}: depth {depth} seed {seed}"
                    );
                }
            }
            for x in &mine {
                assert_eq!(
                    x.score,
                    qklab::sweep::score(&x.generated, &x.value),
                    "{task} {m} seed {}",
                    x.seed
                );
            }
        }
    }
}
