//! HypeNet on the GPU: weights uploaded packed, one command buffer per
//! prefill pass, KV caches and Lightning states kept on the GPU between
//! calls. The same code runs natively (Vulkan, Metal, DX12) and in the
//! browser (WebGPU); the CPU reference in `cpu.rs` is its oracle.

use std::collections::HashMap;

use super::cpu::alibi_slopes;
use super::fit::{plan, EngineOptions, Footprint};
use crate::checkpoint::Checkpoint;
use crate::config::{Arch, LogitsScaling, Mixer};
use crate::error::{Error, Result};
use crate::gpu::kernels::{Kernels, WDtype};
use crate::gpu::ops::{self, AttnShape, HeadPrep, LightningShape, Rows};
use crate::gpu::recorder::Recorder;
use crate::gpu::weights::GpuWeight;
use crate::gpu::{read_buffer, Gpu};
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
    s: Scratch,
    /// RoPE cos/sin tables by head size, for max_context positions.
    rope: HashMap<u64, wgpu::Buffer>,
    slopes: wgpu::Buffer,
}

enum LayerState {
    Softmax { k: wgpu::Buffer, v: wgpu::Buffer, lse: wgpu::Buffer, q: Option<wgpu::Buffer> },
    Lightning { state: wgpu::Buffer },
}

/// One sequence's state on the GPU: position, caches, Lightning states.
pub struct GpuSession {
    pos: u32,
    layers: Vec<LayerState>,
}

impl GpuSession {
    /// Tokens processed so far.
    pub fn pos(&self) -> u32 {
        self.pos
    }
}

/// What a softmax layer kept of a session, read back: queries (after
/// norm, RoPE and HyPE) and keys `[pos, heads * dh]` / `[pos, kv_heads * dh]`,
/// and the log-sum-exp of the scaled logits `[pos, heads]`.
pub struct Captured {
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub lse: Vec<f32>,
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

fn f32_buffer(gpu: &Gpu, label: &str, values: &[f32]) -> wgpu::Buffer {
    let b = buffer(gpu, label, values.len() as u64 * 4);
    gpu.queue.write_buffer(&b, 0, bytemuck::cast_slice(values));
    b
}

/// cos and sin of position x frequency, computed in f64 like the CPU
/// reference (a GPU's f32 sin of large angles is far less accurate).
fn rope_table(positions: u32, dh: u64, theta: f64) -> Vec<f32> {
    let half = dh / 2;
    let mut t = Vec::with_capacity(positions as usize * half as usize * 2);
    for pos in 0..positions {
        for j in 0..half {
            let (sin, cos) = (pos as f64 * theta.powf(-2.0 * j as f64 / dh as f64)).sin_cos();
            t.extend([cos as f32, sin as f32]);
        }
    }
    t
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
        let widest = [arch.hidden_size, arch.intermediate_size, a.heads * a.head_dim, l.heads * l.head_dim]
            .into_iter()
            .max()
            .unwrap_or(1);
        let act = |label: &str| buffer(gpu, label, chunk * widest * 4);
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
            argmax: buffer(gpu, "argmax", 16),
            dummy: buffer(gpu, "dummy", 16),
        };
        let mut rope = HashMap::new();
        for (on, dh) in [(arch.attn_use_rope, a.head_dim), (arch.lightning_use_rope, l.head_dim)] {
            if on && !rope.contains_key(&dh) {
                rope.insert(dh, f32_buffer(gpu, "rope", &rope_table(opts.max_context, dh, arch.rope_theta)));
            }
        }
        let slopes: Vec<f32> = alibi_slopes(l.heads as usize).into_iter().map(|s| s as f32).collect();
        let slopes = f32_buffer(gpu, "slopes", &slopes);
        if let Some(e) = scope.pop().await {
            return Err(Error::TooLarge(format!("the GPU ran out of memory loading {} of weights: {e}", crate::summary::human_bytes(footprint.weights))));
        }
        Ok(GpuModel { arch, footprint, opts, kernels: Kernels::new(gpu), w, s, rope, slopes })
    }

    pub fn gpu(&self) -> &Gpu {
        self.kernels.gpu()
    }

    /// A fresh sequence (position 0, empty caches, zero states).
    pub fn session(&self) -> GpuSession {
        let gpu = self.gpu();
        let (a, l) = (&self.arch.attn, &self.arch.lightning);
        let ctx = self.opts.max_context as u64;
        let layers = self
            .arch
            .mixers
            .iter()
            .map(|m| match m {
                Mixer::Softmax => LayerState::Softmax {
                    k: buffer(gpu, "k cache", ctx * a.kv_heads * a.head_dim * 4),
                    v: buffer(gpu, "v cache", ctx * a.kv_heads * a.head_dim * 4),
                    lse: buffer(gpu, "lse", ctx * a.heads * 4),
                    q: self.opts.capture.then(|| buffer(gpu, "captured q", ctx * a.heads * a.head_dim * 4)),
                },
                Mixer::Lightning => LayerState::Lightning { state: buffer(gpu, "state", l.heads * l.head_dim * l.head_dim * 4) },
            })
            .collect();
        GpuSession { pos: 0, layers }
    }

    fn weight(&self, name: &str) -> &GpuWeight {
        // Every expected tensor was uploaded by `load`.
        &self.w[name]
    }

    fn check_ids(&self, s: &GpuSession, ids: &[u32]) -> Result<()> {
        let v = self.arch.vocab_size;
        if let Some(id) = ids.iter().find(|&&id| id as u64 >= v) {
            return Err(Error::Usage(format!("token id {id} is outside the vocabulary ({v})")));
        }
        let end = s.pos as u64 + ids.len() as u64;
        if end > self.opts.max_context as u64 {
            return Err(Error::Usage(format!(
                "{end} tokens exceed this session's context of {} (raise max_context)",
                self.opts.max_context
            )));
        }
        Ok(())
    }

    /// Runs `ids` at the session's next positions and returns the logits
    /// asked for, `[rows, V]` row-major.
    pub async fn prefill(&self, s: &mut GpuSession, ids: &[u32], logits: Logits) -> Result<Vec<f32>> {
        self.check_ids(s, ids)?;
        let mut out = Vec::new();
        let pieces: Vec<&[u32]> = ids.chunks(self.footprint.chunk as usize).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let n = piece.len() as u32;
            let rows = match logits {
                Logits::All => 0..n,
                Logits::Last if i + 1 == pieces.len() => n - 1..n,
                _ => 0..0,
            };
            // The first group of logits rides with the pass itself.
            let mut rec = Some(self.record_pass(s, piece));
            for r0 in rows.clone().step_by(self.footprint.logit_rows as usize) {
                let g = (rows.end - r0).min(self.footprint.logit_rows);
                let mut r = rec.take().unwrap_or_else(|| Recorder::new(&self.kernels));
                self.record_head(&mut r, r0, g);
                r.submit();
                let bytes = read_buffer(self.gpu(), &self.s.logits, g as u64 * self.arch.vocab_size * 4).await?;
                out.extend_from_slice(bytemuck::cast_slice::<u8, f32>(&bytes));
            }
            if let Some(r) = rec {
                r.submit();
            }
            s.pos += n;
        }
        Ok(out)
    }

    /// One token; its logits `[V]`.
    pub async fn decode_step(&self, s: &mut GpuSession, id: u32) -> Result<Vec<f32>> {
        self.prefill(s, &[id], Logits::Last).await
    }

    /// Runs `ids` and returns the greedy next token, chosen on the GPU.
    pub async fn next_token(&self, s: &mut GpuSession, ids: &[u32]) -> Result<u32> {
        self.check_ids(s, ids)?;
        if ids.is_empty() {
            return Err(Error::Usage("no tokens to run".into()));
        }
        let pieces: Vec<&[u32]> = ids.chunks(self.footprint.chunk as usize).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let mut rec = self.record_pass(s, piece);
            let n = piece.len() as u32;
            if i + 1 == pieces.len() {
                self.record_head(&mut rec, n - 1, 1);
                ops::argmax(&mut rec, &self.s.logits, 0, self.arch.vocab_size as u32, &self.s.argmax, 0);
            }
            rec.submit();
            s.pos += n;
        }
        let bytes = read_buffer(self.gpu(), &self.s.argmax, 4).await?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// Greedy continuation of `prompt`: up to `n` tokens, stopping after
    /// the first token in `stop` (which is included).
    pub async fn generate_greedy(&self, s: &mut GpuSession, prompt: &[u32], n: usize, stop: &[u32]) -> Result<Vec<u32>> {
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

    /// Reads back what softmax layer `layer` kept (needs `capture`).
    pub async fn captured(&self, s: &GpuSession, layer: usize) -> Result<Captured> {
        let Some(LayerState::Softmax { k, lse, q: Some(q), .. }) = s.layers.get(layer) else {
            return Err(Error::Usage(format!("layer {layer} is not a softmax layer of a session with capture on")));
        };
        let a = &self.arch.attn;
        let pos = s.pos as u64;
        let read = |b, width: u64| read_buffer(self.gpu(), b, (pos * width * 4).max(4));
        let floats = |v: Vec<u8>, n: u64| bytemuck::cast_slice::<u8, f32>(&v)[..n as usize].to_vec();
        Ok(Captured {
            q: floats(read(q, a.heads * a.head_dim).await?, pos * a.heads * a.head_dim),
            k: floats(read(k, a.kv_heads * a.head_dim).await?, pos * a.kv_heads * a.head_dim),
            lse: floats(read(lse, a.heads).await?, pos * a.heads),
        })
    }

    /// Routing reductions of softmax layer `layer` over everything the
    /// session has seen (needs `capture`), computed on the GPU.
    pub async fn routing_stats(&self, s: &GpuSession, layer: usize, block: u32, needle: std::ops::Range<u32>) -> Result<crate::routing::RowStats> {
        let Some(LayerState::Softmax { k, lse, q: Some(q), .. }) = s.layers.get(layer) else {
            return Err(Error::Usage(format!("layer {layer} is not a softmax layer of a session with capture on")));
        };
        let a = &self.arch.attn;
        let (rows, heads) = (s.pos, a.heads as u32);
        let mut stats = crate::routing::RowStats::zeroed(rows as usize, heads as usize, block as usize);
        let gpu = self.gpu();
        let dist = buffer(gpu, "dist", stats.dist.len() as u64 * 4);
        let mass = buffer(gpu, "mass", stats.mass.len() as u64 * 4);
        let pooled = buffer(gpu, "pooled", stats.pooled.len() as u64 * 4);
        let shape = AttnShape { rows, heads, kv_heads: a.kv_heads as u32, dh: a.head_dim as u32, pos0: 0 };
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

    /// Records one pass over `ids` (at most one chunk) into the residual
    /// stream `x`, all layers.
    fn record_pass(&self, s: &GpuSession, ids: &[u32]) -> Recorder<'_> {
        let gpu = self.gpu();
        gpu.queue.write_buffer(&self.s.ids, 0, bytemuck::cast_slice(ids));
        let mut rec = Recorder::new(&self.kernels);
        let n = ids.len() as u32;
        let d = self.arch.hidden_size as u32;
        let eps = self.arch.rms_norm_eps as f32;
        ops::embed(&mut rec, &self.s.ids, n, self.weight("model.embed_tokens.weight"), &self.s.x);
        for (l, state) in s.layers.iter().enumerate() {
            let p = |name: &str| format!("model.layers.{l}.{name}");
            let x = Rows::new(&self.s.x, d);
            ops::rmsnorm(&mut rec, x, n, self.weight(&p("input_layernorm.weight")), eps, &self.s.h);
            match state {
                LayerState::Softmax { k, v, lse, q } => self.record_softmax(&mut rec, l, n, s.pos, [k, v, lse], q.as_ref()),
                LayerState::Lightning { state } => self.record_lightning(&mut rec, l, n, s.pos, state),
            }
            ops::rmsnorm(&mut rec, x, n, self.weight(&p("post_attention_layernorm.weight")), eps, &self.s.h);
            self.record_mlp(&mut rec, l, n);
        }
        rec
    }

    /// Logits of rows r0 .. r0 + g of the last pass into `logits`.
    fn record_head(&self, rec: &mut Recorder, r0: u32, g: u32) {
        let a = &self.arch;
        let d = a.hidden_size as u32;
        let x = Rows::new(&self.s.x, d).at(r0);
        ops::rmsnorm(rec, x, g, self.weight("model.norm.weight"), a.rms_norm_eps as f32, &self.s.h);
        let head = if a.tie_word_embeddings { "model.embed_tokens.weight" } else { "lm_head.weight" };
        let logits = Rows::new(&self.s.logits, a.vocab_size as u32);
        ops::matmul(rec, Rows::new(&self.s.h, d), g, self.weight(head), logits, false);
    }

    /// y = h W^T (+ bias) for one of a layer's attention projections.
    fn project(&self, rec: &mut Recorder, l: usize, name: &str, n: u32, y: Rows) {
        let d = self.arch.hidden_size as u32;
        let p = format!("model.layers.{l}.self_attn.{name}");
        ops::matmul(rec, Rows::new(&self.s.h, d), n, self.weight(&format!("{p}.weight")), y, false);
        if let Some(b) = self.w.get(&format!("{p}.bias")) {
            ops::bias(rec, b, y, n);
        }
    }

    /// x += o_proj(o) (+ bias).
    fn project_out(&self, rec: &mut Recorder, l: usize, o: &wgpu::Buffer, width: u32, n: u32) {
        let d = self.arch.hidden_size as u32;
        let p = format!("model.layers.{l}.self_attn.o_proj");
        let x = Rows::new(&self.s.x, d);
        ops::matmul(rec, Rows::new(o, width), n, self.weight(&format!("{p}.weight")), x, true);
        if let Some(b) = self.w.get(&format!("{p}.bias")) {
            ops::bias(rec, b, x, n);
        }
    }

    fn record_softmax(&self, rec: &mut Recorder, l: usize, n: u32, pos: u32, [k, v, lse]: [&wgpu::Buffer; 3], q_cap: Option<&wgpu::Buffer>) {
        let a = &self.arch;
        let (heads, kv_heads, dh) = (a.attn.heads as u32, a.attn.kv_heads as u32, a.attn.head_dim as u32);
        let (qw, kw) = (heads * dh, kv_heads * dh);
        let p = |name: &str| format!("model.layers.{l}.self_attn.{name}");
        // Keys and values go straight into the cache at their positions.
        self.project(rec, l, "q_proj", n, Rows::new(&self.s.q, qw));
        self.project(rec, l, "k_proj", n, Rows::new(k, kw).at(pos));
        self.project(rec, l, "v_proj", n, Rows::new(v, kw).at(pos));
        let rope = a.attn_use_rope.then(|| &self.rope[&a.attn.head_dim]);
        let eps = a.rms_norm_eps as f32;
        let (hype_a, scale) = match a.logits_scaling {
            LogitsScaling::None => (None, 1.0),
            LogitsScaling::Constant(c) => (None, c as f32),
            LogitsScaling::Hype(big_a) => (Some(big_a as f32), 1.0),
        };
        let q_prep = HeadPrep { heads, dh, norm: Some(self.weight(&p("q_norm.weight"))), rope, hype_a, scale, eps };
        ops::heads(rec, Rows::new(&self.s.q, qw), n, pos, &q_prep, &self.s.dummy);
        let k_prep = HeadPrep { heads: kv_heads, dh, norm: Some(self.weight(&p("k_norm.weight"))), rope, hype_a: None, scale: 1.0, eps };
        ops::heads(rec, Rows::new(k, kw).at(pos), n, pos, &k_prep, &self.s.dummy);
        let shape = AttnShape { rows: n, heads, kv_heads, dh, pos0: pos };
        ops::attend(rec, &shape, &self.s.q, k, v, &self.s.o, lse);
        if let Some(cap) = q_cap {
            rec.copy(&self.s.q, 0, cap, pos as u64 * qw as u64 * 4, n as u64 * qw as u64 * 4);
        }
        if a.attn_use_output_gate {
            ops::matmul(rec, Rows::new(&self.s.h, a.hidden_size as u32), n, self.weight(&p("o_gate.weight")), Rows::new(&self.s.gate, qw), false);
            ops::gate(rec, &self.s.o, &self.s.gate, n * qw);
        }
        self.project_out(rec, l, &self.s.o, qw, n);
    }

    fn record_lightning(&self, rec: &mut Recorder, l: usize, n: u32, pos: u32, state: &wgpu::Buffer) {
        let a = &self.arch;
        let (heads, kv_heads, dk) = (a.lightning.heads as u32, a.lightning.kv_heads as u32, a.lightning.head_dim as u32);
        let (qw, kw) = (heads * dk, kv_heads * dk);
        let p = |name: &str| format!("model.layers.{l}.self_attn.{name}");
        self.project(rec, l, "q_proj", n, Rows::new(&self.s.q, qw));
        self.project(rec, l, "k_proj", n, Rows::new(&self.s.k, kw));
        self.project(rec, l, "v_proj", n, Rows::new(&self.s.v, kw));
        let rope = a.lightning_use_rope.then(|| &self.rope[&a.lightning.head_dim]);
        let eps = a.rms_norm_eps as f32;
        let norm = |name: &str| a.lightning_use_qk_norm.then(|| self.weight(&p(name)));
        let q_prep = HeadPrep { heads, dh: dk, norm: norm("q_norm.weight"), rope, hype_a: None, scale: 1.0, eps };
        ops::heads(rec, Rows::new(&self.s.q, qw), n, pos, &q_prep, &self.s.dummy);
        let k_prep = HeadPrep { heads: kv_heads, dh: dk, norm: norm("k_norm.weight"), rope, hype_a: None, scale: 1.0, eps };
        ops::heads(rec, Rows::new(&self.s.k, kw), n, pos, &k_prep, &self.s.dummy);
        let shape = LightningShape { rows: n, heads, kv_heads, dk, scale: a.lightning_scale.value(a.lightning.head_dim) as f32 };
        ops::lightning(rec, &shape, [&self.s.q, &self.s.k, &self.s.v], &self.slopes, state, &self.s.o);
        let mut o = &self.s.o;
        if a.lightning_use_output_norm {
            ops::rmsnorm(rec, Rows::new(o, qw), n, self.weight(&p("o_norm.weight")), eps, &self.s.o2);
            o = &self.s.o2;
        }
        if a.lightning_use_output_gate {
            ops::matmul(rec, Rows::new(&self.s.h, a.hidden_size as u32), n, self.weight(&p("z_proj.weight")), Rows::new(&self.s.gate, qw), false);
            ops::gate(rec, o, &self.s.gate, n * qw);
        }
        self.project_out(rec, l, o, qw, n);
    }

    /// x += down_proj(silu(gate_proj(h)) * up_proj(h))
    fn record_mlp(&self, rec: &mut Recorder, l: usize, n: u32) {
        let (d, i) = (self.arch.hidden_size as u32, self.arch.intermediate_size as u32);
        let p = |name: &str| format!("model.layers.{l}.mlp.{name}.weight");
        let h = Rows::new(&self.s.h, d);
        ops::matmul(rec, h, n, self.weight(&p("gate_proj")), Rows::new(&self.s.gate, i), false);
        ops::matmul(rec, h, n, self.weight(&p("up_proj")), Rows::new(&self.s.up, i), false);
        ops::swiglu(rec, &self.s.gate, &self.s.up, n * i);
        ops::matmul(rec, Rows::new(&self.s.gate, i), n, self.weight(&p("down_proj")), Rows::new(&self.s.x, d), true);
    }
}
