//! Whether a model fits a GPU adapter, decided before anything is
//! uploaded: every buffer the engine will make is sized here and checked
//! against the adapter's limits (and an optional memory budget), so a
//! model that cannot run is refused with the limit it hits and by how much.

use super::mixer;
use crate::config::{Arch, Mixer};
use crate::error::{Error, Result};
use crate::gpu::kernels::WDtype;
use crate::gpu::weights::rows_per_chunk;

/// Choices that shape the engine's buffers.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Longest sequence (prompt and generated tokens) a session holds.
    pub max_context: u32,
    /// Most tokens per prefill pass (of one or several sequences); longer
    /// prompts run in several. 0: as many as [`SCRATCH_BUDGET`] of
    /// activations hold, between 2048 and 16384.
    pub prefill_chunk: u32,
    /// A binding limit below the adapter's (tests use it to force chunking).
    pub max_binding: Option<u64>,
    /// Refuse models needing more GPU memory than this (browsers do not
    /// say how much there is; the caller may know better).
    pub memory_budget: Option<u64>,
    /// Keep every softmax layer's queries, for the routing diagnostics.
    pub capture: bool,
    /// Most sequences one batch holds (fewer where memory is short).
    pub max_batch: u32,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_context: 4096,
            prefill_chunk: default_chunk(),
            max_binding: None,
            memory_budget: None,
            capture: false,
            max_batch: 64,
        }
    }
}

/// Without a memory budget, a batch's caches take at most this much: a
/// browser does not say how much memory its GPU has.
pub const DEFAULT_BATCH_MEMORY: u64 = 1 << 30;

/// A pass's activations take about this much when the chunk is automatic:
/// small models get passes of many rows, which keep a large GPU busy (the
/// demo's 600-prompt sweep on an H200: 9.0 s with passes of 7281 rows,
/// 6.8 s with 16384). Browsers get less: they share the GPU with the page.
#[cfg(not(target_arch = "wasm32"))]
pub const SCRATCH_BUDGET: u64 = 320 << 20;
#[cfg(target_arch = "wasm32")]
pub const SCRATCH_BUDGET: u64 = 64 << 20;

/// QKLAB_PREFILL_CHUNK (native only) sets the chunk, for benchmarks; else 0 (automatic).
fn default_chunk() -> u32 {
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(n) = std::env::var("QKLAB_PREFILL_CHUNK")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    0
}

/// The GPU memory a model takes, by purpose, and the sizes derived from
/// the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footprint {
    pub weights: u64,
    /// KV caches, Lightning states, log-sum-exp (and captured queries) of one sequence.
    pub session: u64,
    /// Sequences one batch holds: its caches take `slots * session`.
    pub slots: u32,
    /// Activations of one prefill pass, logits and tables.
    pub scratch: u64,
    /// Tokens per prefill pass.
    pub chunk: u32,
    /// Rows of logits computed per LM-head pass.
    pub logit_rows: u32,
    /// The binding size buffers are cut to.
    pub binding: u64,
}

impl Footprint {
    /// With one sequence.
    pub fn total(&self) -> u64 {
        self.weights + self.session + self.scratch
    }

    /// With a full batch.
    pub fn batch_total(&self) -> u64 {
        self.weights + self.slots as u64 * self.session + self.scratch
    }
}

fn human(bytes: u64) -> String {
    crate::units::human_bytes(bytes)
}

/// Sizes every buffer for `arch` with weights `tensors` (name, dtype,
/// shape) under `limits`, or says which limit the model exceeds.
pub fn plan(
    arch: &Arch,
    tensors: &[(String, WDtype, Vec<u64>)],
    limits: &wgpu::Limits,
    opts: &EngineOptions,
) -> Result<Footprint> {
    let too_large = |s: String| Err(Error::TooLarge(s));
    let adapter_binding = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    let binding = opts
        .max_binding
        .map_or(adapter_binding, |b| b.min(adapter_binding));
    let limit_name = if opts.max_binding.is_some_and(|b| b < adapter_binding) {
        "the binding limit set for this run"
    } else if limits.max_buffer_size < limits.max_storage_buffer_binding_size {
        "maxBufferSize"
    } else {
        "maxStorageBufferBindingSize"
    };

    let (a, l) = (&arch.attn, &arch.lightning);
    for m in distinct(&arch.mixers) {
        let (dh, max) = (arch.heads(m).head_dim, mixer::max_gpu_head_dim(m));
        if dh > max {
            return too_large(format!(
                "{} head_dim {dh} exceeds the kernels' {max}",
                mixer::label(m)
            ));
        }
    }

    let mut weights = 0u64;
    for (name, dtype, shape) in tensors {
        let (rows, cols) = match shape.as_slice() {
            [n] => (1, *n),
            [r, c] => (*r, *c),
            _ => {
                return Err(Error::Gpu(format!(
                    "{name}: the GPU engine takes 1-D or 2-D weights, not {shape:?}"
                )))
            }
        };
        rows_per_chunk(name, *dtype, rows, cols, binding).map_err(|e| match e {
            Error::Gpu(m) => Error::TooLarge(m.replace("maxStorageBufferBindingSize", limit_name)),
            e => e,
        })?;
        weights += rows * cols * dtype.bytes();
    }

    // Each buffer that grows with the context must fit a binding.
    let ctx = opts.max_context.max(1) as u64;
    let states: Vec<mixer::GpuState> = arch
        .mixers
        .iter()
        .map(|&m| mixer::gpu_state(arch, m, opts.capture))
        .collect();
    let per_buffer: Vec<(&str, u64)> = states
        .iter()
        .flat_map(|st| st.per_token.iter().copied())
        .collect();
    for &(what, row) in &per_buffer {
        if row * ctx > binding {
            return too_large(format!(
                "{what} for {ctx} tokens needs {}, over {limit_name} ({}) by {}; at most {} tokens fit",
                human(row * ctx),
                human(binding),
                human(row * ctx - binding),
                binding / row
            ));
        }
    }
    let session: u64 = states
        .iter()
        .map(|st| ctx * st.per_token.iter().map(|(_, row)| row).sum::<u64>() + st.fixed)
        .sum();

    // Activations: the widest row any scratch buffer holds.
    let widest = arch.widest() * 4;
    // Nine activation buffers of `widest` per row (see below).
    let wanted = match opts.prefill_chunk {
        0 => (SCRATCH_BUDGET / (9 * widest)).clamp(2048, 16384),
        n => n as u64,
    };
    let chunk = wanted
        .min(ctx * opts.max_batch.max(1) as u64)
        .min(binding / widest);
    if chunk == 0 {
        return too_large(format!(
            "one token's activations ({}) exceed {limit_name} ({})",
            human(widest),
            human(binding)
        ));
    }
    let vocab_row = arch.vocab_size * 4;
    let logit_rows = chunk.min(binding / vocab_row);
    if logit_rows == 0 {
        return too_large(format!(
            "one row of logits ({}) exceeds {limit_name} ({})",
            human(vocab_row),
            human(binding)
        ));
    }
    // x, h, q, k, v, o, o2, gate, up: nine activation buffers.
    let rope = 2 * ctx * (a.head_dim.max(l.head_dim) / 2) * 4 * 2;
    let scratch = 9 * chunk * widest + logit_rows * vocab_row + rope;

    let mut fp = Footprint {
        weights,
        session,
        slots: 1,
        scratch,
        chunk: chunk as u32,
        logit_rows: logit_rows as u32,
        binding,
    };
    if let Some(budget) = opts.memory_budget {
        if fp.total() > budget {
            return too_large(format!(
                "it needs {} ({} weights, {} for a {ctx}-token session, {} scratch), over the memory budget ({}) by {}",
                human(fp.total()),
                human(weights),
                human(session),
                human(scratch),
                human(budget),
                human(fp.total() - budget)
            ));
        }
    }
    // A batch: as many sequences as the cache buffers' binding, the memory
    // left and a pass's rows allow.
    let widest_cache_row = per_buffer
        .iter()
        .map(|(_, row)| *row)
        .max()
        .unwrap_or(1)
        .max(1);
    let memory = opts.memory_budget.map_or(DEFAULT_BATCH_MEMORY, |b| {
        b.saturating_sub(weights + scratch)
    });
    let fits = [
        binding / (widest_cache_row * ctx),
        memory / session.max(1),
        chunk,
        opts.max_batch as u64,
    ];
    fp.slots = fits
        .into_iter()
        .min()
        .unwrap_or(1)
        .clamp(1, u32::MAX as u64) as u32;
    Ok(fp)
}

/// FLOPs (2 per multiply-add) of one token through the model at a context
/// of `tokens`: its weights once (the embedding is a lookup, the LM head
/// is not), and softmax attention over half the context on average.
pub fn flops_per_token(arch: &Arch, tokens: u32) -> f64 {
    let params: u64 = arch
        .expected_tensors()
        .iter()
        .filter(|(n, _)| *n != arch.embed_name())
        .map(|(_, s)| s.iter().product::<u64>())
        .sum();
    let head = if arch.tie_word_embeddings {
        arch.vocab_size * arch.hidden_size
    } else {
        0
    };
    let mixing: f64 = arch
        .mixers
        .iter()
        .map(|&m| mixer::mixing_flops(arch, m, tokens))
        .sum();
    2.0 * (params + head) as f64 + mixing
}

/// What the CPU engine holds for one sequence of `tokens`: its weights in
/// f32, the sequence's caches and states, and a pass's activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuFootprint {
    pub weights: u64,
    pub state: u64,
    pub scratch: u64,
}

impl CpuFootprint {
    pub fn total(&self) -> u64 {
        self.weights + self.state + self.scratch
    }
}

/// The most the page's CPU engine may take: WebAssembly's 32-bit memory
/// is 4 GiB, and the page's own data needs some of it.
pub const WASM_ENGINE_MEMORY: u64 = 3584 << 20;

/// For a sequence of `tokens`, keeping the routing capture when `capture`.
pub fn cpu_footprint(arch: &Arch, tokens: u32, capture: bool) -> CpuFootprint {
    let weights: u64 = arch
        .expected_tensors()
        .iter()
        .map(|(_, s)| s.iter().product::<u64>() * 4)
        .sum();
    let (a, l) = (&arch.attn, &arch.lightning);
    let t = tokens.max(1) as u64;
    let state = 4
        * (0..arch.num_layers())
            .map(|l| mixer::cpu_state_floats(arch, l, t, capture))
            .sum::<u64>();
    // The widest pass buffers: x, h, projections, MLP (gate, up, act), o;
    // and per thread a block of attention scores.
    let (d, i) = (arch.hidden_size, arch.intermediate_size);
    let width = 3 * d + 4 * i + 4 * (a.heads.max(l.heads) * a.head_dim.max(l.head_dim));
    let scratch = 4 * (t * width + 256 * t * 2 + t * arch.vocab_size.min(4096));
    CpuFootprint {
        weights,
        state,
        scratch,
    }
}

/// The CPU engine's footprint for `tokens` (with the routing capture when
/// `capture`), or why it does not fit: in a browser, WebAssembly's memory
/// is the ceiling.
pub fn check_cpu(arch: &Arch, tokens: u32, capture: bool) -> Result<CpuFootprint> {
    let f = cpu_footprint(arch, tokens, capture);
    if cfg!(target_arch = "wasm32") && f.total() > WASM_ENGINE_MEMORY {
        return Err(Error::TooLarge(format!(
            "the CPU engine needs {} for this model and a {tokens}-token prompt ({} of weights in f32, {} for the sequence, {} of activations), \
             over the {} WebAssembly gives a page",
            human(f.total()),
            human(f.weights),
            human(f.state),
            human(f.scratch),
            human(WASM_ENGINE_MEMORY)
        )));
    }
    Ok(f)
}

/// Each mixer the model uses, once, in order of first use.
fn distinct(mixers: &[Mixer]) -> Vec<Mixer> {
    let mut out: Vec<Mixer> = Vec::new();
    for &m in mixers {
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}
