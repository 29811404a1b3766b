//! The CPU reference model against the golden logits of the PyTorch
//! reference (tests/fixtures/demo, written by reference/make_fixtures.py):
//! max |diff| / max |logit| < 1e-4 in f32, for pre and sft on all three
//! sequences, and the same greedy next token.

use qklab::checkpoint::Checkpoint;
use qklab::model::cpu::{alibi_slopes, CpuModel};
use qklab::source::{block_on, FsSource};
use qklab::summary::arch_of;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn model(dir: &str) -> CpuModel {
    let ck = block_on(Checkpoint::open(FsSource::open(&root().join(dir)).unwrap())).unwrap();
    let arch = arch_of(&ck).unwrap();
    block_on(CpuModel::load(&ck, arch)).unwrap()
}

fn fixture(name: &str) -> Checkpoint<FsSource> {
    block_on(Checkpoint::open(FsSource::open(&root().join("tests/fixtures/demo").join(name)).unwrap())).unwrap()
}

fn ints(ck: &Checkpoint<FsSource>, name: &str) -> Vec<u32> {
    let bytes = block_on(ck.read_tensor_bytes(name)).unwrap();
    bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u32).collect()
}

#[test]
fn cpu_model_matches_the_golden_logits() {
    for (dir, file) in [("www/demo/pre", "pre.safetensors"), ("www/demo/sft", "sft.safetensors")] {
        let m = model(dir);
        let fx = fixture(file);
        for seq in ["a", "b", "c"] {
            let ids = ints(&fx, &format!("ids_{seq}"));
            let want = block_on(fx.read_tensor_f32(&format!("logits_{seq}"), "test")).unwrap();
            let got = m.forward(&ids).unwrap();
            assert_eq!(got.len(), want.len());
            let scale = want.iter().fold(0.0f32, |s, x| s.max(x.abs()));
            let diff = got.iter().zip(&want).fold(0.0f32, |s, (a, b)| s.max((a - b).abs()));
            eprintln!("{dir} seq {seq}: T={} max|diff|/max|logit| = {:.2e}", ids.len(), diff / scale);
            assert!(diff / scale < 1e-4, "{dir} seq {seq}: {:.3e}", diff / scale);
            // The greedy next token after the whole sequence agrees.
            let v = 259;
            let last = |l: &[f32]| {
                let row = &l[l.len() - v..];
                (0..v).max_by(|&i, &j| row[i].total_cmp(&row[j])).unwrap()
            };
            assert_eq!(last(&got), last(&want), "{dir} seq {seq}: greedy token");
        }
    }
}

#[test]
fn alibi_slopes_follow_the_spec() {
    let eight: Vec<f64> = (1..=8).map(|h| 2f64.powi(-h)).collect();
    assert_eq!(alibi_slopes(8), eight);
    // n = 6: the 4 slopes of m = 4, then slopes(8)[0] and slopes(8)[2].
    let six = [2f64.powi(-2), 2f64.powi(-4), 2f64.powi(-6), 2f64.powi(-8), 2f64.powi(-1), 2f64.powi(-3)];
    assert_eq!(alibi_slopes(6), six);
}
