//! Fuzzes `config.json` against fixed tensors, for every family the crate
//! accepts: sizes, types, lists, nulls and huge numbers are mutated, and
//! each config goes through the gate (`config::arch_of`, then
//! `config::gate::check_tensors`) and, when admitted, into the reference
//! and the CPU engine for a short forward. Any panic fails; so does any
//! single allocation larger than `ALLOC_LIMIT` (far above what the small
//! tensors need), which would mean something was sized from the config
//! rather than from the tensors.
//!
//! `cargo test` runs a bounded number of inputs (`QKLAB_FUZZ_INPUTS`,
//! default 1000). By hand, for as long as you like:
//!     QKLAB_FUZZ_SECONDS=3600 cargo test --release --test config_fuzz -- --nocapture
//! `QKLAB_FUZZ_SEED` picks another stream of inputs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use qklab::checkpoint::Checkpoint;
use qklab::config::arch_of;
use qklab::config::gate::check_tensors;
use qklab::model::calls::Logits;
use qklab::model::cpu::CpuModel;
use qklab::model::fast::FastModel;
use qklab::source::{block_on, MemSource};

/// The largest single allocation a run over these tensors may make. The
/// biggest fixture decodes to about 16 MB of f32.
const ALLOC_LIMIT: usize = 512 << 20;

struct Bounded;

// SAFETY: defers to the system allocator; only refuses what is too large.
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_LIMIT {
            // A failing test, not a null that the caller would turn into an
            // abort without saying why.
            let msg = format!(
                "config_fuzz: an allocation of {} bytes, over the {ALLOC_LIMIT}-byte limit\n",
                layout.size()
            );
            let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
            std::process::abort();
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Bounded = Bounded;

/// splitmix64: small, seedable, the same stream everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Fields every family's config may hold, present or not in a seed.
const KEYS: &[&str] = &[
    "model_type",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "mixer_types",
    "layer_types",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "lightning_nh",
    "lightning_nkv",
    "lightning_head_dim",
    "rms_norm_eps",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "attn_logits_scaling",
    "lightning_scale",
    "attn_use_rope",
    "lightning_use_rope",
    "attention_bias",
    "tie_word_embeddings",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "sliding_window",
    "use_sliding_window",
    "hidden_act",
    "num_experts",
    "max_position_embeddings",
];

/// A value of any JSON type, biased to what breaks sizes and numbers.
fn value(rng: &mut Rng, old: Option<&Value>) -> Value {
    let near = old.and_then(Value::as_u64).unwrap_or(4);
    match rng.below(16) {
        0 => json!(rng.pick(&[0u64, 1, 2, 3, 7, 255, 256, 257, 4096, 65536])),
        1 => json!(rng.pick(&[
            1u64 << 31,
            1 << 32,
            (1 << 32) + 1,
            1 << 40,
            1_000_000_000_000,
            1 << 62,
            u64::MAX
        ])),
        2 => json!(near.wrapping_add(rng.below(5) as u64).wrapping_sub(2)),
        3 => json!(near.saturating_mul(rng.pick(&[2u64, 3, 1000, 1 << 20]).to_owned())),
        4 => json!(rng.pick(&[-1i64, -2, i64::MIN])),
        5 => json!(rng.pick(&[
            0.0f64,
            -0.0,
            -1.0,
            1e-300,
            1e300,
            0.5,
            1.0,
            1e6,
            f64::MAX,
            f64::MIN_POSITIVE
        ])),
        6 => json!(rng.pick(&[
            "x",
            "",
            "hype 0",
            "hype -3",
            "hype 1",
            "hype 1e308",
            "1/d",
            "1",
            "attn",
            "lightning-attn",
            "silu",
            "gelu",
            "llama3"
        ])),
        7 => Value::Null,
        8 => json!(rng.below(2) == 0),
        9 => json!([]),
        10 => json!(vec![
            json!(rng.pick(&[
                "attn",
                "lightning-attn",
                "full_attention",
                "sliding_attention",
                "x"
            ]));
            rng.below(12)
        ]),
        11 => json!([1, "x", null]),
        12 => json!({}),
        13 => {
            json!({"rope_type": rng.pick(&["llama3", "yarn", "default"]), "factor": rng.pick(&[0.0, -1.0, 8.0]), "low_freq_factor": 1.0,
                     "high_freq_factor": rng.pick(&[1.0, 4.0]), "original_max_position_embeddings": rng.pick(&[0.0, 8192.0])})
        }
        14 => json!(rng.pick(&[
            "hypenet",
            "qwen2",
            "qwen3",
            "llama",
            "mistral",
            "qwen3_5_text",
            "gpt2"
        ])),
        _ => json!([near, near]),
    }
}

/// The seed config with one to four fields changed, added or removed.
fn mutate(rng: &mut Rng, seed: &Map<String, Value>) -> Map<String, Value> {
    let mut c = seed.clone();
    for _ in 0..1 + rng.below(4) {
        let key = if rng.below(3) == 0 {
            rng.pick(KEYS).to_string()
        } else {
            c.keys()
                .nth(rng.below(c.len().max(1)))
                .cloned()
                .unwrap_or_default()
        };
        if rng.below(8) == 0 {
            c.remove(&key);
        } else {
            let v = value(rng, c.get(&key));
            c.insert(key, v);
        }
    }
    c
}

/// One input through the gate and, if admitted, both CPU engines; whether
/// it was admitted.
fn exercise(config: &str, weights: &[u8]) -> bool {
    let src = MemSource::new()
        .with("config.json", config.as_bytes().to_vec())
        .with("model.safetensors", weights.to_vec());
    let Ok(ck) = block_on(Checkpoint::open(src)) else {
        return false;
    };
    let Ok(arch) = arch_of(&ck) else { return false };
    if check_tensors(&arch, &ck.tensors).is_err() {
        return false;
    }
    let v = arch.vocab_size.min(1 << 16) as u32;
    let ids: Vec<u32> = [1u32, 5, 2, 7].iter().map(|i| i % v.max(1)).collect();
    if let Ok(m) = block_on(CpuModel::load(&ck, arch.clone())) {
        let _ = m.forward(&ids);
    }
    if let Ok(m) = block_on(FastModel::load(&ck, arch)) {
        let mut seq = m.new_seq(false);
        let _ = m.step(&mut [&mut seq], &[&ids], Logits::Last);
    }
    true
}

fn seeds() -> Vec<(String, Map<String, Value>, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        "www/demo/pre",
        "tests/fixtures/hf/qwen2-f32",
        "tests/fixtures/hf/qwen3-f32",
        "tests/fixtures/hf/llama-f32",
        "tests/fixtures/hf/mistral-f32",
    ] {
        let config: Value =
            serde_json::from_slice(&std::fs::read(root.join(dir).join("config.json")).unwrap())
                .unwrap();
        let Value::Object(config) = config else {
            panic!("{dir}: config.json is not an object")
        };
        out.push((
            dir.to_string(),
            config,
            std::fs::read(root.join(dir).join("model.safetensors")).unwrap(),
        ));
    }
    out
}

#[test]
fn no_config_panics_or_allocates_past_the_tensors() {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let budget = env("QKLAB_FUZZ_SECONDS").map(Duration::from_secs);
    let inputs = env("QKLAB_FUZZ_INPUTS").unwrap_or(1000);
    let mut rng = Rng(env("QKLAB_FUZZ_SEED").unwrap_or(0x5eed));
    let seeds = seeds();
    // Each seed unchanged must be admitted: otherwise the fuzzer would only
    // ever test the refusals.
    for (dir, config, weights) in &seeds {
        let src = MemSource::new()
            .with("config.json", serde_json::to_vec(config).unwrap())
            .with("model.safetensors", weights.clone());
        let ck = block_on(Checkpoint::open(src)).unwrap();
        let arch = arch_of(&ck).unwrap_or_else(|e| panic!("{dir}: {e}"));
        check_tensors(&arch, &ck.tensors).unwrap_or_else(|e| panic!("{dir}: {e}"));
    }
    let started = Instant::now();
    let (mut ran, mut admitted) = (0u64, 0u64);
    // The panic hook would print every caught panic; the failure below says it once.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failure = None;
    while budget.map_or(ran < inputs, |b| started.elapsed() < b) {
        let (dir, seed, weights) = &seeds[rng.below(seeds.len())];
        let config = serde_json::to_string(&Value::Object(mutate(&mut rng, seed))).unwrap();
        match catch_unwind(AssertUnwindSafe(|| exercise(&config, weights))) {
            Ok(ran_engines) => admitted += u64::from(ran_engines),
            Err(e) => {
                let what = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failure = Some(format!("{dir} with config {config}: panicked: {what}"));
                break;
            }
        }
        ran += 1;
    }
    std::panic::set_hook(hook);
    if let Some(f) = failure {
        panic!("after {ran} inputs: {f}");
    }
    eprintln!(
        "config_fuzz: {ran} inputs ({admitted} admitted and run on both CPU engines) in {:.1} s, no panic, no allocation past {ALLOC_LIMIT} bytes",
        started.elapsed().as_secs_f64()
    );
    // A mutation stream that the gate always refuses would test nothing past it.
    assert!(
        admitted * 20 >= ran,
        "only {admitted} of {ran} inputs got past the gate"
    );
}
