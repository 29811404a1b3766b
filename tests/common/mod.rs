//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses its own subset

use std::process::{Command, Output};

/// `qklab merge --pre pre --sft sft --out out` and `extra`.
pub fn merge(
    pre: &std::path::Path,
    sft: &std::path::Path,
    out: &std::path::Path,
    extra: &[&str],
) -> Output {
    let mut args = vec![
        "merge",
        "--pre",
        pre.to_str().unwrap(),
        "--sft",
        sft.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    qklab(&args)
}

/// A copy of the checkpoint at `pre` with every tensor moved by a
/// deterministic step, written to `out`: a fine-tune stand-in whose every
/// byte differs from pre's.
pub fn make_sft(pre: &std::path::Path, out: &std::path::Path) {
    use qklab::source::block_on;
    use qklab::writer::{write_to_dir, PlanBuilder, Provenance, TensorData};
    let pre = block_on(qklab::checkpoint::Checkpoint::open(
        qklab::source::FsSource::open(pre).unwrap(),
    ))
    .unwrap();
    let mut plan = PlanBuilder::new(&pre, 0);
    for (i, t) in pre.tensors.iter().enumerate() {
        let v = block_on(pre.read_tensor_f32(&t.name, "test")).unwrap();
        let moved: Vec<f32> = v
            .iter()
            .enumerate()
            .map(|(j, x)| x + 0.01 * (((i * 31 + j * 7) % 13) as f32 - 6.0))
            .collect();
        let bytes = qklab::safetensors::encode_f32(&t.name, t.dtype, &moved, "test").unwrap();
        plan.replace(&t.name, TensorData::Bytes(std::sync::Arc::new(bytes)))
            .unwrap();
    }
    let plan = plan
        .build(&Provenance::new("test-sft", serde_json::json!({}), vec![]))
        .unwrap();
    block_on(write_to_dir(&plan, &[pre.source()], out, |_, _| {})).unwrap();
}

/// Runs the `qklab` binary built for this test run.
pub fn qklab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qklab"))
        .args(args)
        .output()
        .unwrap()
}

/// The stdout of a run that must succeed.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "qklab failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Python with safetensors, numpy and ml_dtypes: QKLAB_PYTHON, else
/// `python3`. Without them the caller skips, unless QKLAB_REQUIRE_PYTHON=1
/// (set by `cargo xtask test`) makes that a failure.
pub fn python() -> Option<String> {
    let py = std::env::var("QKLAB_PYTHON").unwrap_or_else(|_| "python3".into());
    let found = Command::new(&py)
        .args(["-c", "import safetensors, numpy, ml_dtypes"])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(py);
    }
    assert!(
        std::env::var("QKLAB_REQUIRE_PYTHON").as_deref() != Ok("1"),
        "{py} with safetensors, numpy and ml_dtypes is required (QKLAB_REQUIRE_PYTHON=1)"
    );
    eprintln!("skipped: {py} lacks safetensors/numpy/ml_dtypes");
    None
}

/// The GPU wgpu finds (llvmpipe in CI). Without one the caller skips,
/// unless QKLAB_REQUIRE_GPU=1 (set by `cargo xtask test`) makes a missing
/// GPU a failure.
pub fn gpu() -> Option<qklab::gpu::Gpu> {
    match qklab::source::block_on(qklab::gpu::Gpu::new()) {
        Ok(g) => {
            eprintln!("adapter: {}", g.describe());
            Some(g)
        }
        Err(e) if std::env::var("QKLAB_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("GPU required: {e}")
        }
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// `n` values in [-scale, scale), fixed by `seed`.
pub fn random_f32(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = qklab::synth::SplitMix64::new(seed);
    (0..n).map(|_| rng.next_signed() * scale).collect()
}

/// A storage buffer holding `values` (kernel tests).
pub fn storage(gpu: &qklab::gpu::Gpu, values: &[f32]) -> wgpu::Buffer {
    let b = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: (values.len() as u64 * 4).max(16),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    gpu.queue.write_buffer(&b, 0, bytemuck::cast_slice(values));
    b
}

/// The first `n` f32 of a buffer.
pub fn read_f32(gpu: &qklab::gpu::Gpu, b: &wgpu::Buffer, n: usize) -> Vec<f32> {
    bytemuck::cast_slice(
        &qklab::source::block_on(qklab::gpu::read_buffer(gpu, b, n as u64 * 4)).unwrap(),
    )
    .to_vec()
}

/// A checkpoint (folder or .safetensors file) by its path in the repo.
pub fn open(rel: &str) -> qklab::checkpoint::Checkpoint<qklab::source::FsSource> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    qklab::source::block_on(qklab::checkpoint::Checkpoint::open(
        qklab::source::FsSource::open(&path).unwrap(),
    ))
    .unwrap()
}

/// A golden fixture of tests/fixtures/demo (pre, sft, qk-restore).
pub fn fixture(name: &str) -> qklab::checkpoint::Checkpoint<qklab::source::FsSource> {
    open(&format!("tests/fixtures/demo/{name}"))
}

/// An I32 tensor of a fixture (token ids) as u32.
pub fn ints(ck: &qklab::checkpoint::Checkpoint<qklab::source::FsSource>, name: &str) -> Vec<u32> {
    let bytes = qklab::source::block_on(ck.read_tensor_bytes(name)).unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u32)
        .collect()
}

/// A float tensor of a fixture, decoded to f32.
pub fn floats(ck: &qklab::checkpoint::Checkpoint<qklab::source::FsSource>, name: &str) -> Vec<f32> {
    qklab::source::block_on(ck.read_tensor_f32(name, "test")).unwrap()
}

/// A fixture folder's golden ids and the logits of checkpoint `name`
/// (`logits_<name>` with `-` as `_`), as reference/hf_fixtures.py and
/// reference/qwen35_fixtures.py write them in `<dir>/golden.safetensors`.
pub fn golden(dir: &str, name: &str) -> (Vec<u32>, Vec<f32>) {
    let fx = open(&format!("{dir}/golden.safetensors"));
    (
        ints(&fx, "ids"),
        floats(&fx, &format!("logits_{}", name.replace('-', "_"))),
    )
}

/// An engine's logits on `ids` against `want` ([T, V], from the family's
/// own code) within 1e-4 of the largest logit: whole, then in pieces (70
/// and 65 tokens, then single decode steps), so that everything a
/// sequence carries between calls (caches, states, histories, positions)
/// is exercised. `label` names the engine and checkpoint in messages.
pub fn whole_and_in_pieces(
    e: &qklab::model::engine::Engine,
    ids: &[u32],
    want: &[f32],
    label: &str,
) {
    use qklab::model::engine::Logits;
    use qklab::source::block_on;
    let got = block_on(e.prefill(&mut e.session(false), ids, Logits::All)).unwrap();
    let d = rel_diff(&got, want);
    eprintln!("{label}: {d:.2e}");
    assert!(d < 1e-4, "{label}: {d:.3e}");
    let mut s = e.session(false);
    let mut got = block_on(e.prefill(&mut s, &ids[..70], Logits::All)).unwrap();
    got.extend(block_on(e.prefill(&mut s, &ids[70..135], Logits::All)).unwrap());
    for &id in &ids[135..] {
        got.extend(block_on(e.prefill(&mut s, &[id], Logits::All)).unwrap());
    }
    let d = rel_diff(&got, want);
    eprintln!("{label} in pieces: {d:.2e}");
    assert!(d < 1e-4, "{label} in pieces: {d:.3e}");
}

/// max |got - want| / max |want|: the golden fixtures' tolerance measure.
pub fn rel_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f32, |s, x| s.max(x.abs()));
    got.iter()
        .zip(want)
        .fold(0.0f32, |s, (a, b)| s.max((a - b).abs()))
        / scale
}

/// A tiny config with one thing changed per variant.
pub fn variant(name: &str) -> serde_json::Value {
    let mut c = qklab::synth::preset_config("tiny").unwrap();
    let set = |c: &mut serde_json::Value, k: &str, v: serde_json::Value| c[k] = v;
    match name {
        // 4 query heads on 2 kv heads (group 2); Lightning 2 on 2 (group 1).
        "base" => {}
        // group 4 in softmax, 2 in Lightning, HyPE, f16 weights (below).
        "gqa4-hype" => {
            set(&mut c, "num_key_value_heads", 1.into());
            set(&mut c, "lightning_nh", 4.into());
            set(&mut c, "lightning_nkv", 2.into());
            set(&mut c, "attn_logits_scaling", "hype 300".into());
        }
        // group 1, RoPE on softmax layers, biases, untied head, constant
        // scaling, plain Lightning (no qk-norm, output norm or gate), 1/d.
        "mha-rope-bias" => {
            set(&mut c, "num_key_value_heads", 4.into());
            set(&mut c, "attn_use_rope", true.into());
            set(&mut c, "attention_bias", true.into());
            set(&mut c, "tie_word_embeddings", false.into());
            set(&mut c, "attn_logits_scaling", 0.8.into());
            set(&mut c, "attn_use_output_gate", false.into());
            set(&mut c, "lightning_use_qk_norm", false.into());
            set(&mut c, "lightning_use_output_norm", false.into());
            set(&mut c, "lightning_use_output_gate", false.into());
            set(&mut c, "lightning_scale", "1/d".into());
        }
        // Wide heads: dh 130 (more than one 128 block), dl 100.
        "wide-heads" => {
            set(&mut c, "head_dim", 130.into());
            set(&mut c, "lightning_head_dim", 100.into());
        }
        other => panic!("{other}"),
    }
    c
}

pub fn mem_checkpoint(
    config: &serde_json::Value,
    dtype: qklab::safetensors::Dtype,
    seed: u64,
) -> qklab::checkpoint::Checkpoint<qklab::source::MemSource> {
    let mut src = qklab::source::MemSource::new();
    for (name, bytes) in qklab::synth::files_for_config(config, 2, dtype, seed).unwrap() {
        src.insert(&name, bytes);
    }
    qklab::source::block_on(qklab::checkpoint::Checkpoint::open(src)).unwrap()
}
