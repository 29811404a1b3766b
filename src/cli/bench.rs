//! `qklab bench`: prefill and decode speed of a checkpoint or of a preset
//! shape (random weights made on the fly, so HypeNet-2B needs no file),
//! each kernel family alone, and `bench matmul` for the matrix product.

use std::path::PathBuf;

use clap::Args;
use qklab::app::model::OpenModel;
use qklab::bench;
use qklab::gpu::kernels::WDtype;
use qklab::model::engine::Engine;
use qklab::safetensors::Dtype;
use qklab::source::{block_on, ByteSource, FsSource};
use qklab::synth::SynthSource;
use qklab::units::human_bytes;
use qklab::{Error, Result};

#[derive(Args)]
pub struct BenchArgs {
    /// A checkpoint, a preset (tiny, demo, 2b, qwen3.5-0.8b) or `matmul`.
    pub target: String,
    /// Prompt lengths to time prefill at.
    #[arg(long, value_delimiter = ',', default_value = "1024,4096")]
    pub tokens: Vec<u32>,
    /// For `matmul`: MxNxK,... with y[M,N] = x[M,K] W[N,K]^T.
    #[arg(long, value_delimiter = ',', default_value = "4096x2048x2048")]
    pub shapes: Vec<String>,
    /// auto, gpu, cpu or reference (see `run`); `matmul` always runs on the GPU.
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Greedy decode steps to time after the longest prefill.
    #[arg(long, default_value_t = 32)]
    pub decode: u32,
    /// Timed runs of each measurement after a warm-up (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Every timing as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn parse_shape(s: &str) -> Result<[u32; 3]> {
    let v: Vec<u32> = s
        .split('x')
        .map(|p| p.trim().parse().map_err(|_| ()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad_shape(s))?;
    v.try_into().map_err(|_| bad_shape(s))
}

fn bad_shape(s: &str) -> Error {
    Error::Usage(format!(
        "shape {s:?}: expected MxNxK (y[M,N] = x[M,K] W[N,K]^T)"
    ))
}

fn save(json: &Option<PathBuf>, value: serde_json::Value) -> Result<()> {
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_vec_pretty(&value).expect("json"))
            .map_err(|e| Error::io(path.display(), e))?;
    }
    Ok(())
}

pub fn run(a: BenchArgs) -> Result<()> {
    if a.target == "matmul" {
        return matmul(&a);
    }
    if qklab::synth::PRESETS.contains(&a.target.as_str()) {
        model(
            &a,
            &block_on(OpenModel::open(
                &a.target,
                SynthSource::new(&a.target, Dtype::BF16, 1)?,
            ))?,
        )
    } else {
        model(
            &a,
            &block_on(OpenModel::open(
                &a.target,
                FsSource::open(std::path::Path::new(&a.target))?,
            ))?,
        )
    }
}

fn matmul(a: &BenchArgs) -> Result<()> {
    let backend = super::backend("gpu")?;
    let gpu = backend.gpu().ok_or_else(|| Error::Gpu("no GPU".into()))?;
    println!("device: {}", gpu.describe());
    println!(
        "{:>22}  {:>10}  {:>10}  {:>9}  {:>8}",
        "shape MxNxK", "weights", "ms", "TFLOP/s", "GB/s"
    );
    let mut rows = Vec::new();
    for s in &a.shapes {
        let [m, n, k] = parse_shape(s)?;
        for dtype in [WDtype::F32, WDtype::Bf16] {
            let t = bench::matmul(gpu, m, n, k, dtype)?;
            println!(
                "{:>22}  {:>10}  {:>10.3}  {:>9.2}  {:>8.0}",
                t.shape,
                format!("{dtype:?}"),
                t.ms,
                t.gflops / 1e3,
                t.gbps
            );
            rows.push(serde_json::json!({ "m": m, "n": n, "k": k, "weights": format!("{dtype:?}"), "ms": t.ms, "tflops": t.gflops / 1e3, "gbps": t.gbps }));
        }
    }
    println!("# measured: y = x W^T, x f32, W f32 or bf16 kept packed, f32 accumulation; median of 5 after a warm-up");
    save(
        &a.json,
        serde_json::json!({ "device": gpu.describe(), "matmul": rows }),
    )
}

/// Threads the CPU engine runs on (rayon's pool: RAYON_NUM_THREADS or the cores).
fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The median ms of reference/bench_torch.py's prefill on the CPU (body and
/// the last position's logits, as `bench::prefill` times), with the same
/// threads: its HypeNet of a preset's shape, or transformers' own forward of
/// a checkpoint folder (a Hugging Face family: Qwen3.5, Qwen2/3, Llama,
/// Mistral). QKLAB_TORCH_PYTHON names the interpreter (default python3).
fn torch_cpu_prefill(target: &str, tokens: u32, reps: usize) -> std::result::Result<f64, String> {
    let what: Vec<String> = if ["tiny", "demo", "2b"].contains(&target) {
        ["prefill", "--preset", target, "--no-profile"]
            .map(String::from)
            .into()
    } else if std::path::Path::new(target).join("config.json").is_file() {
        vec!["hf".into(), "--model".into(), target.into()]
    } else {
        return Err("the peer builds presets or reads checkpoint folders only".into());
    };
    let python = std::env::var("QKLAB_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let json = std::env::temp_dir().join(format!("qklab-torch-{}.json", std::process::id()));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/bench_torch.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .args(&what)
        .args(["--device", "cpu"])
        .args([
            "--tokens",
            &tokens.to_string(),
            "--threads",
            &threads().to_string(),
            "--reps",
            &reps.max(1).to_string(),
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .map_err(|e| format!("{python}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{python} failed: {}",
            err.lines().last().unwrap_or("")
        ));
    }
    let text = std::fs::read_to_string(&json).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&json);
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    v["results"]["body_last_logits"]["median_ms"]
        .as_f64()
        .ok_or_else(|| "no body_last_logits in its JSON".into())
}

/// A table of where `measured` ms went, kernel by kernel.
fn print_shares(what: &str, shares: &[bench::Share], measured: f64) {
    println!("{what}, by kernel: each timed alone at its shape, times its calls");
    println!(
        "{:>44}  {:>22}  {:>6}  {:>10}  {:>7}",
        "kernel", "shape", "calls", "ms", "share"
    );
    for s in shares {
        println!(
            "{:>44}  {:>22}  {:>6}  {:>10.3}  {:>6.1}%",
            s.kernel,
            s.shape,
            s.calls,
            s.ms,
            100.0 * s.ms / measured.max(1e-9)
        );
    }
    let listed: f64 = shares.iter().map(|s| s.ms).sum();
    println!(
        "{:>44}  {:>22}  {:>6}  {:>10.3}  {:>6.1}%",
        "the rest (element-wise, submission)",
        "",
        "",
        measured - listed,
        100.0 * (measured - listed) / measured.max(1e-9)
    );
}

fn model<S: ByteSource>(a: &BenchArgs, m: &OpenModel<S>) -> Result<()> {
    let backend = super::backend(&a.backend)?;
    let arch = &m.arch;
    let max_t = a.tokens.iter().copied().max().unwrap_or(1);
    let t0 = std::time::Instant::now();
    let engine = block_on(backend.load(m, max_t + 2 * a.decode + 1, false))?;
    println!(
        "model: {} ({} layers, d={}, vocab {})",
        a.target,
        arch.mixers.len(),
        arch.hidden_size,
        arch.vocab_size
    );
    println!(
        "backend: {} (loaded in {:.1} s)",
        engine.backend(),
        t0.elapsed().as_secs_f64()
    );
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
    let mut peers = Vec::new();
    for &t in &a.tokens {
        let p = bench::prefill(&engine, t, a.reps)?;
        println!(
            "prefill {:>6} tokens: {:>10.1} ms  {:>10.0} tokens/s",
            p.tokens, p.ms, p.tokens_per_s
        );
        if let Engine::Cpu(_) = &engine {
            // The peer in the same run: PyTorch's CPU forward of the reference, same threads.
            match torch_cpu_prefill(&a.target, t, a.reps) {
                Ok(ms) => {
                    println!("  PyTorch CPU, {} threads: {ms:>10.1} ms  {:>10.0} tokens/s  (qklab at {:.0}% of its time)", threads(), t as f64 / ms * 1e3, 100.0 * p.ms / ms);
                    peers.push(serde_json::json!({ "tokens": t, "torch_cpu_ms": ms, "threads": threads() }));
                }
                Err(e) => println!("  PyTorch CPU peer not run: {e}"),
            }
        }
        prefill.push(p);
    }
    report["prefill"] = serde_json::to_value(&prefill).expect("json");
    report["torch_cpu"] = serde_json::Value::Array(peers);
    let mut decode = None;
    if a.decode > 0 {
        let d = bench::decode(&engine, max_t, a.decode)?;
        println!(
            "decode after {} tokens: {:.2} ms/token  {:.1} tokens/s",
            d.context, d.ms_per_token, d.tokens_per_s
        );
        println!(
            "  {} steps in one submission: {:.2} ms/token",
            d.steps, d.ms_per_token_one_submission
        );
        report["decode"] = serde_json::to_value(&d).expect("json");
        decode = Some(d);
    }
    if let Some(gpu) = backend.gpu() {
        println!(
            "{:>32}  {:>28}  {:>10}  {:>9}  {:>8}",
            "kernel", "shape", "ms", "GFLOP/s", "GB/s"
        );
        let kernels = bench::kernels_at(gpu, arch, max_t)?;
        for k in &kernels {
            println!(
                "{:>32}  {:>28}  {:>10.3}  {:>9.0}  {:>8.0}",
                k.kernel, k.shape, k.ms, k.gflops, k.gbps
            );
        }
        report["kernels"] = serde_json::to_value(&kernels).expect("json");
        let measured = prefill
            .iter()
            .find(|p| p.tokens == max_t)
            .map_or(0.0, |p| p.ms);
        let shares = bench::shares(gpu, arch, max_t, &kernels)?;
        print_shares(
            &format!("prefill of {max_t} tokens ({measured:.1} ms measured)"),
            &shares,
            measured,
        );
        report["prefill_shares"] = serde_json::to_value(&shares).expect("json");
        if let Some(d) = &decode {
            let shares = bench::shares(gpu, arch, 1, &kernels)?;
            print_shares(
                &format!(
                    "a decode step after {max_t} tokens ({:.2} ms measured)",
                    d.ms_per_token
                ),
                &shares,
                d.ms_per_token,
            );
            report["decode_shares"] = serde_json::to_value(&shares).expect("json");
        }
    }
    save(&a.json, report)
}
