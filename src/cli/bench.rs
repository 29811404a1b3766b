//! `qklab bench`: prefill and decode speed of a checkpoint or of a preset
//! shape (random weights made on the fly, so HypeNet-2B needs no file),
//! each kernel family alone, and `bench matmul` for the matrix product.

use std::path::PathBuf;

use qklab::bench;
use qklab::checkpoint::Checkpoint;
use qklab::gpu::kernels::WDtype;
use qklab::model::engine::Engine;
use qklab::model::fit::EngineOptions;
use qklab::safetensors::Dtype;
use qklab::source::{block_on, ByteSource, FsSource};
use qklab::summary::human_bytes;
use qklab::synth::SynthSource;
use qklab::{Error, Result};

pub struct BenchArgs {
    pub target: String,
    pub tokens: Vec<u32>,
    pub shapes: Vec<String>,
    pub backend: String,
    pub decode: u32,
    pub reps: usize,
    pub json: Option<PathBuf>,
}

fn parse_shape(s: &str) -> Result<[u32; 3]> {
    let v: Vec<u32> = s.split('x').map(|p| p.trim().parse().map_err(|_| ())).collect::<std::result::Result<_, _>>().map_err(|_| bad_shape(s))?;
    v.try_into().map_err(|_| bad_shape(s))
}

fn bad_shape(s: &str) -> Error {
    Error::Usage(format!("shape {s:?}: expected MxNxK (y[M,N] = x[M,K] W[N,K]^T)"))
}

fn save(json: &Option<PathBuf>, value: serde_json::Value) -> Result<()> {
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_vec_pretty(&value).expect("json")).map_err(|e| Error::io(path.display(), e))?;
    }
    Ok(())
}

pub fn run(a: BenchArgs) -> Result<()> {
    if a.target == "matmul" {
        return matmul(&a);
    }
    if ["tiny", "demo", "2b"].contains(&a.target.as_str()) {
        let ck = block_on(Checkpoint::open(SynthSource::new(&a.target, Dtype::BF16, 1)?))?;
        model(&a, &ck)
    } else {
        let ck = block_on(Checkpoint::open(FsSource::open(std::path::Path::new(&a.target))?))?;
        model(&a, &ck)
    }
}

fn matmul(a: &BenchArgs) -> Result<()> {
    let gpu = super::gpu_for("gpu")?.expect("gpu");
    println!("device: {}", gpu.describe());
    println!("{:>22}  {:>10}  {:>10}  {:>9}  {:>8}", "shape MxNxK", "weights", "ms", "TFLOP/s", "GB/s");
    let mut rows = Vec::new();
    for s in &a.shapes {
        let [m, n, k] = parse_shape(s)?;
        for dtype in [WDtype::F32, WDtype::Bf16] {
            let t = bench::matmul(&gpu, m, n, k, dtype)?;
            println!("{:>22}  {:>10}  {:>10.3}  {:>9.2}  {:>8.0}", t.shape, format!("{dtype:?}"), t.ms, t.gflops / 1e3, t.gbps);
            rows.push(serde_json::json!({ "m": m, "n": n, "k": k, "weights": format!("{dtype:?}"), "ms": t.ms, "tflops": t.gflops / 1e3, "gbps": t.gbps }));
        }
    }
    println!("# measured: y = x W^T, x f32, W f32 or bf16 kept packed, f32 accumulation; median of 5 after a warm-up");
    save(&a.json, serde_json::json!({ "device": gpu.describe(), "matmul": rows }))
}

fn model<S: ByteSource>(a: &BenchArgs, ck: &Checkpoint<S>) -> Result<()> {
    let gpu = super::gpu_for(&a.backend)?;
    let arch = super::arch_with_hype(ck, None)?;
    let max_t = a.tokens.iter().copied().max().unwrap_or(1);
    let opts = EngineOptions { max_context: max_t + a.decode + 1, ..Default::default() };
    let t0 = std::time::Instant::now();
    let engine = block_on(Engine::load(gpu.as_ref(), ck, arch.clone(), opts, &mut |_| {}))?;
    println!("model: {} ({} layers, d={}, vocab {})", a.target, arch.mixers.len(), arch.hidden_size, arch.vocab_size);
    println!("backend: {} (loaded in {:.1} s)", engine.backend(), t0.elapsed().as_secs_f64());
    let mut report = serde_json::json!({ "model": a.target, "backend": engine.backend() });
    if let Engine::Gpu(m) = &engine {
        let f = &m.footprint;
        println!(
            "GPU memory: {} (weights {}, session {}, scratch {}); prefill passes of {} tokens",
            human_bytes(f.total()),
            human_bytes(f.weights),
            human_bytes(f.session),
            human_bytes(f.scratch),
            f.chunk
        );
        report["gpu_memory"] = serde_json::json!({ "total": f.total(), "weights": f.weights, "session": f.session, "scratch": f.scratch });
    }
    let mut prefill = Vec::new();
    for &t in &a.tokens {
        let p = bench::prefill(&engine, t, a.reps)?;
        println!("prefill {:>6} tokens: {:>10.1} ms  {:>10.0} tokens/s", p.tokens, p.ms, p.tokens_per_s);
        prefill.push(p);
    }
    report["prefill"] = serde_json::to_value(&prefill).expect("json");
    if a.decode > 0 {
        let d = bench::decode(&engine, max_t, a.decode)?;
        println!("decode after {} tokens: {:.2} ms/token  {:.1} tokens/s", d.context, d.ms_per_token, d.tokens_per_s);
        report["decode"] = serde_json::to_value(&d).expect("json");
    }
    if let Some(gpu) = &gpu {
        println!("{:>32}  {:>28}  {:>10}  {:>9}  {:>8}", "kernel", "shape", "ms", "GFLOP/s", "GB/s");
        let kernels = bench::kernels_at(gpu, &arch, max_t)?;
        for k in &kernels {
            println!("{:>32}  {:>28}  {:>10.3}  {:>9.0}  {:>8.0}", k.kernel, k.shape, k.ms, k.gflops, k.gbps);
        }
        report["kernels"] = serde_json::to_value(&kernels).expect("json");
    }
    save(&a.json, report)
}
