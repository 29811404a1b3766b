//! A checkpoint opened for running, and the engine it loads into.

use crate::checkpoint::Checkpoint;
use crate::config::{Arch, LogitsScaling};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::engine::{Device, Engine};
use crate::model::fit::EngineOptions;
use crate::prompts::PromptMaker;
use crate::source::ByteSource;
use crate::summary::arch_of;
use crate::tokenizer::Tokenizer;

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
        Ok(OpenModel { name, ck, arch, tokenizer })
    }

    /// Sets attn_logits_scaling to HyPE with this A (`--hype A`).
    pub fn with_hype(mut self, a: Option<f64>) -> Result<Self> {
        if let Some(a) = a {
            self.arch.logits_scaling = LogitsScaling::parse(&serde_json::json!(format!("hype {a}"))).map_err(Error::Usage)?;
        }
        Ok(self)
    }

    pub fn prompts(&self) -> Result<PromptMaker<'_>> {
        PromptMaker::of(&self.ck, self.tokenizer.as_ref())
    }

    /// Token ids that end a greedy answer (the config's EOS).
    pub fn stop_ids(&self) -> Vec<u32> {
        self.ck.config_u32("eos_token_id").into_iter().collect()
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
            other => Err(Error::Usage(format!("--backend {other:?}: expected auto, gpu, cpu or reference"))),
        }
    }
}

/// Where models run: a GPU device (shared by every model loaded on it),
/// the CPU engine or the reference, and why, for status lines.
pub struct Backend {
    gpu: Option<Gpu>,
    reference: bool,
    /// Empty, or why the engine is not the GPU.
    pub note: String,
}

impl Backend {
    pub async fn open(choice: BackendChoice) -> Result<Backend> {
        let cpu = |note: String| Backend { gpu: None, reference: false, note };
        match choice {
            BackendChoice::Gpu => Ok(Backend { gpu: Some(Gpu::new().await?), reference: false, note: String::new() }),
            BackendChoice::Cpu => Ok(cpu(String::new())),
            BackendChoice::Reference => Ok(Backend { gpu: None, reference: true, note: String::new() }),
            BackendChoice::Auto => Ok(match Gpu::new().await {
                Ok(gpu) if gpu.is_cpu_emulation() => cpu(format!(" (the GPU here, {}, is emulated on the CPU: the CPU engine is faster)", gpu.describe())),
                Ok(gpu) => Backend { gpu: Some(gpu), reference: false, note: String::new() },
                Err(e) => cpu(format!(" (no GPU here: {e})")),
            }),
        }
    }

    /// The CPU engine, with `note` saying why (for status lines).
    pub fn cpu_because(note: impl Into<String>) -> Backend {
        Backend { gpu: None, reference: false, note: note.into() }
    }

    /// A backend on a device the caller opened (tests bring their own);
    /// without one, the CPU engine.
    pub fn on(gpu: Option<Gpu>) -> Backend {
        Backend { gpu, reference: false, note: String::new() }
    }

    pub fn gpu(&self) -> Option<&Gpu> {
        self.gpu.as_ref()
    }

    /// Loads `m`'s weights for sequences of up to `max_context` tokens.
    pub async fn load<S: ByteSource>(&self, m: &OpenModel<S>, max_context: u32, capture: bool) -> Result<Engine> {
        let opts = EngineOptions { max_context: max_context.max(1), capture, ..Default::default() };
        let device = match (&self.gpu, self.reference) {
            (Some(gpu), _) => Device::Gpu(gpu),
            (None, true) => Device::Reference,
            (None, false) => Device::Cpu,
        };
        Engine::load(device, &m.ck, m.arch.clone(), opts, &mut |_| {}).await.map_err(|e| Error::Usage(format!("{}: {e}", m.name)))
    }
}
