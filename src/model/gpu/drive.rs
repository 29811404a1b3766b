//! Loading the GPU engine and driving it: batches, prefill in passes,
//! greedy tokens chosen on the GPU, decoding several steps a submission.

use std::collections::HashMap;

use super::batch::GpuBatch;
use super::buffers::{buffer, f32_buffer};
use super::model::{GpuModel, Scratch};
use super::pass::plan_passes;
use crate::checkpoint::Checkpoint;
use crate::config::gate::check_tensors;
use crate::config::{Arch, Mixer};
use crate::error::{Error, Result};
use crate::gpu::kernels::{Kernels, WDtype};
use crate::gpu::ops;
use crate::gpu::params::Seg;
use crate::gpu::recorder::{BindCache, Recorder};
use crate::gpu::weights::GpuWeight;
use crate::gpu::{read_buffer, Gpu};
use crate::model::calls::{LoadProgress, Logits};
use crate::model::cpu::alibi_slopes;
use crate::model::fit::{plan, EngineOptions};
use crate::model::mixer::rope_head_dims;
use crate::model::weights;
use crate::source::ByteSource;

/// cos and sin of position x frequency, computed in f64 like the CPU
/// reference (a GPU's f32 sin of large angles is far less accurate).
fn rope_table(positions: u32, inv_freq: &[f64]) -> Vec<f32> {
    let mut t = Vec::with_capacity(positions as usize * inv_freq.len() * 2);
    for pos in 0..positions {
        for f in inv_freq {
            let (sin, cos) = (pos as f64 * f).sin_cos();
            t.extend([cos as f32, sin as f32]);
        }
    }
    t
}

/// What the argmax kernel writes for a row of logits holding NaN or
/// infinity (shaders/argmax.wgsl): an id no vocabulary has.
const NON_FINITE: u32 = u32::MAX;

/// The GPU reads back logits or tokens, not every layer, so it cannot
/// name the layer where the numbers broke; the CPU engine can.
fn non_finite_logits() -> Error {
    Error::BrokeNumerically { at: "in its logits on the GPU (the CPU engine, --backend cpu, names the layer where it begins)".into() }
}

/// One weight as the GPU holds it: packed as stored, or (`converted`)
/// read in f32 as the engines compute with it.
struct Upload {
    name: String,
    dtype: WDtype,
    shape: Vec<u64>,
    converted: bool,
}

/// Every weight the engines read, by their names ([`weights`]). Stored
/// tensors go up packed as they are; those the engines compute with in
/// another form (Qwen3.5's `1 + w` norms, its gated `q_proj` split into
/// query and gate rows) and a gated-delta layer's or JetBlock's small
/// tensors (its kernels read them as f32; the convolution's is 3-D) go up
/// as f32.
fn upload_list<S: ByteSource>(ck: &Checkpoint<S>, arch: &Arch) -> Result<Vec<Upload>> {
    let shapes: HashMap<String, Vec<u64>> = arch.expected_tensors().into_iter().collect();
    let mut f32_small = HashMap::new();
    let g = &arch.gdn;
    for l in 0..arch.num_layers() {
        let n = arch.layer_names(l);
        let (a_log, dt_bias, norm) = match arch.mixers[l] {
            Mixer::GatedDelta => {
                f32_small.insert(n.gdn.conv, vec![g.conv_channels(), g.conv_kernel]);
                (n.gdn.a_log, n.gdn.dt_bias, n.gdn.norm)
            }
            Mixer::Jet => (n.jet.a_log, n.jet.dt_bias, n.o_norm),
            _ => continue,
        };
        f32_small.insert(a_log, vec![g.value_heads]);
        f32_small.insert(dt_bias, vec![g.value_heads]);
        f32_small.insert(norm, vec![g.value_dim]);
    }
    let mut out = Vec::new();
    for name in weights::engine_tensors(arch) {
        let shape = match weights::source(arch, &name) {
            weights::Source::Whole(_) if !f32_small.contains_key(&name) => {
                let t = ck.tensor(&name).ok_or_else(|| Error::NoSuchTensor {
                    tensor: name.clone(),
                })?;
                out.push(Upload {
                    dtype: WDtype::of(t.dtype, &t.name)?,
                    shape: shapes[&name].clone(),
                    name,
                    converted: false,
                });
                continue;
            }
            weights::Source::Whole(_) => f32_small[&name].clone(),
            weights::Source::PlusOne(_) => shapes[&name].clone(),
            weights::Source::Rows { head_dim, .. } => {
                vec![arch.attn.heads * head_dim as u64, arch.hidden_size]
            }
        };
        out.push(Upload {
            name,
            dtype: WDtype::F32,
            shape,
            converted: true,
        });
    }
    Ok(out)
}

impl GpuModel {
    /// Checks that the model fits, then uploads its weights one tensor (one
    /// chunk) at a time.
    pub async fn load<S: ByteSource>(
        gpu: &Gpu,
        ck: &Checkpoint<S>,
        arch: Arch,
        opts: EngineOptions,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<GpuModel> {
        check_tensors(&arch, &ck.tensors)?;
        let tensors = upload_list(ck, &arch)?;
        let plan_tensors: Vec<_> = tensors
            .iter()
            .map(|t| (t.name.clone(), t.dtype, t.shape.clone()))
            .collect();
        let footprint = plan(&arch, &plan_tensors, &gpu.limits, &opts)?;

        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut w = HashMap::new();
        let mut done = 0;
        for Upload {
            name,
            dtype,
            shape,
            converted,
        } in &tensors
        {
            progress(LoadProgress {
                done,
                total: footprint.weights,
                tensor: name,
            });
            let weight = if *converted {
                let values = weights::read(ck, &arch, name, "the GPU engine").await?;
                let bytes: &[u8] = bytemuck::cast_slice(&values);
                GpuWeight::upload(gpu, name, *dtype, shape, footprint.binding, |off, len| {
                    std::future::ready(Ok(bytes[off as usize..(off + len) as usize].to_vec()))
                })
                .await?
            } else {
                let entry = ck.tensor(name).expect("checked above");
                GpuWeight::upload(gpu, name, *dtype, shape, footprint.binding, |off, len| {
                    ck.read_tensor_range(entry, off, len)
                })
                .await?
            };
            done += weight.bytes();
            w.insert(name.clone(), weight);
            // Hands the staged bytes to the GPU now rather than holding a
            // whole model in staging memory.
            gpu.queue.submit([]);
        }
        progress(LoadProgress {
            done,
            total: footprint.weights,
            tensor: "",
        });

        let l = &arch.lightning;
        let chunk = footprint.chunk as u64;
        let act = |label: &str| buffer(gpu, label, chunk * arch.widest() * 4);
        let s = Scratch {
            ids: buffer(gpu, "ids", chunk * 4),
            x: act("x"),
            h: act("h"),
            q: act("q"),
            k: act("k"),
            v: act("v"),
            o: act("o"),
            o2: act("o2"),
            gate: act("gate"),
            up: act("up"),
            logits: buffer(
                gpu,
                "logits",
                footprint.logit_rows as u64 * arch.vocab_size * 4,
            ),
            argmax: buffer(gpu, "argmax", footprint.slots as u64 * 4),
            dummy: buffer(gpu, "dummy", 16),
        };
        let mut rope = HashMap::new();
        for dh in rope_head_dims(&arch) {
            rope.insert(
                dh,
                f32_buffer(
                    gpu,
                    "rope",
                    &rope_table(opts.max_context, &arch.rope_inv_freq(dh)),
                ),
            );
        }
        let slopes: Vec<f32> = alibi_slopes(l.heads as usize)
            .into_iter()
            .map(|s| s as f32)
            .collect();
        let slopes = f32_buffer(gpu, "slopes", &slopes);
        if let Some(e) = scope.pop().await {
            return Err(Error::TooLarge(format!(
                "the GPU ran out of memory loading {} of weights: {e}",
                crate::units::human_bytes(footprint.weights)
            )));
        }
        let names = (0..arch.num_layers())
            .map(|l| arch.layer_names(l))
            .collect();
        let pass_rows = std::cell::Cell::new(footprint.chunk);
        Ok(GpuModel {
            arch,
            footprint,
            opts,
            kernels: Kernels::new(gpu),
            w,
            names,
            s,
            rope,
            slopes,
            pass_rows,
        })
    }

    /// A fresh batch of `n` sequences, its buffers' allocation checked
    /// (an adapter may refuse memory the plan thought it had).
    pub async fn batch_checked(&self, n: u32) -> Result<GpuBatch> {
        let scope = self
            .gpu()
            .device
            .push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let b = self.batch(n);
        if let Some(e) = scope.pop().await {
            return Err(Error::TooLarge(format!(
                "the GPU refused the memory for a batch of {n} sequences of {} tokens: {e}",
                self.opts.max_context
            )));
        }
        b
    }

    /// A fresh batch of `n` sequences (position 0, empty caches, zero states).
    pub fn batch(&self, n: u32) -> Result<GpuBatch> {
        if n > self.footprint.slots {
            return Err(Error::TooLarge(format!(
                "a batch of {n} sequences; this model on this adapter takes at most {}",
                self.footprint.slots
            )));
        }
        let layers = self
            .arch
            .mixers
            .iter()
            .map(|&m| self.layer_state(m, n))
            .collect();
        Ok(GpuBatch {
            pos: vec![0; n as usize],
            layers,
            binds: BindCache::default(),
            layouts: Default::default(),
        })
    }

    /// A fresh single sequence.
    pub fn session(&self) -> GpuBatch {
        self.batch(1)
            .expect("one sequence always fits a loaded model")
    }

    /// Writes `bytes` (engine weight `name`, in `dtype`, already in the
    /// form the engines compute with: `Engine::set_tensor` converts stored
    /// tensors) over the uploaded weight, chunk by chunk as `load` placed
    /// it: the model then computes exactly what loading a checkpoint
    /// holding those bytes would. A weight held packed takes its own dtype;
    /// one held in f32 (converted at load) takes any float, decoded.
    pub fn set_tensor(
        &self,
        name: &str,
        dtype: crate::safetensors::Dtype,
        bytes: &[u8],
    ) -> Result<()> {
        let w = self.w.get(name).ok_or_else(|| Error::NoSuchTensor {
            tensor: name.into(),
        })?;
        if w.dtype == WDtype::of(dtype, name)? {
            return self.write_weight(name, w, dtype, bytes);
        }
        if w.dtype != WDtype::F32 {
            return Err(Error::Usage(format!(
                "{name}: the replacement is {dtype}, the GPU holds it packed as {:?}",
                w.dtype
            )));
        }
        let values = crate::safetensors::decode_f32(name, dtype, bytes, "a swapped tensor")?;
        self.write_weight(
            name,
            w,
            crate::safetensors::Dtype::F32,
            bytemuck::cast_slice(&values),
        )
    }

    fn write_weight(
        &self,
        name: &str,
        w: &GpuWeight,
        dtype: crate::safetensors::Dtype,
        bytes: &[u8],
    ) -> Result<()> {
        if bytes.len() as u64 != w.bytes() {
            return Err(Error::Usage(format!("{name}: the replacement ({dtype}, {} bytes as the GPU holds it) differs from the loaded tensor ({} bytes)", bytes.len(), w.bytes())));
        }
        let row = w.cols as usize * w.dtype.bytes() as usize;
        for c in &w.chunks {
            let mut part = bytes[c.row0 as usize * row..][..c.rows as usize * row].to_vec();
            part.resize(part.len().next_multiple_of(4).max(4), 0);
            self.gpu().queue.write_buffer(&c.buffer, 0, &part);
        }
        Ok(())
    }

    fn check_ids(&self, b: &GpuBatch, ids: &[&[u32]]) -> Result<()> {
        if ids.len() != b.len() {
            return Err(Error::Usage(format!(
                "{} token lists for a batch of {}",
                ids.len(),
                b.len()
            )));
        }
        let v = self.arch.vocab_size;
        for (i, t) in ids.iter().enumerate() {
            if let Some(id) = t.iter().find(|&&id| id as u64 >= v) {
                return Err(Error::Usage(format!(
                    "token id {id} is outside the vocabulary ({v})"
                )));
            }
            let end = b.pos[i] as u64 + t.len() as u64;
            if end > self.opts.max_context as u64 {
                return Err(Error::Usage(format!(
                    "{end} tokens exceed this session's context of {} (raise max_context)",
                    self.opts.max_context
                )));
            }
        }
        Ok(())
    }

    /// Runs `ids[i]` at the next positions of sequence i, every sequence
    /// packed into passes of up to a chunk of rows, and returns per
    /// sequence the logits asked for (`Last`: `[V]`, `All`: `[n_i, V]`).
    pub async fn prefill_batch(
        &self,
        b: &mut GpuBatch,
        ids: &[&[u32]],
        logits: Logits,
    ) -> Result<Vec<Vec<f32>>> {
        self.check_ids(b, ids)?;
        let v = self.arch.vocab_size as usize;
        let mut out: Vec<Vec<f32>> = ids.iter().map(|_| Vec::new()).collect();
        for pass in plan_passes(ids, self.pass_rows.get() as usize) {
            let segs = Self::segments_of(b, &pass);
            let layout = self.layout(b, 0, &segs);
            let mut rec = self.record_pass(b, &pass, &layout);
            // Rows whose logits are wanted: (packed row, sequence).
            let wanted: Vec<(u32, usize)> = match logits {
                Logits::None => Vec::new(),
                Logits::All => segs
                    .iter()
                    .zip(&pass)
                    .flat_map(|(s, p)| (s.row0..s.row0 + s.rows).map(move |r| (r, p.seq)))
                    .collect(),
                Logits::Last => segs
                    .iter()
                    .zip(&pass)
                    .filter(|(_, p)| p.last)
                    .map(|(s, p)| (s.row0 + s.rows - 1, p.seq))
                    .collect(),
            };
            for (g, group) in wanted
                .chunks(self.footprint.logit_rows as usize)
                .enumerate()
            {
                let mut r = std::mem::replace(&mut rec, Recorder::cached(&self.kernels, &b.binds));
                let rows: Vec<u32> = group.iter().map(|g| g.0).collect();
                self.record_head(&mut r, &layout, g as u32 * self.footprint.logit_rows, &rows);
                r.submit();
                let bytes = read_buffer(
                    self.gpu(),
                    &self.s.logits,
                    group.len() as u64 * v as u64 * 4,
                )
                .await?;
                let floats: &[f32] = bytemuck::cast_slice(&bytes);
                if floats[..group.len() * v].iter().any(|x| !x.is_finite()) {
                    return Err(non_finite_logits());
                }
                for (row, &(_, seq)) in floats.chunks(v).zip(group) {
                    out[seq].extend_from_slice(row);
                }
            }
            rec.submit();
            for seg in &segs {
                b.pos[seg.slot as usize] += seg.rows;
            }
        }
        Ok(out)
    }

    /// Runs `ids[i]` for every sequence and returns each one's greedy next
    /// token, chosen on the GPU: one read of 4 bytes a sequence.
    pub async fn next_tokens(&self, b: &mut GpuBatch, ids: &[&[u32]]) -> Result<Vec<u32>> {
        self.check_ids(b, ids)?;
        for pass in plan_passes(ids, self.pass_rows.get() as usize) {
            let segs = Self::segments_of(b, &pass);
            let layout = self.layout(b, 0, &segs);
            let mut rec = self.record_pass(b, &pass, &layout);
            let ends: Vec<(u32, u32)> = segs
                .iter()
                .zip(&pass)
                .filter(|(_, p)| p.last)
                .map(|(s, p)| (s.row0 + s.rows - 1, p.seq as u32))
                .collect();
            for (g, group) in ends.chunks(self.footprint.logit_rows as usize).enumerate() {
                let rows: Vec<u32> = group.iter().map(|g| g.0).collect();
                self.record_head(
                    &mut rec,
                    &layout,
                    g as u32 * self.footprint.logit_rows,
                    &rows,
                );
                // Sequence numbers are ascending within a pass, and each ends once.
                for (i, &(_, seq)) in group.iter().enumerate() {
                    ops::argmax(
                        &mut rec,
                        &self.s.logits,
                        i as u32,
                        self.arch.vocab_size as u32,
                        &self.s.argmax,
                        seq,
                        1,
                    );
                }
                rec.submit();
                rec = Recorder::cached(&self.kernels, &b.binds);
            }
            rec.submit();
            for seg in &segs {
                b.pos[seg.slot as usize] += seg.rows;
            }
        }
        let bytes = read_buffer(self.gpu(), &self.s.argmax, b.len() as u64 * 4).await?;
        let tokens = bytemuck::cast_slice::<u8, u32>(&bytes)[..b.len()].to_vec();
        if tokens.contains(&NON_FINITE) {
            return Err(non_finite_logits());
        }
        Ok(tokens)
    }

    /// `steps` greedy tokens of each sequence in `seqs`, feeding `last[j]`
    /// to `seqs[j]` first. Each step's tokens go from the argmax straight
    /// into the next step's input: the steps are one submission and one
    /// read back.
    pub async fn decode(
        &self,
        b: &mut GpuBatch,
        seqs: &[usize],
        last: &[u32],
        steps: usize,
    ) -> Result<Vec<Vec<u32>>> {
        let n = seqs.len() as u32;
        if n == 0 || steps == 0 {
            return Ok(vec![Vec::new(); seqs.len()]);
        }
        if n > self.footprint.chunk {
            return Err(Error::Usage(format!(
                "{n} sequences in one decode step; a pass takes {}",
                self.footprint.chunk
            )));
        }
        for &s in seqs {
            let end = b.pos[s] as u64 + steps as u64;
            if end > self.opts.max_context as u64 {
                return Err(Error::Usage(format!(
                    "{end} tokens exceed this session's context of {} (raise max_context)",
                    self.opts.max_context
                )));
            }
        }
        let gpu = self.gpu();
        let history = buffer(gpu, "generated", n as u64 * steps as u64 * 4);
        gpu.queue
            .write_buffer(&self.s.ids, 0, bytemuck::cast_slice(last));
        let mut rec = Recorder::cached(&self.kernels, &b.binds);
        let mut layouts = Vec::with_capacity(steps);
        for step in 0..steps {
            let segs: Vec<Seg> = seqs
                .iter()
                .enumerate()
                .map(|(j, &s)| Seg {
                    row0: j as u32,
                    rows: 1,
                    slot: s as u32,
                    pos0: b.pos[s] + step as u32,
                })
                .collect();
            layouts.push(self.layout(b, step, &segs));
        }
        let rows: Vec<u32> = (0..n).collect();
        for (step, layout) in layouts.iter().enumerate() {
            self.record_layers(&mut rec, b, n, layout);
            for (g, group) in rows.chunks(self.footprint.logit_rows as usize).enumerate() {
                self.record_head(
                    &mut rec,
                    layout,
                    g as u32 * self.footprint.logit_rows,
                    group,
                );
                ops::argmax(
                    &mut rec,
                    &self.s.logits,
                    0,
                    self.arch.vocab_size as u32,
                    &self.s.ids,
                    group[0],
                    group.len() as u32,
                );
            }
            rec.copy(
                &self.s.ids,
                0,
                &history,
                step as u64 * n as u64 * 4,
                n as u64 * 4,
            );
        }
        rec.submit();
        let bytes = read_buffer(gpu, &history, n as u64 * steps as u64 * 4).await?;
        let tokens: &[u32] = bytemuck::cast_slice(&bytes);
        if tokens[..n as usize * steps].contains(&NON_FINITE) {
            return Err(non_finite_logits());
        }
        for &s in seqs {
            b.pos[s] += steps as u32;
        }
        Ok((0..n as usize)
            .map(|j| {
                (0..steps)
                    .map(|step| tokens[step * n as usize + j])
                    .collect()
            })
            .collect())
    }

    /// Runs `ids` at sequence 0's next positions; the logits asked for.
    pub async fn prefill(&self, s: &mut GpuBatch, ids: &[u32], logits: Logits) -> Result<Vec<f32>> {
        let mut all: Vec<&[u32]> = vec![&[]; s.len()];
        all[0] = ids;
        Ok(self.prefill_batch(s, &all, logits).await?.swap_remove(0))
    }

    /// One token on sequence 0; its logits `[V]`.
    pub async fn decode_step(&self, s: &mut GpuBatch, id: u32) -> Result<Vec<f32>> {
        self.prefill(s, &[id], Logits::Last).await
    }

    /// Runs `ids` on a one-sequence batch and returns its greedy next token.
    pub async fn next_token(&self, s: &mut GpuBatch, ids: &[u32]) -> Result<u32> {
        if ids.is_empty() {
            return Err(Error::Usage("no tokens to run".into()));
        }
        Ok(self.next_tokens(s, &[ids]).await?[0])
    }
}
