//! Speed of the engine, printed (never asserted): whole-model prefill and
//! decode, and each kernel family alone at the model's shapes, in GFLOP/s
//! and GB/s. Natively only: it times with the wall clock around
//! submissions that it waits for.

use std::time::Instant;

use serde::Serialize;

use crate::error::Result;
use crate::gpu::kernels::{Kernels, WDtype};
use crate::gpu::ops::{self, AttnShape, LightningShape, Rows};
use crate::gpu::params::Seg;
use crate::gpu::recorder::Recorder;
use crate::gpu::weights::GpuWeight;
use crate::gpu::Gpu;
use crate::model::engine::Logits;
use crate::model::engine::{Batch, Engine};
use crate::source::block_on;
use crate::synth::SplitMix64;

#[derive(Debug, Serialize)]
pub struct KernelTime {
    pub kernel: String,
    pub shape: String,
    pub ms: f64,
    pub gflops: f64,
    pub gbps: f64,
}

#[derive(Debug, Serialize)]
pub struct PrefillTime {
    pub tokens: u32,
    pub ms: f64,
    pub tokens_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct DecodeTime {
    pub context: u32,
    pub steps: u32,
    pub ms_per_token: f64,
    pub tokens_per_s: f64,
    /// The same steps recorded into one submission.
    pub ms_per_token_one_submission: f64,
}

fn wait(gpu: &Gpu) {
    #[cfg(not(target_arch = "wasm32"))]
    let _ = gpu.device.poll(wgpu::PollType::wait_indefinitely());
}

/// Median milliseconds of `reps` runs of `f` after one warm-up.
pub fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn random_f32(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| rng.next_signed()).collect()
}

fn f32_buffer(gpu: &Gpu, values: &[f32]) -> wgpu::Buffer {
    let b = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("bench"),
        size: (values.len() as u64 * 4).max(4),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    gpu.queue.write_buffer(&b, 0, bytemuck::cast_slice(values));
    b
}

/// A random weight [n, k] on the GPU, stored as `dtype`.
pub fn random_weight(gpu: &Gpu, n: u64, k: u64, dtype: WDtype) -> Result<GpuWeight> {
    let binding = gpu
        .limits
        .max_storage_buffer_binding_size
        .min(gpu.limits.max_buffer_size);
    let scale = 1.0 / (k as f32).sqrt();
    block_on(GpuWeight::upload(
        gpu,
        "bench",
        dtype,
        &[n, k],
        binding,
        |off, len| {
            let count = (len / dtype.bytes()) as usize;
            let v: Vec<f32> = random_f32(count, off)
                .into_iter()
                .map(|x| x * scale)
                .collect();
            let bytes = match dtype {
                WDtype::F32 => bytemuck::cast_slice(&v).to_vec(),
                WDtype::Bf16 => v
                    .iter()
                    .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
                    .collect(),
                WDtype::F16 => v
                    .iter()
                    .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                    .collect(),
            };
            std::future::ready(Ok(bytes))
        },
    ))
}

/// Times `record` (one or more dispatches) run `inner` times per submission.
fn time_kernel(
    kernels: &Kernels,
    inner: usize,
    reps: usize,
    record: impl Fn(&mut Recorder),
) -> f64 {
    let gpu = kernels.gpu();
    median_ms(reps, || {
        let mut rec = Recorder::new(kernels);
        for _ in 0..inner {
            record(&mut rec);
        }
        rec.submit();
        wait(gpu);
    }) / inner as f64
}

/// y = x W^T for x [m, k] f32 and W [n, k] stored as `dtype`.
pub fn matmul(gpu: &Gpu, m: u32, n: u32, k: u32, dtype: WDtype) -> Result<KernelTime> {
    let kernels = Kernels::new(gpu);
    let w = random_weight(gpu, n as u64, k as u64, dtype)?;
    let x = f32_buffer(gpu, &random_f32(m as usize * k as usize, 1));
    // An output larger than one binding is made in blocks of rows.
    let binding = gpu
        .limits
        .max_storage_buffer_binding_size
        .min(gpu.limits.max_buffer_size);
    let block = m.min((binding / (n as u64 * 4)).max(1) as u32);
    let y = f32_buffer(gpu, &vec![0.0; block as usize * n as usize]);
    let flops = 2.0 * m as f64 * n as f64 * k as f64;
    let inner = if flops > 1e11 {
        1
    } else {
        (1e11 / flops).clamp(1.0, 50.0) as usize
    };
    let ms = time_kernel(&kernels, inner, 5, |rec| {
        for r0 in (0..m).step_by(block as usize) {
            ops::matmul(
                rec,
                Rows::new(&x, k).at(r0),
                block.min(m - r0),
                &w,
                Rows::new(&y, n),
                false,
            );
        }
    });
    let bytes = w.bytes() as f64 + 4.0 * (m as f64 * k as f64 + m as f64 * n as f64);
    Ok(KernelTime {
        kernel: format!("matmul ({dtype:?} weights)"),
        shape: format!("{m}x{n}x{k}"),
        ms,
        gflops: flops / ms / 1e6,
        gbps: bytes / ms / 1e6,
    })
}

/// Names of the kernel timings the shares below look up.
const ATTENTION: &str = "softmax attention (causal)";
const ATTENTION_DECODE: &str = "softmax attention (decode)";
const LIGHTNING: &str = "Lightning attention (chunked)";
const LIGHTNING_STEP: &str = "Lightning attention (step)";
const ATTENTION_WINDOW: &str = "softmax attention (sliding window)";
const ATTENTION_WINDOW_DECODE: &str = "softmax attention (sliding window, decode)";
const GATED_DELTA: &str = "gated delta rule (chunked)";
const GATED_DELTA_STEP: &str = "gated delta rule (step)";
const JET: &str = "JetBlock dynamic conv + gated delta rule (chunked)";
const JET_STEP: &str = "JetBlock dynamic conv + gated delta rule (step)";

/// One segment of `rows` rows from row 0 of sequence 0, the first at `pos0`, on the GPU.
fn one_segment(gpu: &Gpu, rows: u32, pos0: u32) -> wgpu::Buffer {
    let seg = [Seg {
        row0: 0,
        rows,
        slot: 0,
        pos0,
    }];
    wgpu::util::DeviceExt::create_buffer_init(
        &gpu.device,
        &wgpu::util::BufferInitDescriptor {
            label: Some("segments"),
            contents: bytemuck::cast_slice(&seg),
            usage: wgpu::BufferUsages::STORAGE,
        },
    )
}

/// Each kernel family alone at the shapes of `engine`'s model for `t` tokens.
pub fn kernels_at(gpu: &Gpu, arch: &crate::config::Arch, t: u32) -> Result<Vec<KernelTime>> {
    let kernels = Kernels::new(gpu);
    let (d, i) = (arch.hidden_size as u32, arch.intermediate_size as u32);
    let mut out = vec![
        matmul(gpu, t, i, d, WDtype::Bf16)?,
        matmul(gpu, 1, i, d, WDtype::Bf16)?,
    ];
    out[1].kernel = "matvec (Bf16 weights)".into();

    let (a, l) = (&arch.attn, &arch.lightning);
    let (h, hkv, dh) = (a.heads as u32, a.kv_heads as u32, a.head_dim as u32);
    let q = f32_buffer(gpu, &random_f32((t * h * dh) as usize, 2));
    let k = f32_buffer(gpu, &random_f32((t * hkv * dh) as usize, 3));
    let v = f32_buffer(gpu, &random_f32((t * hkv * dh) as usize, 4));
    let o = f32_buffer(gpu, &vec![0.0; (t * h * dh) as usize]);
    let lse = f32_buffer(gpu, &vec![0.0; (t * h) as usize]);
    // One sequence of t tokens from position 0, its cache the whole buffer.
    let segs_buffer = one_segment(gpu, t, 0);
    let segs = ops::Segments {
        segs: &segs_buffer,
        count: 1,
        max_rows: t,
        max_end: t,
    };
    let no_spare = ops::Spare {
        buffer: &o,
        floats: 0,
    };
    // Decode: the last row alone over the t keys, keys split across workgroups.
    let last_buffer = one_segment(gpu, 1, t - 1);
    let one = ops::Segments {
        segs: &last_buffer,
        count: 1,
        max_rows: 1,
        max_end: t,
    };
    let part = f32_buffer(
        gpu,
        &vec![0.0; (h * t.div_ceil(ops::SPLIT_KEYS) * (dh + 2)) as usize],
    );
    let spare = ops::Spare::all(&part);
    // The whole context, then the sliding window of the model's first
    // windowed layer, if it has one.
    let window = arch.windows.iter().flatten().next().map(|&w| w as u32);
    for (window, names) in [(0, [ATTENTION, ATTENTION_DECODE])]
        .into_iter()
        .chain(window.map(|w| (w, [ATTENTION_WINDOW, ATTENTION_WINDOW_DECODE])))
    {
        let shape = AttnShape {
            heads: h,
            kv_heads: hkv,
            dh,
            ctx: t,
            window,
        };
        let ms = time_kernel(&kernels, 1, 5, |rec| {
            ops::attend(rec, &shape, segs, [&q, &k, &v], &o, &lse, no_spare)
        });
        // Keys seen, summed over the rows.
        let w = if window == 0 { t } else { window.min(t) } as f64;
        let pairs = w * (w + 1.0) / 2.0 + (t as f64 - w) * w;
        let label = if window == 0 {
            String::new()
        } else {
            format!(" window={window}")
        };
        out.push(KernelTime {
            kernel: names[0].into(),
            shape: format!("T={t} H={h}/{hkv} dh={dh}{label}"),
            ms,
            gflops: 4.0 * pairs * h as f64 * dh as f64 / ms / 1e6,
            gbps: 0.0,
        });
        let ms = time_kernel(&kernels, 20, 5, |rec| {
            ops::attend(rec, &shape, one, [&q, &k, &v], &o, &lse, spare)
        });
        let bytes = 2.0 * 4.0 * w * hkv as f64 * dh as f64;
        out.push(KernelTime {
            kernel: names[1].into(),
            shape: format!("1 row, T={t} H={h}/{hkv} dh={dh}{label}"),
            ms,
            gflops: 4.0 * w * h as f64 * dh as f64 / ms / 1e6,
            gbps: bytes / ms / 1e6,
        });
    }

    let (lh, lkv, dk) = (l.heads as u32, l.kv_heads as u32, l.head_dim as u32);
    let q = f32_buffer(gpu, &random_f32((t * lh * dk) as usize, 5));
    let k = f32_buffer(gpu, &random_f32((t * lkv * dk) as usize, 6));
    let v = f32_buffer(gpu, &random_f32((t * lkv * dk) as usize, 7));
    let o = f32_buffer(gpu, &vec![0.0; (t * lh * dk) as usize]);
    let slopes = f32_buffer(gpu, &vec![0.1; lh as usize]);
    let state = f32_buffer(gpu, &vec![0.0; (lh * dk * dk) as usize]);
    let shape = LightningShape {
        heads: lh,
        kv_heads: lkv,
        dk,
        scale: 0.1,
    };
    // Room for the split into parts the model's scratch gives a pass of t rows.
    let carry = f32_buffer(
        gpu,
        &vec![
            0.0;
            (t as u64 * arch.widest()).min(ops::MAX_PARTS as u64 * (lh * dk * dk) as u64) as usize
        ],
    );
    let spare = ops::Spare::all(&carry);
    let ms = time_kernel(&kernels, 1, 5, |rec| {
        ops::lightning(rec, &shape, segs, [&q, &k, &v], &slopes, &state, &o, spare)
    });
    // Per 16-token chunk: scores 16x16xdk, outputs 16x(16+dk)xdk, state 16xdkxdk.
    let flops = 2.0 * t as f64 * lh as f64 * dk as f64 * (16.0 + 16.0 + 2.0 * dk as f64);
    out.push(KernelTime {
        kernel: LIGHTNING.into(),
        shape: format!("T={t} H={lh} dk={dk}"),
        ms,
        gflops: flops / ms / 1e6,
        gbps: 0.0,
    });
    let one = ops::Segments {
        segs: &one_segment(gpu, 1, 0),
        count: 1,
        max_rows: 1,
        max_end: 1,
    };
    let ms = time_kernel(&kernels, 20, 5, |rec| {
        ops::lightning(rec, &shape, one, [&q, &k, &v], &slopes, &state, &o, spare)
    });
    let bytes = 2.0 * 4.0 * lh as f64 * dk as f64 * dk as f64;
    out.push(KernelTime {
        kernel: LIGHTNING_STEP.into(),
        shape: format!("1 row, H={lh} dk={dk}"),
        ms,
        gflops: 4.0 * lh as f64 * (dk * dk) as f64 / ms / 1e6,
        gbps: bytes / ms / 1e6,
    });

    for mixer in [crate::config::Mixer::GatedDelta, crate::config::Mixer::Jet] {
        if arch.mixers.contains(&mixer) {
            out.extend(gated_delta_times(gpu, &kernels, arch, t, mixer));
        }
    }

    let x = f32_buffer(gpu, &random_f32((t * d) as usize, 8));
    let y = f32_buffer(gpu, &vec![0.0; (t * d) as usize]);
    let w = random_weight(gpu, 1, d as u64, WDtype::Bf16)?;
    let ms = time_kernel(&kernels, 10, 5, |rec| {
        ops::rmsnorm(rec, Rows::new(&x, d), t, &w, 1e-6, &y)
    });
    out.push(KernelTime {
        kernel: "rmsnorm".into(),
        shape: format!("{t}x{d}"),
        ms,
        gflops: 0.0,
        gbps: 8.0 * (t * d) as f64 / ms / 1e6,
    });
    Ok(out)
}

/// A gated-delta layer's or a JetBlock's (`mixer`) kernels after its
/// projections (convolution, static or dynamic, q/k norms, the rule, the
/// gated norm) at the arch's shape: a prefill of `t` tokens (the chunked
/// form) and a decode step (the recurrence).
fn gated_delta_times(
    gpu: &Gpu,
    kernels: &Kernels,
    arch: &crate::config::Arch,
    t: u32,
    mixer: crate::config::Mixer,
) -> Vec<KernelTime> {
    let jet = mixer == crate::config::Mixer::Jet;
    let names = if jet {
        [JET, JET_STEP]
    } else {
        [GATED_DELTA, GATED_DELTA_STEP]
    };
    let g = &arch.gdn;
    let shape = ops::GatedDeltaShape {
        key_heads: g.key_heads as u32,
        value_heads: g.value_heads as u32,
        key_dim: g.key_dim as u32,
        value_dim: g.value_dim as u32,
        conv_kernel: g.conv_kernel as u32,
        eps: 1e-6,
    };
    let (c, nv, width) = (
        g.conv_channels() as usize,
        g.value_heads as usize,
        g.value_width() as usize,
    );
    let rows = t as usize;
    let zeros = |n: usize| f32_buffer(gpu, &vec![0.0; n]);
    let (x, z) = (
        f32_buffer(gpu, &random_f32(rows * c, 9)),
        f32_buffer(gpu, &random_f32(rows * width, 10)),
    );
    let (beta, gb) = (
        f32_buffer(gpu, &random_f32(rows * nv, 11)),
        f32_buffer(gpu, &random_f32(rows * nv, 12)),
    );
    let taps = g.conv_kernel as usize;
    // Qwen3.5's static taps, or every row's generated ones.
    let conv_w = if jet {
        f32_buffer(gpu, &random_f32(rows * width * taps, 13))
    } else {
        f32_buffer(gpu, &random_f32(c * taps, 13))
    };
    let (a_log, dt_bias) = (zeros(nv), zeros(nv));
    let norm_w = f32_buffer(gpu, &vec![1.0; g.value_dim as usize]);
    let hist = zeros((taps - 1).max(1) * crate::model::mixer::conv_channels(arch, mixer) as usize);
    let state = zeros(nv * (g.key_dim * g.value_dim) as usize);
    let (qkv, o) = (zeros(rows * c), zeros(rows * width));
    // The room the model's scratch gives a pass of t rows
    // (GpuModel::spare), which decides whether a lone segment is split.
    let scratch = zeros((t as u64 * arch.widest()).max(shape.scratch_floats(t)) as usize);
    let buffers = ops::GatedDeltaBuffers {
        qkv: &qkv,
        z: &z,
        beta: &beta,
        g: &gb,
        a_log: &a_log,
        dt_bias: &dt_bias,
        norm_w: &norm_w,
        state: &state,
        o: &o,
        scratch: ops::Spare::all(&scratch),
    };
    let front = |rec: &mut Recorder, segs: ops::Segments| {
        if jet {
            let shape = ops::DynamicConvShape {
                key_heads: g.key_heads as u32,
                key_dim: g.key_dim as u32,
                channels: width as u32,
                taps: taps as u32,
            };
            let conv = ops::DynamicConvBuffers {
                x: &x,
                kernels: &conv_w,
                hist: &hist,
                qkv: &qkv,
            };
            ops::dynamic_conv(rec, &shape, segs, &conv);
        } else {
            let conv = ops::GdnConvBuffers {
                x: &x,
                conv_w: &conv_w,
                hist: &hist,
                qkv: &qkv,
            };
            ops::gdn_conv(rec, &shape, segs, &conv);
        }
    };
    let segs_buffer = one_segment(gpu, t, 0);
    let segs = ops::Segments {
        segs: &segs_buffer,
        count: 1,
        max_rows: t,
        max_end: t,
    };
    let ms = time_kernel(kernels, 1, 5, |rec| {
        front(rec, segs);
        ops::gated_delta(rec, &shape, segs, t, &buffers)
    });
    let (dk, dv) = (g.key_dim as f64, g.value_dim as f64);
    let chunk = ops::GDN_CHUNK as f64;
    // Per token and value head: its scores and (I + L) row (half a chunk
    // on average), the forward substitution, v' and q S, its outputs, S.
    let flops =
        t as f64 * nv as f64 * (2.0 * chunk * dk + chunk * (dk + dv) + 6.0 * dk * dv + chunk * dv);
    let mut out = vec![KernelTime {
        kernel: names[0].into(),
        shape: format!("T={t} H={}/{nv} dk={dk} dv={dv}", g.key_heads),
        ms,
        gflops: flops / ms / 1e6,
        gbps: 0.0,
    }];
    let one_buffer = one_segment(gpu, 1, 0);
    let one = ops::Segments {
        segs: &one_buffer,
        count: 1,
        max_rows: 1,
        max_end: 1,
    };
    let ms = time_kernel(kernels, 20, 5, |rec| {
        front(rec, one);
        ops::gated_delta(rec, &shape, one, 1, &buffers)
    });
    out.push(KernelTime {
        kernel: names[1].into(),
        shape: format!("1 row, H={}/{nv} dk={dk} dv={dv}", g.key_heads),
        ms,
        gflops: 6.0 * nv as f64 * dk * dv / ms / 1e6,
        gbps: 2.0 * 4.0 * nv as f64 * dk * dv / ms / 1e6,
    });
    out
}

/// One kernel's part of a prefill: its time alone at the model's shape,
/// times the calls a prefill makes.
#[derive(Debug, Serialize)]
pub struct Share {
    pub kernel: String,
    pub shape: String,
    pub calls: u32,
    /// Milliseconds of all its calls.
    pub ms: f64,
}

/// Where a prefill of `t` tokens (or, with `t` = 1, a decode step) goes,
/// kernel by kernel: every projection shape of the model (q, k, v, gates
/// and o of both mixers, the MLP, the LM head on the last row) timed once
/// and counted per call, and `kernels` (from [`kernels_at`]) for
/// attention (whole or windowed), Lightning, the gated delta rule (behind
/// Qwen3.5's convolution or a JetBlock's) and RMSNorm. Element-wise
/// kernels (RoPE, activations, residuals, the JetBlock's generator's SiLU
/// and bias) are what remains of the measured time.
pub fn shares(
    gpu: &Gpu,
    arch: &crate::config::Arch,
    t: u32,
    kernels: &[KernelTime],
) -> Result<Vec<Share>> {
    use crate::config::Mixer;
    let (d, i) = (arch.hidden_size as u32, arch.intermediate_size as u32);
    // (m, n, k) -> (calls, what uses it), in the order first met.
    let mut shapes: Vec<((u32, u32, u32), u32, Vec<&str>)> = Vec::new();
    let mut add = |m: u32, n: u32, k: u32, what: &'static str| match shapes
        .iter_mut()
        .find(|s| s.0 == (m, n, k))
    {
        Some(s) => {
            s.1 += 1;
            if !s.2.contains(&what) {
                s.2.push(what);
            }
        }
        None => shapes.push(((m, n, k), 1, vec![what])),
    };
    for &mixer in &arch.mixers {
        let h = arch.heads(mixer);
        let (q, kv) = (
            (h.heads * h.head_dim) as u32,
            (h.kv_heads * h.head_dim) as u32,
        );
        let (qn, gate, name) = match mixer {
            Mixer::Softmax => ("q", arch.attn_use_output_gate.then_some("o_gate"), "o"),
            Mixer::Lightning => (
                "q (Lightning)",
                arch.lightning_use_output_gate.then_some("z_proj"),
                "o (Lightning)",
            ),
            Mixer::GatedDelta => {
                let g = &arch.gdn;
                let w = g.value_width() as u32;
                add(t, g.conv_channels() as u32, d, "qkv (gated delta)");
                add(t, w, d, "z (gated delta)");
                // Two matmuls of nv rows, as the engine runs them.
                add(t, g.value_heads as u32, d, "a, b (gated delta)");
                add(t, g.value_heads as u32, d, "a, b (gated delta)");
                add(t, d, w, "out (gated delta)");
                add(t, i, d, "mlp gate, up");
                add(t, i, d, "mlp gate, up");
                add(t, d, i, "mlp down");
                continue;
            }
            Mixer::Jet => {
                let g = &arch.gdn;
                let (kw, vw) = (g.key_width() as u32, g.value_width() as u32);
                add(t, kw, d, "q, k (JetBlock)");
                add(t, kw, d, "q, k (JetBlock)");
                add(t, vw, d, "v, g (JetBlock)");
                add(t, vw, d, "v, g (JetBlock)");
                add(t, g.value_heads as u32, d, "a, b (gated delta)");
                add(t, g.value_heads as u32, d, "a, b (gated delta)");
                add(t, g.generator as u32, d, "dconv generator w1");
                add(
                    t,
                    vw * g.conv_kernel as u32,
                    g.generator as u32,
                    "dconv generator w2",
                );
                add(t, d, vw, "o (JetBlock)");
                add(t, i, d, "mlp gate, up");
                add(t, i, d, "mlp gate, up");
                add(t, d, i, "mlp down");
                continue;
            }
        };
        add(t, q, d, qn);
        add(t, kv, d, "k, v");
        add(t, kv, d, "k, v");
        if let Some(g) = gate {
            add(t, q, d, g);
        }
        add(t, d, q, name);
        add(t, i, d, "mlp gate, up");
        add(t, i, d, "mlp gate, up");
        add(t, d, i, "mlp down");
    }
    add(1, arch.vocab_size as u32, d, "lm head (last row)");
    let mut out = Vec::new();
    for ((m, n, k), calls, what) in shapes {
        let one = matmul(gpu, m, n, k, WDtype::Bf16)?;
        out.push(Share {
            kernel: format!("matmul: {}", what.join(", ")),
            shape: one.shape,
            calls,
            ms: one.ms * calls as f64,
        });
    }
    let count = |m: Mixer| arch.mixers.iter().filter(|&&x| x == m).count() as u32;
    let windowed = arch.windows.iter().flatten().count() as u32;
    let full = count(Mixer::Softmax) - windowed;
    let norms = 2 * arch.mixers.len() as u32 + 1;
    for k in kernels {
        let decode = t == 1;
        let calls = match k.kernel.as_str() {
            ATTENTION if !decode => full,
            ATTENTION_DECODE if decode => full,
            ATTENTION_WINDOW if !decode => windowed,
            ATTENTION_WINDOW_DECODE if decode => windowed,
            LIGHTNING if !decode => count(Mixer::Lightning),
            LIGHTNING_STEP if decode => count(Mixer::Lightning),
            GATED_DELTA if !decode => count(Mixer::GatedDelta),
            GATED_DELTA_STEP if decode => count(Mixer::GatedDelta),
            JET if !decode => count(Mixer::Jet),
            JET_STEP if decode => count(Mixer::Jet),
            "rmsnorm" if !decode => norms,
            _ => continue,
        };
        out.push(Share {
            kernel: k.kernel.clone(),
            shape: k.shape.clone(),
            calls,
            ms: k.ms * calls as f64,
        });
    }
    Ok(out)
}

/// Prefill of `t` random tokens from position 0, timed to the last logits.
pub fn prefill(engine: &Engine, t: u32, reps: usize) -> Result<PrefillTime> {
    let v = engine.arch().vocab_size as u32;
    let ids: Vec<u32> = (0..t)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) % v)
        .collect();
    let mut sessions: Vec<Batch> = (0..=reps.max(1)).map(|_| engine.session(false)).collect();
    let mut err = None;
    let ms = median_ms(reps, || {
        let mut s = sessions.pop().unwrap_or_else(|| engine.session(false));
        if let Err(e) = block_on(engine.prefill(&mut s, &ids, Logits::Last)) {
            err = Some(e);
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    Ok(PrefillTime {
        tokens: t,
        ms,
        tokens_per_s: t as f64 / ms * 1e3,
    })
}

/// Greedy decode steps after a prompt of `context` tokens: a submission
/// and a read back per token (as generation with stop tokens runs), and
/// all `steps` in one submission (as sweeps run, each token fed back on
/// the GPU). Needs a context of `context + 2 * steps + 1`.
pub fn decode(engine: &Engine, context: u32, steps: u32) -> Result<DecodeTime> {
    let v = engine.arch().vocab_size as u32;
    let ids: Vec<u32> = (0..context.max(1)).map(|i| (i * 7919) % v).collect();
    let mut s = engine.session(false);
    let mut tok = block_on(engine.next_token(&mut s, &ids))?;
    let start = Instant::now();
    for _ in 0..steps {
        tok = block_on(engine.next_token(&mut s, &[tok]))?;
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / steps.max(1) as f64;
    // After one such submission (its first run creates the session's bind
    // groups, as a sweep's first steps do).
    let mut s = engine.session(false);
    let first = block_on(engine.next_token(&mut s, &ids))?;
    let warm = block_on(engine.decode(&mut s, &[0], &[first], steps as usize))?;
    let start = Instant::now();
    block_on(engine.decode(
        &mut s,
        &[0],
        &[warm[0].last().copied().unwrap_or(first)],
        steps as usize,
    ))?;
    let batched = start.elapsed().as_secs_f64() * 1e3 / steps.max(1) as f64;
    Ok(DecodeTime {
        context,
        steps,
        ms_per_token: ms,
        tokens_per_s: 1e3 / ms,
        ms_per_token_one_submission: batched,
    })
}
