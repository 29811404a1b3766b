//! The `run` and `bench` commands: the engine from the command line.

pub mod bench;
pub mod niah;
pub mod routing;
pub mod run;

use qklab::checkpoint::Checkpoint;
use qklab::config::{Arch, LogitsScaling};
use qklab::gpu::Gpu;
use qklab::source::{block_on, ByteSource};
use qklab::summary::arch_of;
use qklab::{Error, Result};

/// `--backend`: gpu (default) or cpu.
pub fn gpu_for(backend: &str) -> Result<Option<Gpu>> {
    match backend {
        "gpu" => Ok(Some(block_on(Gpu::new())?)),
        "cpu" => Ok(None),
        other => Err(Error::Usage(format!("--backend {other:?}: expected gpu or cpu"))),
    }
}

/// The architecture, with `--hype A` replacing attn_logits_scaling.
pub fn arch_with_hype<S: ByteSource>(ck: &Checkpoint<S>, hype: Option<f64>) -> Result<Arch> {
    let mut arch = arch_of(ck)?;
    if let Some(a) = hype {
        arch.logits_scaling = LogitsScaling::parse(&serde_json::json!(format!("hype {a}"))).map_err(Error::Usage)?;
    }
    Ok(arch)
}
