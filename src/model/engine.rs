//! One face for both backends, so the CLI and the page run a model the
//! same way whether it lives on the GPU or, without WebGPU, on the CPU.

use super::cpu::{argmax, CpuModel, CpuState};
use super::fit::EngineOptions;
use super::gpu::{GpuModel, GpuSession, LoadProgress, Logits};
use crate::checkpoint::Checkpoint;
use crate::config::Arch;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::routing::RowStats;
use crate::source::ByteSource;

// One engine exists per loaded model: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Engine {
    Cpu(CpuModel),
    Gpu(GpuModel),
}

pub enum Session {
    Cpu(CpuState),
    Gpu(GpuSession),
}

impl Engine {
    /// Loads onto `gpu`, or into CPU memory when there is none.
    pub async fn load<S: ByteSource>(
        gpu: Option<&Gpu>,
        ck: &Checkpoint<S>,
        arch: Arch,
        opts: EngineOptions,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Engine> {
        match gpu {
            Some(gpu) => Ok(Engine::Gpu(GpuModel::load(gpu, ck, arch, opts, progress).await?)),
            None => Ok(Engine::Cpu(CpuModel::load(ck, arch).await?)),
        }
    }

    pub fn arch(&self) -> &Arch {
        match self {
            Engine::Cpu(m) => &m.arch,
            Engine::Gpu(m) => &m.arch,
        }
    }

    /// Changes attn_logits_scaling between calls: the reference evaluates
    /// lengths past its training length with HyPE, shorter ones without.
    pub fn set_logits_scaling(&mut self, scaling: crate::config::LogitsScaling) {
        match self {
            Engine::Cpu(m) => m.arch.logits_scaling = scaling,
            Engine::Gpu(m) => m.arch.logits_scaling = scaling,
        }
    }

    /// "cpu" or the GPU adapter's description.
    pub fn backend(&self) -> String {
        match self {
            Engine::Cpu(_) => "CPU reference (f32)".into(),
            Engine::Gpu(m) => m.gpu().describe(),
        }
    }

    pub fn session(&self, capture: bool) -> Session {
        match self {
            Engine::Cpu(m) => Session::Cpu(m.new_state(capture)),
            Engine::Gpu(m) => Session::Gpu(m.session()),
        }
    }

    /// Runs `ids` at the session's next positions; the logits asked for.
    pub async fn prefill(&self, s: &mut Session, ids: &[u32], logits: Logits) -> Result<Vec<f32>> {
        match (self, s) {
            (Engine::Cpu(m), Session::Cpu(st)) => {
                let all = m.step(st, ids)?;
                let v = m.arch.vocab_size as usize;
                Ok(match logits {
                    Logits::None => Vec::new(),
                    Logits::Last => all[all.len().saturating_sub(v)..].to_vec(),
                    Logits::All => all,
                })
            }
            (Engine::Gpu(m), Session::Gpu(st)) => m.prefill(st, ids, logits).await,
            _ => Err(mixed()),
        }
    }

    /// Greedy continuation: up to `n` tokens, ending after a `stop` token.
    pub async fn generate_greedy(&self, s: &mut Session, prompt: &[u32], n: usize, stop: &[u32]) -> Result<Vec<u32>> {
        match (self, s) {
            (Engine::Cpu(m), Session::Cpu(st)) => m.generate_greedy(st, prompt, n, stop),
            (Engine::Gpu(m), Session::Gpu(st)) => m.generate_greedy(st, prompt, n, stop).await,
            _ => Err(mixed()),
        }
    }

    /// The greedy next token after `ids`.
    pub async fn next_token(&self, s: &mut Session, ids: &[u32]) -> Result<u32> {
        match (self, s) {
            (Engine::Cpu(m), Session::Cpu(st)) => {
                let logits = m.step(st, ids)?;
                Ok(argmax(&logits[logits.len() - m.arch.vocab_size as usize..]))
            }
            (Engine::Gpu(m), Session::Gpu(st)) => m.next_token(st, ids).await,
            _ => Err(mixed()),
        }
    }
}

impl Engine {
    /// Routing reductions of softmax layer `layer` over the session so far
    /// (made with `capture`): on the GPU by its kernel, on the CPU the
    /// plain way from the captured probabilities.
    pub async fn routing_stats(&self, s: &Session, layer: usize, block: u32, needle: std::ops::Range<u32>) -> Result<RowStats> {
        match (self, s) {
            (Engine::Gpu(m), Session::Gpu(st)) => m.routing_stats(st, layer, block, needle).await,
            (Engine::Cpu(_), Session::Cpu(st)) => {
                let cap = st
                    .captured(layer)
                    .ok_or_else(|| Error::Usage(format!("layer {layer} is not a softmax layer of a session with capture on")))?;
                let needle = needle.start as usize..needle.end as usize;
                Ok(RowStats::from_probs(cap.pos, cap.heads, block as usize, needle, |h, t, u| cap.prob(h, t, u)))
            }
            _ => Err(mixed()),
        }
    }
}

fn mixed() -> Error {
    Error::Usage("a session of one backend was passed to the other".into())
}
