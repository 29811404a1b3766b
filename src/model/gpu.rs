//! HypeNet on the GPU: weights uploaded packed, a batch of sequences run
//! together (their new tokens packed into one block of rows, one command
//! buffer per pass), KV caches and Lightning states kept on the GPU
//! between calls, greedy tokens chosen and fed back on the GPU. The same code runs natively (Vulkan, Metal, DX12) and in the
//! browser (WebGPU); the CPU reference in `cpu.rs` is its oracle.

use std::collections::HashMap;

use super::cpu::alibi_slopes;
use super::fit::{plan, EngineOptions, Footprint};
use super::rowstats::RowStats;
use crate::checkpoint::Checkpoint;
use crate::config::{Arch, LogitsScaling, Mixer};
use crate::error::{Error, Result};
use crate::gpu::kernels::{Kernels, WDtype};
use crate::gpu::ops::{self, AttnShape, HeadPrep, LightningShape, Rows, RowStatsShape, Segments, Spare};
use crate::gpu::params::Seg;
use crate::gpu::recorder::{BindCache, Recorder};
use crate::gpu::weights::GpuWeight;
use crate::gpu::{read_buffer, Gpu};
use crate::names::{self, LayerNames, Proj};
use crate::source::ByteSource;

/// Which rows of logits a call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    None,
    Last,
    All,
}

/// Loading progress: bytes uploaded so far of the total, and the tensor.
pub struct LoadProgress<'a> {
    pub done: u64,
    pub total: u64,
    pub tensor: &'a str,
}

struct Scratch {
    ids: wgpu::Buffer,
    x: wgpu::Buffer,
    h: wgpu::Buffer,
    q: wgpu::Buffer,
    k: wgpu::Buffer,
    v: wgpu::Buffer,
    o: wgpu::Buffer,
    o2: wgpu::Buffer,
    gate: wgpu::Buffer,
    up: wgpu::Buffer,
    logits: wgpu::Buffer,
    argmax: wgpu::Buffer,
    /// Bound where a kernel's optional input is switched off.
    dummy: wgpu::Buffer,
}

pub struct GpuModel {
    pub arch: Arch,
    pub footprint: Footprint,
    opts: EngineOptions,
    kernels: Kernels,
    w: HashMap<String, GpuWeight>,
    /// Each layer's tensor names.
    names: Vec<LayerNames>,
    s: Scratch,
    /// RoPE cos/sin tables by head size, for max_context positions.
    rope: HashMap<u64, wgpu::Buffer>,
    slopes: wgpu::Buffer,
    /// Rows per prefill pass: the plan's chunk, or fewer where the GPU is
    /// slow enough that a full one would run past a watchdog.
    pass_rows: std::cell::Cell<u32>,
}

enum LayerState {
    Softmax { k: wgpu::Buffer, v: wgpu::Buffer, lse: wgpu::Buffer, q: Option<wgpu::Buffer> },
    Lightning { state: wgpu::Buffer },
}

/// A batch of sequences on the GPU: each has a slot in every layer's
/// caches (`max_context` rows) and Lightning states, and its position.
pub struct GpuBatch {
    pos: Vec<u32>,
    layers: Vec<LayerState>,
    /// The session's parameter buffer and bind groups, reused by every
    /// pass and step that records the same dispatches again.
    binds: BindCache,
    /// Where the layouts of passes go: entry i serves the i-th layout of
    /// one submission (decode records several steps in one), so that the
    /// same buffers, and bind groups, serve every call.
    layouts: std::cell::RefCell<Vec<LayoutBuffers>>,
}

impl GpuBatch {
    pub fn len(&self) -> usize {
        self.pos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pos.is_empty()
    }

    /// Tokens sequence `i` has processed.
    pub fn pos(&self, i: usize) -> u32 {
        self.pos[i]
    }
}

/// What a softmax layer kept of sequence 0, read back: queries (after
/// norm, RoPE and HyPE) and keys `[pos, heads * dh]` / `[pos, kv_heads * dh]`,
/// and the log-sum-exp of the scaled logits `[pos, heads]`.
pub struct Captured {
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub lse: Vec<f32>,
}

/// One sequence's tokens in a pass.
struct Piece<'a> {
    seq: usize,
    ids: &'a [u32],
    /// Whether the sequence's input ends with this piece.
    last: bool,
}

/// The buffers of one layout, sized for a pass of `chunk` rows.
#[derive(Clone)]
struct LayoutBuffers {
    positions: wgpu::Buffer,
    segs: wgpu::Buffer,
    to_cache: wgpu::Buffer,
    head_rows: wgpu::Buffer,
}

/// A pass's packed rows on the GPU: positions per row, segments, and
/// where each row's key and value go in the caches.
struct Layout {
    rows: u32,
    /// Rows whose logits the head computes, by (packed row, logits row).
    head_rows: wgpu::Buffer,
    positions: wgpu::Buffer,
    segs: wgpu::Buffer,
    count: u32,
    max_rows: u32,
    max_end: u32,
    /// (packed row, cache row) for every row.
    to_cache: wgpu::Buffer,
}

impl Layout {
    fn segments(&self) -> Segments<'_> {
        Segments { segs: &self.segs, count: self.count, max_rows: self.max_rows, max_end: self.max_end }
    }
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

fn buffer(gpu: &Gpu, label: &str, bytes: u64) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.next_multiple_of(4).max(4),
        usage: STORAGE,
        mapped_at_creation: false,
    })
}

fn data_buffer(gpu: &Gpu, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    let b = buffer(gpu, label, bytes.len() as u64);
    gpu.queue.write_buffer(&b, 0, bytes);
    b
}

fn f32_buffer(gpu: &Gpu, label: &str, values: &[f32]) -> wgpu::Buffer {
    data_buffer(gpu, label, bytemuck::cast_slice(values))
}

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

/// Cuts every sequence's tokens into passes of at most `chunk` rows,
/// filling each pass with as many sequences as fit.
fn plan_passes<'a>(ids: &[&'a [u32]], chunk: usize) -> Vec<Vec<Piece<'a>>> {
    let mut passes: Vec<Vec<Piece>> = Vec::new();
    let mut room = 0;
    for (seq, t) in ids.iter().enumerate() {
        let mut at = 0;
        while at < t.len() {
            if room == 0 {
                passes.push(Vec::new());
                room = chunk;
            }
            let n = room.min(t.len() - at);
            passes.last_mut().expect("a pass was opened").push(Piece { seq, ids: &t[at..at + n], last: at + n == t.len() });
            at += n;
            room -= n;
        }
    }
    passes
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
        let mut tensors = Vec::new();
        for (name, shape) in arch.expected_tensors() {
            let t = ck.tensor(&name).ok_or_else(|| Error::NoSuchTensor { tensor: name.clone() })?;
            if t.shape != shape {
                return Err(Error::Gpu(format!("{name} has shape {:?}, the config implies {shape:?}", t.shape)));
            }
            tensors.push((name, WDtype::of(t.dtype, &t.name)?, shape));
        }
        let footprint = plan(&arch, &tensors, &gpu.limits, &opts)?;

        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut w = HashMap::new();
        let mut done = 0;
        for (name, dtype, shape) in &tensors {
            progress(LoadProgress { done, total: footprint.weights, tensor: name });
            let entry = ck.tensor(name).expect("checked above");
            let weight =
                GpuWeight::upload(gpu, name, *dtype, shape, footprint.binding, |off, len| ck.read_tensor_range(entry, off, len))
                    .await?;
            done += weight.bytes();
            w.insert(name.clone(), weight);
            // Hands the staged bytes to the GPU now rather than holding a
            // whole model in staging memory.
            gpu.queue.submit([]);
        }
        progress(LoadProgress { done, total: footprint.weights, tensor: "" });

        let (a, l) = (&arch.attn, &arch.lightning);
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
            logits: buffer(gpu, "logits", footprint.logit_rows as u64 * arch.vocab_size * 4),
            argmax: buffer(gpu, "argmax", footprint.slots as u64 * 4),
            dummy: buffer(gpu, "dummy", 16),
        };
        let mut rope = HashMap::new();
        for (on, dh) in [(arch.attn_use_rope, a.head_dim), (arch.lightning_use_rope, l.head_dim)] {
            if on && !rope.contains_key(&dh) {
                rope.insert(dh, f32_buffer(gpu, "rope", &rope_table(opts.max_context, &arch.rope_inv_freq(dh))));
            }
        }
        let slopes: Vec<f32> = alibi_slopes(l.heads as usize).into_iter().map(|s| s as f32).collect();
        let slopes = f32_buffer(gpu, "slopes", &slopes);
        if let Some(e) = scope.pop().await {
            return Err(Error::TooLarge(format!("the GPU ran out of memory loading {} of weights: {e}", crate::units::human_bytes(footprint.weights))));
        }
        let names = (0..arch.num_layers()).map(LayerNames::of).collect();
        let pass_rows = std::cell::Cell::new(footprint.chunk);
        Ok(GpuModel { arch, footprint, opts, kernels: Kernels::new(gpu), w, names, s, rope, slopes, pass_rows })
    }

    pub fn gpu(&self) -> &Gpu {
        self.kernels.gpu()
    }

    /// Keeps prefill passes to at most `rows` rows (at least 16, at most
    /// the plan's chunk).
    pub fn limit_pass_rows(&self, rows: u32) {
        self.pass_rows.set(rows.clamp(16, self.footprint.chunk));
    }

    /// Rows per prefill pass now.
    pub fn pass_rows(&self) -> u32 {
        self.pass_rows.get()
    }

    /// Sequences of up to `tokens` tokens a batch takes (all of the
    /// plan's slots: caches are sized for max_context).
    pub fn max_batch(&self, tokens: u32) -> u32 {
        if tokens > self.opts.max_context {
            return 1;
        }
        self.footprint.slots
    }

    /// A fresh batch of `n` sequences, its buffers' allocation checked
    /// (an adapter may refuse memory the plan thought it had).
    pub async fn batch_checked(&self, n: u32) -> Result<GpuBatch> {
        let scope = self.gpu().device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let b = self.batch(n);
        if let Some(e) = scope.pop().await {
            return Err(Error::TooLarge(format!("the GPU refused the memory for a batch of {n} sequences of {} tokens: {e}", self.opts.max_context)));
        }
        b
    }

    /// A fresh batch of `n` sequences (position 0, empty caches, zero states).
    pub fn batch(&self, n: u32) -> Result<GpuBatch> {
        if n > self.footprint.slots {
            return Err(Error::TooLarge(format!("a batch of {n} sequences; this model on this adapter takes at most {}", self.footprint.slots)));
        }
        let gpu = self.gpu();
        let (a, l) = (&self.arch.attn, &self.arch.lightning);
        let rows = n.max(1) as u64 * self.opts.max_context as u64;
        let layers = self
            .arch
            .mixers
            .iter()
            .map(|m| match m {
                Mixer::Softmax => LayerState::Softmax {
                    k: buffer(gpu, "k cache", rows * a.kv_heads * a.head_dim * 4),
                    v: buffer(gpu, "v cache", rows * a.kv_heads * a.head_dim * 4),
                    lse: buffer(gpu, "lse", rows * a.heads * 4),
                    q: self.opts.capture.then(|| buffer(gpu, "captured q", rows * a.heads * a.head_dim * 4)),
                },
                Mixer::Lightning => LayerState::Lightning { state: buffer(gpu, "state", n.max(1) as u64 * l.heads * l.head_dim * l.head_dim * 4) },
            })
            .collect();
        Ok(GpuBatch { pos: vec![0; n as usize], layers, binds: BindCache::default(), layouts: Default::default() })
    }

    /// A fresh single sequence.
    pub fn session(&self) -> GpuBatch {
        self.batch(1).expect("one sequence always fits a loaded model")
    }

    /// Writes `bytes` (the tensor in its checkpoint dtype) over the
    /// uploaded tensor `name`, chunk by chunk as `load` placed it: the
    /// model then computes exactly what loading a checkpoint holding
    /// those bytes would.
    pub fn set_tensor(&self, name: &str, dtype: crate::safetensors::Dtype, bytes: &[u8]) -> Result<()> {
        let w = self.w.get(name).ok_or_else(|| Error::NoSuchTensor { tensor: name.into() })?;
        if WDtype::of(dtype, name)? != w.dtype || bytes.len() as u64 != w.bytes() {
            return Err(Error::Usage(format!("{name}: the replacement ({dtype}, {} bytes) differs from the loaded tensor ({} bytes)", bytes.len(), w.bytes())));
        }
        let row = w.cols as usize * w.dtype.bytes() as usize;
        for c in &w.chunks {
            let mut part = bytes[c.row0 as usize * row..][..c.rows as usize * row].to_vec();
            part.resize(part.len().next_multiple_of(4).max(4), 0);
            self.gpu().queue.write_buffer(&c.buffer, 0, &part);
        }
        Ok(())
    }

    fn weight(&self, name: &str) -> &GpuWeight {
        // Every expected tensor was uploaded by `load`.
        &self.w[name]
    }

    fn check_ids(&self, b: &GpuBatch, ids: &[&[u32]]) -> Result<()> {
        if ids.len() != b.len() {
            return Err(Error::Usage(format!("{} token lists for a batch of {}", ids.len(), b.len())));
        }
        let v = self.arch.vocab_size;
        for (i, t) in ids.iter().enumerate() {
            if let Some(id) = t.iter().find(|&&id| id as u64 >= v) {
                return Err(Error::Usage(format!("token id {id} is outside the vocabulary ({v})")));
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

    /// Writes where the rows of a pass go (`segs`, packed in order) into
    /// the batch's layout buffers number `index`.
    fn layout(&self, b: &GpuBatch, index: usize, segs: &[Seg]) -> Layout {
        let gpu = self.gpu();
        let ctx = self.opts.max_context;
        let mut pool = b.layouts.borrow_mut();
        while pool.len() <= index {
            let rows = self.footprint.chunk as u64;
            pool.push(LayoutBuffers {
                positions: buffer(gpu, "positions", rows * 4),
                segs: buffer(gpu, "segments", rows * std::mem::size_of::<Seg>() as u64),
                to_cache: buffer(gpu, "to cache", rows * 8),
                head_rows: buffer(gpu, "head rows", rows * 8),
            });
        }
        let bufs = pool[index].clone();
        let rows: u32 = segs.iter().map(|s| s.rows).sum();
        debug_assert!(rows <= self.footprint.chunk && segs.len() as u32 <= self.footprint.chunk);
        let positions: Vec<u32> = segs.iter().flat_map(|s| s.pos0..s.pos0 + s.rows).collect();
        let to_cache: Vec<[u32; 2]> = segs.iter().flat_map(|s| (0..s.rows).map(move |i| [s.row0 + i, s.slot * ctx + s.pos0 + i])).collect();
        gpu.queue.write_buffer(&bufs.positions, 0, bytemuck::cast_slice(&positions));
        gpu.queue.write_buffer(&bufs.segs, 0, bytemuck::cast_slice(segs));
        gpu.queue.write_buffer(&bufs.to_cache, 0, bytemuck::cast_slice(&to_cache));
        Layout {
            rows,
            head_rows: bufs.head_rows,
            positions: bufs.positions,
            segs: bufs.segs,
            count: segs.len() as u32,
            max_rows: segs.iter().map(|s| s.rows).max().unwrap_or(0),
            max_end: segs.iter().map(|s| s.pos0 + s.rows).max().unwrap_or(0),
            to_cache: bufs.to_cache,
        }
    }

    /// The segments of a pass of `pieces`, packed in order.
    fn segments_of(b: &GpuBatch, pieces: &[Piece]) -> Vec<Seg> {
        let mut row0 = 0;
        let mut pos: Vec<u32> = b.pos.clone();
        pieces
            .iter()
            .map(|p| {
                let seg = Seg { row0, rows: p.ids.len() as u32, slot: p.seq as u32, pos0: pos[p.seq] };
                row0 += seg.rows;
                pos[p.seq] += seg.rows;
                seg
            })
            .collect()
    }

    /// Runs `ids[i]` at the next positions of sequence i, every sequence
    /// packed into passes of up to a chunk of rows, and returns per
    /// sequence the logits asked for (`Last`: `[V]`, `All`: `[n_i, V]`).
    pub async fn prefill_batch(&self, b: &mut GpuBatch, ids: &[&[u32]], logits: Logits) -> Result<Vec<Vec<f32>>> {
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
                Logits::All => segs.iter().zip(&pass).flat_map(|(s, p)| (s.row0..s.row0 + s.rows).map(move |r| (r, p.seq))).collect(),
                Logits::Last => segs.iter().zip(&pass).filter(|(_, p)| p.last).map(|(s, p)| (s.row0 + s.rows - 1, p.seq)).collect(),
            };
            for (g, group) in wanted.chunks(self.footprint.logit_rows as usize).enumerate() {
                let mut r = std::mem::replace(&mut rec, Recorder::cached(&self.kernels, &b.binds));
                let rows: Vec<u32> = group.iter().map(|g| g.0).collect();
                self.record_head(&mut r, &layout, g as u32 * self.footprint.logit_rows, &rows);
                r.submit();
                let bytes = read_buffer(self.gpu(), &self.s.logits, group.len() as u64 * v as u64 * 4).await?;
                let floats: &[f32] = bytemuck::cast_slice(&bytes);
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
            let ends: Vec<(u32, u32)> = segs.iter().zip(&pass).filter(|(_, p)| p.last).map(|(s, p)| (s.row0 + s.rows - 1, p.seq as u32)).collect();
            for (g, group) in ends.chunks(self.footprint.logit_rows as usize).enumerate() {
                let rows: Vec<u32> = group.iter().map(|g| g.0).collect();
                self.record_head(&mut rec, &layout, g as u32 * self.footprint.logit_rows, &rows);
                // Sequence numbers are ascending within a pass, and each ends once.
                for (i, &(_, seq)) in group.iter().enumerate() {
                    ops::argmax(&mut rec, &self.s.logits, i as u32, self.arch.vocab_size as u32, &self.s.argmax, seq, 1);
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
        Ok(bytemuck::cast_slice::<u8, u32>(&bytes)[..b.len()].to_vec())
    }

    /// `steps` greedy tokens of each sequence in `seqs`, feeding `last[j]`
    /// to `seqs[j]` first. Each step's tokens go from the argmax straight
    /// into the next step's input: the steps are one submission and one
    /// read back.
    pub async fn decode(&self, b: &mut GpuBatch, seqs: &[usize], last: &[u32], steps: usize) -> Result<Vec<Vec<u32>>> {
        let n = seqs.len() as u32;
        if n == 0 || steps == 0 {
            return Ok(vec![Vec::new(); seqs.len()]);
        }
        if n > self.footprint.chunk {
            return Err(Error::Usage(format!("{n} sequences in one decode step; a pass takes {}", self.footprint.chunk)));
        }
        for &s in seqs {
            let end = b.pos[s] as u64 + steps as u64;
            if end > self.opts.max_context as u64 {
                return Err(Error::Usage(format!("{end} tokens exceed this session's context of {} (raise max_context)", self.opts.max_context)));
            }
        }
        let gpu = self.gpu();
        let history = buffer(gpu, "generated", n as u64 * steps as u64 * 4);
        gpu.queue.write_buffer(&self.s.ids, 0, bytemuck::cast_slice(last));
        let mut rec = Recorder::cached(&self.kernels, &b.binds);
        let mut layouts = Vec::with_capacity(steps);
        for step in 0..steps {
            let segs: Vec<Seg> = seqs.iter().enumerate().map(|(j, &s)| Seg { row0: j as u32, rows: 1, slot: s as u32, pos0: b.pos[s] + step as u32 }).collect();
            layouts.push(self.layout(b, step, &segs));
        }
        let rows: Vec<u32> = (0..n).collect();
        for (step, layout) in layouts.iter().enumerate() {
            self.record_layers(&mut rec, b, n, layout);
            for (g, group) in rows.chunks(self.footprint.logit_rows as usize).enumerate() {
                self.record_head(&mut rec, layout, g as u32 * self.footprint.logit_rows, group);
                ops::argmax(&mut rec, &self.s.logits, 0, self.arch.vocab_size as u32, &self.s.ids, group[0], group.len() as u32);
            }
            rec.copy(&self.s.ids, 0, &history, step as u64 * n as u64 * 4, n as u64 * 4);
        }
        rec.submit();
        let bytes = read_buffer(gpu, &history, n as u64 * steps as u64 * 4).await?;
        let tokens: &[u32] = bytemuck::cast_slice(&bytes);
        for &s in seqs {
            b.pos[s] += steps as u32;
        }
        Ok((0..n as usize).map(|j| (0..steps).map(|step| tokens[step * n as usize + j]).collect()).collect())
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

    /// Reads back what softmax layer `layer` kept of sequence 0 (needs `capture`).
    pub async fn captured(&self, s: &GpuBatch, layer: usize) -> Result<Captured> {
        let Some(LayerState::Softmax { k, lse, q: Some(q), .. }) = s.layers.get(layer) else {
            return Err(Error::Usage(format!("layer {layer} is not a softmax layer of a session with capture on")));
        };
        let a = &self.arch.attn;
        let pos = s.pos[0] as u64;
        let read = |b, width: u64| read_buffer(self.gpu(), b, (pos * width * 4).max(4));
        let floats = |v: Vec<u8>, n: u64| bytemuck::cast_slice::<u8, f32>(&v)[..n as usize].to_vec();
        Ok(Captured {
            q: floats(read(q, a.heads * a.head_dim).await?, pos * a.heads * a.head_dim),
            k: floats(read(k, a.kv_heads * a.head_dim).await?, pos * a.kv_heads * a.head_dim),
            lse: floats(read(lse, a.heads).await?, pos * a.heads),
        })
    }

    /// Routing reductions of softmax layer `layer` over everything sequence
    /// 0 has seen (needs `capture`), computed on the GPU.
    pub async fn routing_stats(&self, s: &GpuBatch, layer: usize, block: u32, needle: std::ops::Range<u32>) -> Result<RowStats> {
        let Some(LayerState::Softmax { k, lse, q: Some(q), .. }) = s.layers.get(layer) else {
            return Err(Error::Usage(format!("layer {layer} is not a softmax layer of a session with capture on")));
        };
        let a = &self.arch.attn;
        let (rows, heads) = (s.pos[0], a.heads as u32);
        let mut stats = RowStats::zeroed(rows as usize, heads as usize, block as usize);
        let gpu = self.gpu();
        let dist = buffer(gpu, "dist", stats.dist.len() as u64 * 4);
        let mass = buffer(gpu, "mass", stats.mass.len() as u64 * 4);
        let pooled = buffer(gpu, "pooled", stats.pooled.len() as u64 * 4);
        let shape = RowStatsShape { rows, heads, kv_heads: a.kv_heads as u32, dh: a.head_dim as u32 };
        let mut rec = Recorder::new(&self.kernels);
        ops::row_stats(&mut rec, &shape, block, needle, [q, k, lse], [&dist, &mass, &pooled]);
        rec.submit();
        for (buf, out) in [(&dist, &mut stats.dist), (&mass, &mut stats.mass), (&pooled, &mut stats.pooled)] {
            let n = out.len();
            let bytes = read_buffer(gpu, buf, (n as u64 * 4).max(4)).await?;
            out.copy_from_slice(&bytemuck::cast_slice::<u8, f32>(&bytes)[..n]);
        }
        Ok(stats)
    }

    /// Records one pass over `pieces` (at most a chunk of rows) into the
    /// residual stream `x`, all layers.
    fn record_pass<'a>(&'a self, b: &'a GpuBatch, pieces: &[Piece], layout: &Layout) -> Recorder<'a> {
        let ids: Vec<u32> = pieces.iter().flat_map(|p| p.ids.iter().copied()).collect();
        self.gpu().queue.write_buffer(&self.s.ids, 0, bytemuck::cast_slice(&ids));
        let mut rec = Recorder::cached(&self.kernels, &b.binds);
        self.record_layers(&mut rec, b, ids.len() as u32, layout);
        rec
    }

    /// Embedding and every layer over the `n` packed rows whose ids are in
    /// the ids buffer.
    fn record_layers(&self, rec: &mut Recorder, b: &GpuBatch, n: u32, layout: &Layout) {
        debug_assert_eq!(n, layout.rows);
        let d = self.arch.hidden_size as u32;
        let eps = self.arch.rms_norm_eps as f32;
        ops::embed(rec, &self.s.ids, n, self.weight(names::EMBED), &self.s.x);
        for (l, state) in b.layers.iter().enumerate() {
            let x = Rows::new(&self.s.x, d);
            ops::rmsnorm(rec, x, n, self.weight(&self.names[l].input_norm), eps, &self.s.h);
            match state {
                LayerState::Softmax { k, v, lse, q } => self.record_softmax(rec, l, layout, [k, v, lse], q.as_ref()),
                LayerState::Lightning { state } => self.record_lightning(rec, l, layout, state),
            }
            ops::rmsnorm(rec, x, n, self.weight(&self.names[l].post_norm), eps, &self.s.h);
            self.record_mlp(rec, l, n);
        }
    }

    /// Logits of packed rows `rows` (at most `logit_rows`) of the last
    /// pass into rows 0.. of `logits`.
    /// `first` numbers the group's first row among the pass's rows whose
    /// logits are wanted: groups recorded into one submission keep their
    /// row tables apart.
    fn record_head(&self, rec: &mut Recorder, layout: &Layout, first: u32, rows: &[u32]) {
        let a = &self.arch;
        let d = a.hidden_size as u32;
        let g = rows.len() as u32;
        // The rows to `o2`, side by side: the norm and the head read them there.
        let map: Vec<[u32; 2]> = rows.iter().enumerate().map(|(i, &r)| [r, i as u32]).collect();
        self.gpu().queue.write_buffer(&layout.head_rows, first as u64 * 8, bytemuck::cast_slice(&map));
        ops::copy_rows(rec, (&layout.head_rows, first), g, d, &self.s.x, &self.s.o2);
        ops::rmsnorm(rec, Rows::new(&self.s.o2, d), g, self.weight(names::FINAL_NORM), a.rms_norm_eps as f32, &self.s.h);
        let head = if a.tie_word_embeddings { names::EMBED } else { names::LM_HEAD };
        let logits = Rows::new(&self.s.logits, a.vocab_size as u32);
        ops::matmul(rec, Rows::new(&self.s.h, d), g, self.weight(head), logits, false);
    }

    /// Scratch a mixer may use while it runs (attention's split keys,
    /// Lightning's parts): the MLP's `up`, free until the MLP runs.
    fn spare(&self) -> Spare<'_> {
        Spare::all(&self.s.up)
    }

    /// y = h W^T (+ bias) for one of a layer's attention projections.
    fn project(&self, rec: &mut Recorder, l: usize, proj: Proj, n: u32, y: Rows) {
        let d = self.arch.hidden_size as u32;
        let p = self.names[l].proj(proj);
        ops::matmul(rec, Rows::new(&self.s.h, d), n, self.weight(&p.weight), y, false);
        if let Some(b) = self.w.get(&p.bias) {
            ops::bias(rec, b, y, n);
        }
    }

    /// x += o_proj(o) (+ bias).
    fn project_out(&self, rec: &mut Recorder, l: usize, o: &wgpu::Buffer, width: u32, n: u32) {
        let d = self.arch.hidden_size as u32;
        let p = &self.names[l].o;
        let x = Rows::new(&self.s.x, d);
        ops::matmul(rec, Rows::new(o, width), n, self.weight(&p.weight), x, true);
        if let Some(b) = self.w.get(&p.bias) {
            ops::bias(rec, b, x, n);
        }
    }

    fn record_softmax(&self, rec: &mut Recorder, l: usize, layout: &Layout, [k, v, lse]: [&wgpu::Buffer; 3], q_cap: Option<&wgpu::Buffer>) {
        let a = &self.arch;
        let n = layout.rows;
        let (heads, kv_heads, dh) = (a.attn.heads as u32, a.attn.kv_heads as u32, a.attn.head_dim as u32);
        let (qw, kw) = (heads * dh, kv_heads * dh);
        let names = &self.names[l];
        self.project(rec, l, Proj::Q, n, Rows::new(&self.s.q, qw));
        self.project(rec, l, Proj::K, n, Rows::new(&self.s.k, kw));
        self.project(rec, l, Proj::V, n, Rows::new(&self.s.v, kw));
        let rope = a.attn_use_rope.then(|| &self.rope[&a.attn.head_dim]);
        let eps = a.rms_norm_eps as f32;
        let (hype_a, scale) = match a.logits_scaling {
            LogitsScaling::None => (None, 1.0),
            LogitsScaling::Constant(c) => (None, c as f32),
            LogitsScaling::Hype(big_a) => (Some(big_a as f32), 1.0),
        };
        let norm = |name: &str| a.attn_use_qk_norm.then(|| self.weight(name));
        let q_prep = HeadPrep { heads, dh, norm: norm(&names.q_norm), rope, hype_a, scale, eps };
        ops::heads(rec, Rows::new(&self.s.q, qw), n, &layout.positions, &q_prep, &self.s.dummy);
        let k_prep = HeadPrep { heads: kv_heads, dh, norm: norm(&names.k_norm), rope, hype_a: None, scale: 1.0, eps };
        ops::heads(rec, Rows::new(&self.s.k, kw), n, &layout.positions, &k_prep, &self.s.dummy);
        // Each sequence's keys and values join its cache before it attends.
        ops::copy_rows(rec, (&layout.to_cache, 0), n, kw, &self.s.k, k);
        ops::copy_rows(rec, (&layout.to_cache, 0), n, kw, &self.s.v, v);
        let shape = AttnShape { heads, kv_heads, dh, ctx: self.opts.max_context };
        ops::attend(rec, &shape, layout.segments(), [&self.s.q, k, v], &self.s.o, lse, self.spare());
        if let Some(cap) = q_cap {
            ops::copy_rows(rec, (&layout.to_cache, 0), n, qw, &self.s.q, cap);
        }
        if a.attn_use_output_gate {
            ops::matmul(rec, Rows::new(&self.s.h, a.hidden_size as u32), n, self.weight(&names.o_gate), Rows::new(&self.s.gate, qw), false);
            ops::gate(rec, &self.s.o, &self.s.gate, n * qw);
        }
        self.project_out(rec, l, &self.s.o, qw, n);
    }

    fn record_lightning(&self, rec: &mut Recorder, l: usize, layout: &Layout, state: &wgpu::Buffer) {
        let a = &self.arch;
        let n = layout.rows;
        let (heads, kv_heads, dk) = (a.lightning.heads as u32, a.lightning.kv_heads as u32, a.lightning.head_dim as u32);
        let (qw, kw) = (heads * dk, kv_heads * dk);
        let names = &self.names[l];
        self.project(rec, l, Proj::Q, n, Rows::new(&self.s.q, qw));
        self.project(rec, l, Proj::K, n, Rows::new(&self.s.k, kw));
        self.project(rec, l, Proj::V, n, Rows::new(&self.s.v, kw));
        let rope = a.lightning_use_rope.then(|| &self.rope[&a.lightning.head_dim]);
        let eps = a.rms_norm_eps as f32;
        let norm = |name: &str| a.lightning_use_qk_norm.then(|| self.weight(name));
        let q_prep = HeadPrep { heads, dh: dk, norm: norm(&names.q_norm), rope, hype_a: None, scale: 1.0, eps };
        ops::heads(rec, Rows::new(&self.s.q, qw), n, &layout.positions, &q_prep, &self.s.dummy);
        let k_prep = HeadPrep { heads: kv_heads, dh: dk, norm: norm(&names.k_norm), rope, hype_a: None, scale: 1.0, eps };
        ops::heads(rec, Rows::new(&self.s.k, kw), n, &layout.positions, &k_prep, &self.s.dummy);
        let shape = LightningShape { heads, kv_heads, dk, scale: a.lightning_scale.value(a.lightning.head_dim) as f32 };
        ops::lightning(rec, &shape, layout.segments(), [&self.s.q, &self.s.k, &self.s.v], &self.slopes, state, &self.s.o, self.spare());
        let mut o = &self.s.o;
        if a.lightning_use_output_norm {
            ops::rmsnorm(rec, Rows::new(o, qw), n, self.weight(&names.o_norm), eps, &self.s.o2);
            o = &self.s.o2;
        }
        if a.lightning_use_output_gate {
            ops::matmul(rec, Rows::new(&self.s.h, a.hidden_size as u32), n, self.weight(&names.z_proj), Rows::new(&self.s.gate, qw), false);
            ops::gate(rec, o, &self.s.gate, n * qw);
        }
        self.project_out(rec, l, o, qw, n);
    }

    /// x += down_proj(silu(gate_proj(h)) * up_proj(h))
    fn record_mlp(&self, rec: &mut Recorder, l: usize, n: u32) {
        let (d, i) = (self.arch.hidden_size as u32, self.arch.intermediate_size as u32);
        let names = &self.names[l];
        let h = Rows::new(&self.s.h, d);
        ops::matmul(rec, h, n, self.weight(&names.mlp_gate), Rows::new(&self.s.gate, i), false);
        ops::matmul(rec, h, n, self.weight(&names.mlp_up), Rows::new(&self.s.up, i), false);
        ops::swiglu(rec, &self.s.gate, &self.s.up, n * i);
        ops::matmul(rec, Rows::new(&self.s.gate, i), n, self.weight(&names.mlp_down), Rows::new(&self.s.x, d), true);
    }
}
