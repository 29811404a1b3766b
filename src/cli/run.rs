//! `qklab run`: a prompt through the model, its greedy continuation, and
//! optionally the prompt's logits as a safetensors file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use qklab::model::engine::Logits;
use qklab::safetensors::{encode_header, Dtype, TensorInfo};
use qklab::source::block_on;
use qklab::tokenizer::TOKENIZER_FILE;
use qklab::{Error, Result};

#[derive(Args)]
pub struct RunArgs {
    /// A .safetensors file or a Hugging Face checkpoint folder.
    pub ckpt: PathBuf,
    /// Token ids, e.g. 256,72,105.
    #[arg(long, value_delimiter = ',', conflicts_with = "text")]
    pub ids: Option<Vec<u32>>,
    /// Text, tokenized with the checkpoint's tokenizer.json.
    #[arg(long)]
    pub text: Option<String>,
    /// Tokens to generate at most.
    #[arg(long, default_value_t = 32)]
    pub max_new: usize,
    /// auto (the faster here), gpu (wgpu), cpu (the CPU engine) or reference (the plain f32 oracle).
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Set attn_logits_scaling to "hype A".
    #[arg(long)]
    pub hype: Option<f64>,
    /// Write the prompt's logits here: safetensors, one F32 tensor `logits` [T, V].
    #[arg(long)]
    pub logits_out: Option<PathBuf>,
    /// Do not stop at the config's eos_token_id.
    #[arg(long)]
    pub no_stop: bool,
}

/// A safetensors file holding one F32 tensor `logits` [T, V].
fn write_logits(path: &std::path::Path, logits: &[f32], t: usize, v: usize) -> Result<()> {
    let bytes: Vec<u8> = logits.iter().flat_map(|x| x.to_le_bytes()).collect();
    let info = TensorInfo {
        name: "logits".into(),
        dtype: Dtype::F32,
        shape: vec![t as u64, v as u64],
        begin: 0,
        end: bytes.len() as u64,
    };
    let mut out = encode_header(
        &[info],
        &BTreeMap::from([("format".to_string(), "pt".to_string())]),
    );
    out.extend_from_slice(&bytes);
    std::fs::write(path, out).map_err(|e| Error::io(path.display(), e))
}

pub fn run(a: RunArgs) -> Result<()> {
    let m = super::open_model(&a.ckpt)?.with_hype(a.hype)?;
    let ids = match (&a.ids, &a.text) {
        (Some(ids), None) => ids.clone(),
        (None, Some(text)) => match &m.tokenizer {
            Some(t) => t.encode(text)?,
            None => {
                return Err(Error::Usage(format!(
                    "--text needs a {TOKENIZER_FILE} beside the checkpoint; give --ids instead"
                )))
            }
        },
        _ => return Err(Error::Usage("give exactly one of --ids and --text".into())),
    };
    if ids.is_empty() {
        return Err(Error::Usage("the prompt is empty".into()));
    }
    // Past the trained positions a model may still run, but its answers
    // mean little: say so, and run.
    if let Some(max) =
        m.ck.config_u32("max_position_embeddings")
            .filter(|&max| ids.len() + a.max_new > max as usize)
    {
        eprintln!("warning: {} tokens (prompt and new) exceed the config's max_position_embeddings ({max})", ids.len() + a.max_new);
    }
    let backend = super::backend(&a.backend)?;
    let started = Instant::now();
    let engine = block_on(backend.load(&m, (ids.len() + a.max_new) as u32, false))?;
    eprintln!(
        "loaded on {}{} in {:.2} s",
        engine.backend(),
        backend.note,
        started.elapsed().as_secs_f64()
    );

    let v = engine.arch().vocab_size as usize;
    if let Some(path) = &a.logits_out {
        let mut s = engine.session(false);
        let logits = block_on(engine.prefill(&mut s, &ids, Logits::All))?;
        write_logits(path, &logits, ids.len(), v)?;
        eprintln!("wrote logits [{}, {v}] to {}", ids.len(), path.display());
    }
    let stop: Vec<u32> = if a.no_stop { vec![] } else { m.stop_ids() };
    let mut s = engine.session(false);
    let t0 = Instant::now();
    let out = block_on(engine.generate_greedy(&mut s, &ids, a.max_new, &stop))?;
    let secs = t0.elapsed().as_secs_f64();
    println!("prompt: {} tokens", ids.len());
    println!(
        "generated ids: {}",
        out.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    if let Some(t) = &m.tokenizer {
        println!("generated text: {:?}", t.decode(&out)?);
    }
    eprintln!("{} tokens in {secs:.2} s (prefill included)", out.len());
    Ok(())
}
