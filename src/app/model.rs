//! A checkpoint opened for running, and the engine it loads into.

use crate::checkpoint::Checkpoint;
use crate::config::arch_of;
use crate::config::{Arch, LogitsScaling};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::engine::{Device, Engine};
use crate::model::fit::{check_cpu, flops_per_token, EngineOptions};
use crate::prompts::PromptMaker;
use crate::source::ByteSource;
use crate::tokenizer::Tokenizer;
use crate::units::human_bytes;

/// A checkpoint with what running it needs: its architecture and, when it
/// ships one, its tokenizer. `name` labels its results.
pub struct OpenModel<S: ByteSource> {
    pub name: String,
    pub ck: Checkpoint<S>,
    pub arch: Arch,
    pub tokenizer: Option<Tokenizer>,
}

impl<S: ByteSource> OpenModel<S> {
    /// Reads the headers, the config and the tokenizer (no weights).
    pub async fn open(name: impl Into<String>, source: S) -> Result<OpenModel<S>> {
        let name = name.into();
        let named = |e: Error| Error::Usage(format!("{name}: {e}"));
        let ck = Checkpoint::open(source).await?;
        let arch = arch_of(&ck)?;
        let tokenizer = Tokenizer::of_checkpoint(&ck).await.map_err(named)?;
        Ok(OpenModel {
            name,
            ck,
            arch,
            tokenizer,
        })
    }

    /// Sets attn_logits_scaling to HyPE with this A (`--hype A`).
    pub fn with_hype(mut self, a: Option<f64>) -> Result<Self> {
        if let Some(a) = a {
            self.arch.logits_scaling =
                LogitsScaling::parse(&serde_json::json!(format!("hype {a}")))
                    .map_err(Error::Usage)?;
        }
        Ok(self)
    }

    pub fn prompts(&self) -> Result<PromptMaker<'_>> {
        Ok(PromptMaker::of(
            &self.ck,
            &self.arch,
            self.tokenizer.as_ref(),
        ))
    }

    /// Token ids that end a greedy answer (the config's EOS).
    pub fn stop_ids(&self) -> Vec<u32> {
        self.ck.config_ids("eos_token_id")
    }
}

/// Which engine the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// The faster for this machine: the GPU, unless there is none or it
    /// is a CPU emulation (llvmpipe, SwiftShader), where the CPU engine wins.
    Auto,
    /// The GPU, or an error saying why there is none.
    Gpu,
    /// The CPU engine.
    Cpu,
    /// The plain f32 reference (the oracle; slow).
    Reference,
}

impl BackendChoice {
    /// "auto", "gpu", "cpu" or "reference" (the CLI's `--backend`).
    pub fn parse(s: &str) -> Result<BackendChoice> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "gpu" => Ok(BackendChoice::Gpu),
            "cpu" => Ok(BackendChoice::Cpu),
            "reference" => Ok(BackendChoice::Reference),
            other => Err(Error::Usage(format!(
                "--backend {other:?}: expected auto, gpu, cpu or reference"
            ))),
        }
    }
}

/// Where models run: a GPU device (shared by every model loaded on it),
/// the CPU engine or the reference, and why, for status lines.
pub struct Backend {
    gpu: Option<Gpu>,
    reference: bool,
    /// The GPU passed over for being a CPU emulation: a refusal of the CPU
    /// engine names what it would take there.
    emulated: Option<Gpu>,
    /// Empty, or why the engine is not the GPU.
    pub note: String,
}

/// A GPU on which one prompt would take longer than this is refused
/// before loading, with the estimate and the CPU engine's footprint.
const SLOWEST_PROMPT_S: f64 = 300.0;

/// The time one GPU submission (a prefill pass) aims at: well below the
/// 2 s after which Windows resets a GPU.
const SUBMISSION_S: f64 = 0.5;

fn human_secs(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

impl Backend {
    pub async fn open(choice: BackendChoice) -> Result<Backend> {
        let cpu = |note: String| Backend {
            gpu: None,
            reference: false,
            emulated: None,
            note,
        };
        match choice {
            BackendChoice::Gpu => Ok(Backend {
                gpu: Some(Gpu::new().await?),
                reference: false,
                emulated: None,
                note: String::new(),
            }),
            BackendChoice::Cpu => Ok(cpu(String::new())),
            BackendChoice::Reference => Ok(Backend {
                gpu: None,
                reference: true,
                emulated: None,
                note: String::new(),
            }),
            BackendChoice::Auto => Ok(match Gpu::new().await {
                Ok(gpu) if gpu.is_cpu_emulation() => Backend {
                    note: format!(
                        " (the GPU here, {}, is emulated on the CPU: the CPU engine is faster)",
                        gpu.describe()
                    ),
                    emulated: Some(gpu),
                    ..cpu(String::new())
                },
                Ok(gpu) => Backend {
                    gpu: Some(gpu),
                    reference: false,
                    emulated: None,
                    note: String::new(),
                },
                Err(e) => cpu(format!(" (no GPU here: {e})")),
            }),
        }
    }

    /// The CPU engine, with `note` saying why (for status lines).
    pub fn cpu_because(note: impl Into<String>) -> Backend {
        Backend {
            gpu: None,
            reference: false,
            emulated: None,
            note: note.into(),
        }
    }

    /// A backend on a device the caller opened (tests bring their own);
    /// without one, the CPU engine.
    pub fn on(gpu: Option<Gpu>) -> Backend {
        Backend {
            gpu,
            reference: false,
            emulated: None,
            note: String::new(),
        }
    }

    pub fn gpu(&self) -> Option<&Gpu> {
        self.gpu.as_ref()
    }

    /// Seconds one prompt of `tokens` would take on `gpu`, and its measured GFLOP/s.
    async fn gpu_estimate(
        gpu: &Gpu,
        arch: &crate::config::Arch,
        tokens: u32,
    ) -> Result<(f64, f64)> {
        let rate = crate::gpu::calibrate::matmul_gflops(gpu).await?;
        Ok((
            flops_per_token(arch, tokens) * tokens as f64 / (rate * 1e9),
            rate,
        ))
    }

    /// Whether `m` can run prompts of `tokens` here, said before anything
    /// is loaded: the CPU engine within its memory ceiling, the GPU fast
    /// enough that a prompt takes minutes at most. A refusal names the
    /// other engine's prospects.
    async fn preflight<S: ByteSource>(
        &self,
        m: &OpenModel<S>,
        tokens: u32,
        capture: bool,
    ) -> Result<Option<f64>> {
        let cpu = || match check_cpu(&m.arch, tokens, capture) {
            Ok(f) => format!(
                "the CPU engine would need {} and fits: choose it",
                human_bytes(f.total())
            ),
            Err(Error::TooLarge(e)) => e,
            Err(e) => e.to_string(),
        };
        match (&self.gpu, self.reference) {
            (Some(gpu), _) => {
                let (secs, rate) = Self::gpu_estimate(gpu, &m.arch, tokens).await?;
                if secs > SLOWEST_PROMPT_S {
                    return Err(Error::TooLarge(format!(
                        "on this GPU ({}, {rate:.1} GFLOP/s measured) one {tokens}-token prompt would take about {}; {}",
                        gpu.describe(),
                        human_secs(secs),
                        cpu()
                    )));
                }
                Ok(Some(rate))
            }
            (None, true) => Ok(None),
            (None, false) => match check_cpu(&m.arch, tokens, capture) {
                Ok(_) => Ok(None),
                Err(Error::TooLarge(e)) => {
                    let gpu = match &self.emulated {
                        Some(g) => {
                            let (secs, rate) = Self::gpu_estimate(g, &m.arch, tokens).await?;
                            format!("; on this browser's GPU ({}, emulated on the CPU, {rate:.1} GFLOP/s) one prompt would take about {}", g.describe(), human_secs(secs))
                        }
                        None => String::new(),
                    };
                    Err(Error::TooLarge(format!(
                        "{e}{gpu}. Run it from the command line, or in a browser with a GPU"
                    )))
                }
                Err(e) => Err(e),
            },
        }
    }

    /// Loads `m`'s weights for sequences of up to `max_context` tokens,
    /// once [`Self::preflight`] says they can run.
    pub async fn load<S: ByteSource>(
        &self,
        m: &OpenModel<S>,
        max_context: u32,
        capture: bool,
    ) -> Result<Engine> {
        let named = |e: Error| Error::Usage(format!("{}: {e}", m.name));
        let rate = self
            .preflight(m, max_context.max(1), capture)
            .await
            .map_err(named)?;
        let opts = EngineOptions {
            max_context: max_context.max(1),
            capture,
            ..Default::default()
        };
        let device = match (&self.gpu, self.reference) {
            (Some(gpu), _) => Device::Gpu(gpu),
            (None, true) => Device::Reference,
            (None, false) => Device::Cpu,
        };
        let engine = Engine::load(device, &m.ck, m.arch.clone(), opts, &mut |_| {})
            .await
            .map_err(named)?;
        if let (Engine::Gpu(g), Some(rate)) = (&engine, rate) {
            // Passes of as many rows as the GPU does in SUBMISSION_S.
            let rows = SUBMISSION_S * rate * 1e9 / flops_per_token(&m.arch, max_context);
            g.limit_pass_rows(rows as u32);
        }
        if let Some(gpu) = &self.gpu {
            gpu.inject_fault_from_env();
        }
        Ok(engine)
    }
}
