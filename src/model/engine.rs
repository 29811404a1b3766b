//! One face for the three engines, so the CLI and the page run a model
//! the same way wherever it lives: the plain f32 reference (the oracle),
//! the CPU engine, or the GPU. Every engine runs a batch of sequences;
//! a single sequence is a batch of one.

pub use super::calls::{LoadProgress, Logits};
use super::cpu::{argmax, CpuModel, CpuState};
use super::fast::{FastModel, FastSeq};
use super::fit::EngineOptions;
use super::gpu::{GpuBatch, GpuModel};
use super::rowstats::RowStats;
use super::weights::{self, Source};
use crate::checkpoint::Checkpoint;
use crate::config::Arch;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::safetensors::{decode_f32, Dtype};
use crate::source::ByteSource;

/// Where a model is loaded.
#[derive(Clone, Copy)]
pub enum Device<'a> {
    /// The plain f32 reference: slow, the oracle of the others.
    Reference,
    /// The CPU engine.
    Cpu,
    Gpu(&'a Gpu),
}

// One engine exists per loaded model: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Engine {
    Reference(CpuModel),
    Cpu(FastModel),
    Gpu(GpuModel),
}

/// The state of a batch of sequences on one engine.
pub enum Batch {
    Reference(Vec<CpuState>),
    Cpu(Vec<FastSeq>),
    Gpu(GpuBatch),
}

impl Batch {
    /// Sequences the batch holds.
    pub fn len(&self) -> usize {
        match self {
            Batch::Reference(s) => s.len(),
            Batch::Cpu(s) => s.len(),
            Batch::Gpu(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tokens sequence `i` has processed.
    pub fn pos(&self, i: usize) -> usize {
        match self {
            Batch::Reference(s) => s[i].pos(),
            Batch::Cpu(s) => s[i].pos(),
            Batch::Gpu(b) => b.pos(i) as usize,
        }
    }
}

/// The prompts of a batch at most hold this many tokens in all on the CPU
/// engine: more gains nothing once the products have this many rows.
const CPU_BATCH_TOKENS: usize = 4096;

impl Engine {
    /// Loads `ck` onto `device`.
    pub async fn load<S: ByteSource>(
        device: Device<'_>,
        ck: &Checkpoint<S>,
        arch: Arch,
        opts: EngineOptions,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Engine> {
        match device {
            Device::Reference => Ok(Engine::Reference(CpuModel::load(ck, arch).await?)),
            Device::Cpu => Ok(Engine::Cpu(FastModel::load(ck, arch).await?)),
            Device::Gpu(gpu) => Ok(Engine::Gpu(
                GpuModel::load(gpu, ck, arch, opts, progress).await?,
            )),
        }
    }

    pub fn arch(&self) -> &Arch {
        match self {
            Engine::Reference(m) => &m.arch,
            Engine::Cpu(m) => &m.arch,
            Engine::Gpu(m) => &m.arch,
        }
    }

    /// Changes attn_logits_scaling between calls: the reference evaluates
    /// lengths past its training length with HyPE, shorter ones without.
    pub fn set_logits_scaling(&mut self, scaling: crate::config::LogitsScaling) {
        match self {
            Engine::Reference(m) => m.arch.logits_scaling = scaling,
            Engine::Cpu(m) => m.arch.logits_scaling = scaling,
            Engine::Gpu(m) => m.arch.logits_scaling = scaling,
        }
    }

    /// Puts tensor `name`'s new bytes (in `dtype`, as a checkpoint stores
    /// them) in place of the loaded ones: swapping a merge's few tensors
    /// into a loaded sft gives exactly the logits of loading the merge.
    pub fn set_tensor(&mut self, name: &str, dtype: Dtype, bytes: &[u8]) -> Result<()> {
        // A merge swaps tensors as stored; the engines hold some in another
        // form (weights.rs: Qwen3.5's q_proj as its query rows plus its gate
        // rows under o_gate, its zero-centred norms as 1 + w). Every weight
        // made from `name` is converted here as loading converts it, once for
        // all engines.
        let arch = self.arch().clone();
        let targets: Vec<(String, Source)> = weights::engine_tensors(&arch)
            .into_iter()
            .map(|e| {
                let s = weights::source(&arch, &e);
                (e, s)
            })
            .filter(|(_, s)| s.tensor() == name)
            .collect();
        if targets.is_empty() {
            return Err(Error::NoSuchTensor {
                tensor: name.into(),
            });
        }
        let mut full = None;
        for (target, source) in targets {
            if let Source::Whole(_) = source {
                self.set_stored(&target, dtype, bytes)?;
                continue;
            }
            let values = match &full {
                Some(v) => v,
                None => full.insert(decode_f32(name, dtype, bytes, "a swapped tensor")?),
            };
            let converted = weights::convert(&arch, &source, values.clone());
            self.set_stored(&target, Dtype::F32, bytemuck::cast_slice(&converted))?;
        }
        Ok(())
    }

    /// Replaces a weight the engine holds under `name`, given in the form
    /// the engines compute with.
    fn set_stored(&mut self, name: &str, dtype: Dtype, bytes: &[u8]) -> Result<()> {
        let what = "a swapped tensor";
        match self {
            Engine::Reference(m) => m.replace_tensor(name, decode_f32(name, dtype, bytes, what)?),
            Engine::Cpu(m) => m.set_tensor(name, &decode_f32(name, dtype, bytes, what)?),
            Engine::Gpu(m) => m.set_tensor(name, dtype, bytes),
        }
    }

    /// What runs the model, for logs and the page.
    pub fn backend(&self) -> String {
        match self {
            Engine::Reference(_) => "CPU reference (f32)".into(),
            Engine::Cpu(_) => {
                let threads = super::par::threads();
                let simd = if cfg!(target_arch = "wasm32") {
                    "SIMD128"
                } else {
                    "AVX2/FMA where present"
                };
                format!(
                    "CPU engine ({threads} thread{}, {simd})",
                    if threads == 1 { "" } else { "s" }
                )
            }
            Engine::Gpu(m) => m.gpu().describe(),
        }
    }

    /// How many sequences of up to `tokens` tokens (prompt and answer) one
    /// batch takes on this engine.
    pub fn max_batch(&self, tokens: usize) -> usize {
        match self {
            Engine::Reference(_) => 1,
            Engine::Cpu(_) => (CPU_BATCH_TOKENS / tokens.max(1)).max(1),
            Engine::Gpu(m) => m.max_batch(tokens as u32) as usize,
        }
    }

    /// A batch of `n` fresh sequences. `capture` keeps what the routing
    /// diagnostics read (on the GPU, the model's own `capture` option).
    pub async fn batch(&self, n: usize, capture: bool) -> Result<Batch> {
        Ok(match self {
            Engine::Gpu(m) => Batch::Gpu(m.batch_checked(n as u32).await?),
            _ => self.fresh(n, capture)?,
        })
    }

    fn fresh(&self, n: usize, capture: bool) -> Result<Batch> {
        Ok(match self {
            Engine::Reference(m) => {
                Batch::Reference((0..n).map(|_| m.new_state(capture)).collect())
            }
            Engine::Cpu(m) => Batch::Cpu((0..n).map(|_| m.new_seq(capture)).collect()),
            Engine::Gpu(m) => Batch::Gpu(m.batch(n as u32)?),
        })
    }

    /// One fresh sequence (its small buffers unchecked).
    pub fn session(&self, capture: bool) -> Batch {
        self.fresh(1, capture)
            .expect("a batch of one always fits a loaded model")
    }

    /// Runs `ids[i]` at the next positions of sequence i (an empty slice
    /// leaves it where it is) and returns, per sequence, the logits asked
    /// for (`Last`: its last row `[V]`; `All`: `[n_i, V]`).
    pub async fn prefill_batch(
        &self,
        b: &mut Batch,
        ids: &[&[u32]],
        logits: Logits,
    ) -> Result<Vec<Vec<f32>>> {
        if ids.len() != b.len() {
            return Err(Error::Usage(format!(
                "{} token lists for a batch of {}",
                ids.len(),
                b.len()
            )));
        }
        let v = self.arch().vocab_size as usize;
        match (self, b) {
            (Engine::Reference(m), Batch::Reference(states)) => {
                let mut out = Vec::with_capacity(ids.len());
                for (st, t) in states.iter_mut().zip(ids) {
                    if t.is_empty() {
                        out.push(Vec::new());
                        continue;
                    }
                    let all = m.step(st, t)?;
                    out.push(match logits {
                        Logits::None => Vec::new(),
                        Logits::Last => all[all.len() - v..].to_vec(),
                        Logits::All => all,
                    });
                }
                Ok(out)
            }
            (Engine::Cpu(m), Batch::Cpu(seqs)) => {
                let mut refs: Vec<&mut FastSeq> = seqs.iter_mut().collect();
                let packed = m.step(&mut refs, ids, logits)?;
                Ok(split_rows(&packed, ids, logits, v))
            }
            (Engine::Gpu(m), Batch::Gpu(batch)) => m.prefill_batch(batch, ids, logits).await,
            _ => Err(mixed()),
        }
    }

    /// Runs `ids[i]` for every sequence (each non-empty) and returns the
    /// greedy next token of each (chosen on the GPU there).
    pub async fn next_tokens(&self, b: &mut Batch, ids: &[&[u32]]) -> Result<Vec<u32>> {
        if ids.iter().any(|t| t.is_empty()) {
            return Err(Error::Usage("no tokens to run".into()));
        }
        if let (Engine::Gpu(m), Batch::Gpu(batch)) = (self, &mut *b) {
            return m.next_tokens(batch, ids).await;
        }
        let rows = self.prefill_batch(b, ids, Logits::Last).await?;
        Ok(rows.iter().map(|r| argmax(r)).collect())
    }

    /// `steps` greedy tokens of each sequence in `seqs`, the first fed
    /// being `last[j]` for `seqs[j]`: sequence `seqs[j]` gets `out[j]`.
    /// On the GPU the tokens stay there between steps and come back once.
    pub async fn decode(
        &self,
        b: &mut Batch,
        seqs: &[usize],
        last: &[u32],
        steps: usize,
    ) -> Result<Vec<Vec<u32>>> {
        if let (Engine::Gpu(m), Batch::Gpu(batch)) = (self, &mut *b) {
            return m.decode(batch, seqs, last, steps).await;
        }
        let mut out: Vec<Vec<u32>> = vec![Vec::with_capacity(steps); seqs.len()];
        let mut feed: Vec<u32> = last.to_vec();
        for _ in 0..steps {
            let mut ids: Vec<&[u32]> = vec![&[]; b.len()];
            for (j, &s) in seqs.iter().enumerate() {
                ids[s] = std::slice::from_ref(&feed[j]);
            }
            let rows = self.prefill_batch(b, &ids, Logits::Last).await?;
            for (j, &s) in seqs.iter().enumerate() {
                let t = argmax(&rows[s]);
                out[j].push(t);
                feed[j] = t;
            }
        }
        Ok(out)
    }

    /// The logits asked for of `ids`, run at sequence 0's next positions.
    pub async fn prefill(&self, s: &mut Batch, ids: &[u32], logits: Logits) -> Result<Vec<f32>> {
        let mut all: Vec<&[u32]> = vec![&[]; s.len()];
        all[0] = ids;
        Ok(self.prefill_batch(s, &all, logits).await?.swap_remove(0))
    }

    /// Runs `ids` on sequence 0 and returns its greedy next token.
    pub async fn next_token(&self, s: &mut Batch, ids: &[u32]) -> Result<u32> {
        if s.len() != 1 {
            return Err(Error::Usage(
                "next_token runs a batch of one; use next_tokens".into(),
            ));
        }
        Ok(self.next_tokens(s, &[ids]).await?[0])
    }

    /// Greedy continuation of sequence 0: up to `n` tokens, ending after a
    /// `stop` token (included).
    pub async fn generate_greedy(
        &self,
        s: &mut Batch,
        prompt: &[u32],
        n: usize,
        stop: &[u32],
    ) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(n);
        if n == 0 {
            return Ok(out);
        }
        let mut tok = self.next_token(s, prompt).await?;
        loop {
            out.push(tok);
            if out.len() == n || stop.contains(&tok) {
                return Ok(out);
            }
            tok = self.next_token(s, &[tok]).await?;
        }
    }

    /// Routing reductions of softmax layer `layer` over sequence 0 so far
    /// (made with `capture`): on the GPU by its kernel, on the CPU the
    /// plain way from the captured probabilities.
    pub async fn routing_stats(
        &self,
        s: &Batch,
        layer: usize,
        block: u32,
        needle: std::ops::Range<u32>,
    ) -> Result<RowStats> {
        let not_captured = || {
            Error::Usage(format!(
                "layer {layer} is not a softmax layer of a session with capture on"
            ))
        };
        let cap = match (self, s) {
            (Engine::Gpu(m), Batch::Gpu(b)) => {
                return m.routing_stats(b, layer, block, needle).await
            }
            (Engine::Reference(_), Batch::Reference(st)) => {
                st[0].captured(layer).ok_or_else(not_captured)?
            }
            (Engine::Cpu(_), Batch::Cpu(st)) => st[0].captured(layer).ok_or_else(not_captured)?,
            _ => return Err(mixed()),
        };
        let needle = needle.start as usize..needle.end as usize;
        Ok(RowStats::from_probs(
            cap.pos,
            cap.heads,
            block as usize,
            needle,
            |h, t, u| cap.prob(h, t, u),
        ))
    }
}

/// Packed logits rows back into one list per sequence.
fn split_rows(packed: &[f32], ids: &[&[u32]], logits: Logits, v: usize) -> Vec<Vec<f32>> {
    let mut out = Vec::with_capacity(ids.len());
    let mut row = 0;
    for t in ids {
        let n = match logits {
            Logits::None => 0,
            Logits::Last => usize::from(!t.is_empty()),
            Logits::All => t.len(),
        };
        out.push(packed[row * v..(row + n) * v].to_vec());
        row += n;
    }
    out
}

fn mixed() -> Error {
    Error::Usage("a session of one engine was passed to another".into())
}
