//! The CPU reference model against the golden outputs of the PyTorch
//! reference (tests/fixtures/demo, written by reference/make_fixtures.py;
//! its README says what each tensor is): max |diff| / max |logit| < 1e-4 in
//! f32 for pre, sft and their QK-Restore merge on all three sequences, the
//! same greedy continuation, and the same attention probabilities and
//! Lightning state. Incremental decoding must agree with one-shot prefill.

mod common;
use common::{fixture, floats, ints, open, rel_diff};

use qklab::checkpoint::Checkpoint;
use qklab::config::arch_of;
use qklab::model::cpu::{alibi_slopes, argmax, CpuModel};
use qklab::source::{block_on, FsSource};

const MODELS: [(&str, &str); 2] = [
    ("www/demo/pre", "pre.safetensors"),
    ("www/demo/sft", "sft.safetensors"),
];

fn model(dir: &str) -> CpuModel {
    let ck = open(dir);
    let arch = arch_of(&ck).unwrap();
    block_on(CpuModel::load(&ck, arch)).unwrap()
}

/// QK-Restore of the demo pair, as the fixture README defines it: sft with
/// q_proj and k_proj of the softmax layers 3 and 6 taken from pre.
fn qk_restore_model() -> CpuModel {
    let mut m = model("www/demo/sft");
    let pre = open("www/demo/pre");
    for l in [3, 6] {
        for p in ["q_proj", "k_proj"] {
            let name = format!("model.layers.{l}.self_attn.{p}.weight");
            m.replace_tensor(&name, block_on(pre.read_tensor_f32(&name, "test")).unwrap())
                .unwrap();
        }
    }
    m
}

/// Logits of all three sequences within 1e-4 of the fixture, and the same
/// greedy next token after each.
fn check_logits(label: &str, m: &CpuModel, fx: &Checkpoint<FsSource>) {
    for seq in ["a", "b", "c"] {
        let ids = ints(fx, &format!("ids_{seq}"));
        let want = floats(fx, &format!("logits_{seq}"));
        let got = m.forward(&ids).unwrap();
        let diff = rel_diff(&got, &want);
        eprintln!(
            "{label} seq {seq}: T={} max|diff|/max|logit| = {diff:.2e}",
            ids.len()
        );
        assert!(diff < 1e-4, "{label} seq {seq}: {diff:.3e}");
        let v = m.arch.vocab_size as usize;
        assert_eq!(
            argmax(&got[got.len() - v..]),
            argmax(&want[want.len() - v..]),
            "{label} seq {seq}: greedy token"
        );
    }
}

#[test]
fn cpu_model_matches_the_golden_logits() {
    for (dir, file) in MODELS {
        check_logits(dir, &model(dir), &fixture(file));
    }
}

#[test]
fn qk_restore_matches_the_golden_logits() {
    check_logits(
        "qk-restore",
        &qk_restore_model(),
        &fixture("qk-restore.safetensors"),
    );
}

#[test]
fn stepping_in_uneven_pieces_equals_one_forward() {
    for (dir, file) in MODELS {
        let m = model(dir);
        let ids = ints(&fixture(file), "ids_c");
        let whole = m.forward(&ids).unwrap();
        let rest = ids.len() - 1 - 7 - 200 - 5;
        let mut pieces = vec![1, 7, 200, rest];
        pieces.extend([1; 5]);
        let mut state = m.new_state(false);
        let mut got = Vec::new();
        let mut at = 0;
        for n in pieces {
            got.extend(m.step(&mut state, &ids[at..at + n]).unwrap());
            at += n;
            assert_eq!(state.pos(), at);
        }
        let diff = rel_diff(&got, &whole);
        eprintln!("{dir}: pieces vs forward on ids_c: max|diff|/max|logit| = {diff:.2e}");
        assert!(diff < 1e-5, "{dir}: {diff:.3e}");
        // A token outside the vocabulary fails without moving the state.
        assert!(m.step(&mut state, &[ids[0], 100_000]).is_err());
        assert_eq!(state.pos(), ids.len());
    }
}

#[test]
fn greedy_decoding_matches_the_fixture() {
    let models = [
        ("pre", model("www/demo/pre"), "pre.safetensors"),
        ("sft", model("www/demo/sft"), "sft.safetensors"),
        ("qk-restore", qk_restore_model(), "qk-restore.safetensors"),
    ];
    for (label, m, file) in models {
        let fx = fixture(file);
        let ids = ints(&fx, "ids_c");
        let want = ints(&fx, "greedy_c");
        let mut state = m.new_state(false);
        let got = m.generate_greedy(&mut state, &ids, 16, &[]).unwrap();
        eprintln!("{label}: greedy_c = {got:?}");
        assert_eq!(got, want, "{label}");
        // The last token is returned, not run.
        assert_eq!(state.pos(), ids.len() + 15);

        // Half the run, then its last token as the next prompt: the same tokens.
        let mut state = m.new_state(false);
        let head = m.generate_greedy(&mut state, &ids, 8, &[]).unwrap();
        assert_eq!(head, want[..8], "{label}: first half");
        let mut fork = state.clone();
        let tail = m.generate_greedy(&mut state, &[head[7]], 8, &[]).unwrap();
        assert_eq!(tail, want[8..], "{label}: continued");
        assert_eq!(state.pos(), ids.len() + 15);
        // A stop token ends the run and is kept, last.
        let stop = want[12];
        let until = want[8..].iter().position(|&t| t == stop).unwrap();
        let stopped = m
            .generate_greedy(&mut fork, &[head[7]], 8, &[stop])
            .unwrap();
        assert_eq!(stopped, want[8..=8 + until], "{label}: stop at {stop}");
    }
}

#[test]
fn capture_rebuilds_the_attention_and_the_state_matches() {
    let m = model("www/demo/pre");
    let fx = fixture("pre.safetensors");
    let ids = ints(&fx, "ids_c");
    let t_len = ids.len();
    let mut state = m.new_state(true);
    // In pieces, so the capture is also checked across steps.
    for piece in [&ids[..1], &ids[1..100], &ids[100..]] {
        m.step(&mut state, piece).unwrap();
    }

    // p(t, s) = exp(q_t . k_s / sqrt(dh) - lse_t), recomputed from the raw
    // layout that Captured documents; query head 0 reads kv head 0.
    let c = state.captured(3).expect("layer 3 is a softmax layer");
    assert_eq!((c.pos, c.heads, c.kv_heads, c.head_dim), (t_len, 4, 2, 48));
    assert_eq!(
        (c.q.len(), c.k.len(), c.lse.len()),
        (t_len * 4 * 48, t_len * 2 * 48, t_len * 4)
    );
    let dh = c.head_dim;
    let want = floats(&fx, "attn_l3_h0_c");
    assert_eq!(want.len(), t_len * t_len);
    let mut got = vec![0.0f32; t_len * t_len];
    for t in 0..t_len {
        let q = &c.q[t * c.heads * dh..][..dh];
        for s in 0..=t {
            let k = &c.k[s * c.kv_heads * dh..][..dh];
            let logit = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() / (dh as f32).sqrt();
            got[t * t_len + s] = (logit - c.lse[t * c.heads]).exp();
        }
    }
    let abs = got
        .iter()
        .zip(&want)
        .fold(0.0f32, |s, (a, b)| s.max((a - b).abs()));
    eprintln!("attn_l3_h0_c: max|diff| = {abs:.2e}");
    assert!(abs < 1e-4, "attention: {abs:.3e}");

    let want = floats(&fx, "lightning_state_l0_c");
    let got = state
        .lightning_state(0)
        .expect("layer 0 is a Lightning layer");
    let diff = rel_diff(got, &want);
    eprintln!("lightning_state_l0_c: max|diff|/max|S| = {diff:.2e}");
    assert!(diff < 1e-4, "Lightning state: {diff:.3e}");

    // Only softmax layers of a capturing state have a capture.
    assert!(state.captured(0).is_none() && state.lightning_state(3).is_none());
    let mut plain = m.new_state(false);
    m.step(&mut plain, &ids[..3]).unwrap();
    assert!(plain.captured(3).is_none());
}

#[test]
fn captured_probabilities_sum_to_one() {
    for (dir, file) in MODELS {
        let m = model(dir);
        let fx = fixture(file);
        let mut state = m.new_state(true);
        for seq in ["b", "c"] {
            // Two sequences back to back: the second sits at positions 129.. .
            m.step(&mut state, &ints(&fx, &format!("ids_{seq}")))
                .unwrap();
        }
        let mut worst = 0.0f32;
        for (l, _) in m.arch.mixers.iter().enumerate() {
            let Some(c) = state.captured(l) else { continue };
            for h in 0..c.heads {
                for t in 0..c.pos {
                    let sum: f32 = (0..=t).map(|s| c.prob(h, t, s)).sum();
                    worst = worst.max((sum - 1.0).abs());
                }
            }
        }
        eprintln!("{dir}: max |sum_s p(t, s) - 1| = {worst:.2e}");
        assert!(worst < 1e-5, "{dir}: {worst:.3e}");
    }
}

/// The demo config has neither HyPE nor RoPE in its softmax layers, so the
/// fixtures cannot catch a step that scales or rotates by its offset within
/// the step instead of the absolute position. Switch both on: pieces must
/// still equal one forward, and the HyPE query must be the plain one times
/// ln(t + A) / ln(A) at absolute t.
#[test]
fn hype_and_softmax_rope_use_absolute_positions() {
    use qklab::config::LogitsScaling;
    let mut m = model("www/demo/pre");
    let ids = ints(&fixture("pre.safetensors"), "ids_b");
    m.arch.attn_use_rope = true;
    let run = |m: &CpuModel| {
        let mut state = m.new_state(true);
        let mut logits = Vec::new();
        for piece in [&ids[..1], &ids[1..60], &ids[60..]] {
            logits.extend(m.step(&mut state, piece).unwrap());
        }
        (logits, state)
    };
    let (_, plain) = run(&m);
    let big_a = 500.0;
    m.arch.logits_scaling = LogitsScaling::Hype(big_a);
    let (logits, hype) = run(&m);
    let diff = rel_diff(&logits, &m.forward(&ids).unwrap());
    eprintln!("HyPE + RoPE: pieces vs forward on ids_b: {diff:.2e}");
    assert!(diff < 1e-5, "{diff:.3e}");
    // The layers before the first softmax layer do not see the scaling, so
    // layer 3's queries differ by exactly the HyPE factor.
    let (p, h) = (plain.captured(3).unwrap(), hype.captured(3).unwrap());
    let width = p.heads * p.head_dim;
    let mut worst = 0.0f32;
    for t in 0..ids.len() {
        let f = ((t as f64 + big_a).ln() / big_a.ln()) as f32;
        for (a, b) in p.q[t * width..][..width]
            .iter()
            .zip(&h.q[t * width..][..width])
        {
            worst = worst.max((a * f - b).abs() / b.abs().max(1e-3));
        }
    }
    eprintln!("HyPE factor on layer-3 queries: worst relative error {worst:.2e}");
    assert!(worst < 1e-5, "{worst:.3e}");
}

#[test]
fn argmax_takes_the_first_maximum() {
    assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
    assert_eq!(argmax(&[-1.0]), 0);
    assert_eq!(argmax(&[f32::NEG_INFINITY, -0.0, 0.0, 0.0]), 2);
}

#[test]
fn alibi_slopes_follow_the_spec() {
    let eight: Vec<f64> = (1..=8).map(|h| 2f64.powi(-h)).collect();
    assert_eq!(alibi_slopes(8), eight);
    // n = 6: the 4 slopes of m = 4, then slopes(8)[0] and slopes(8)[2].
    let six = [
        2f64.powi(-2),
        2f64.powi(-4),
        2f64.powi(-6),
        2f64.powi(-8),
        2f64.powi(-1),
        2f64.powi(-3),
    ];
    assert_eq!(alibi_slopes(6), six);
}
