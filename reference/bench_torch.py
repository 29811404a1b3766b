"""PyTorch peers for qklab's GPU benchmarks (fp32, TF32 off).

  python3 reference/bench_torch.py matmul --shapes 4096x2048x2048,4096x151936x2048 [--json OUT]
      y[M,N] = x[M,K] @ W[N,K]^T (torch.matmul(x, W.t()), cuBLAS), shapes MxNxK.
  python3 reference/bench_torch.py prefill --preset 2b --tokens 4096 [--json OUT]
      HypeNet forward (reference/hypenet.py, random weights, fp32) over T
      random ids from position 0: the reference's own forward (logits at every
      position), the model body alone, and the body plus the LM head at the
      last position only.
  python3 reference/bench_torch.py attention --tokens 4096 --heads 16 --kv-heads 8 --dh 128 [--json OUT]
      causal softmax attention of one sequence, F.scaled_dot_product_attention
      (is_causal, K/V repeated for GQA), fp32, and which SDPA backend ran.
  python3 reference/bench_torch.py hf --model DIR --device cpu --tokens 2048 [--threads N] [--json OUT]
      transformers' own forward (AutoModelForCausalLM, fp32, its pure PyTorch
      paths where no fused kernels are installed) of a saved checkpoint over
      T random ids: the body and the LM head at the last position, as
      `qklab bench DIR --backend cpu` times its prefill (and runs this as its peer).
  python3 reference/bench_torch.py qwen35-model --out DIR [--hidden 512 --layers 8]
      a random Qwen3_5ForCausalLM (3 gated-delta layers to 1 softmax layer)
      saved with save_pretrained in f32, for the two to time.
  Smoke test without a GPU: ... prefill --device cpu --preset demo --tokens 64

Timing: warm-ups, then each repetition between device events (CUDA) or host
clock reads (CPU); the median is reported.  TF32 is off everywhere, and the
matmul bench checks it by comparing a block of rows with a float64 product.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hypenet as hn  # noqa: E402

# --------------------------------------------------------------------------
# Presets: mirror src/synth.rs `preset_config` (test_bench_torch.py checks it)
# --------------------------------------------------------------------------

_BASE = dict(
    model_type="hypenet", architectures=["HypeNetForCausalLM"],
    rms_norm_eps=1e-6, rope_theta=1e6, rope_scaling=None,
    attn_use_rope=False, lightning_use_rope=True, attn_use_output_gate=True,
    attn_logits_scaling=None,
    lightning_use_qk_norm=True, lightning_use_output_norm=True, lightning_use_output_gate=True,
    lightning_scale="1/sqrt(d)", lightning_use_short_conv=False,
    attention_bias=False, tie_word_embeddings=True,
    bos_token_id=256, eos_token_id=257, pad_token_id=258, torch_dtype="bfloat16",
)

# name: (vocab, D, I, layers, softmax layers, H, Hkv, dh, lightning nh (= nkv), dl)
PRESET_SHAPES = {
    "tiny": (259, 40, 72, 4, [1, 3], 4, 2, 10, 2, 20),
    "demo": (259, 192, 512, 8, [3, 6], 4, 2, 48, 4, 48),
    "2b": (151936, 2048, 6144, 28, [2, 3, 6, 8, 9, 21, 25], 16, 8, 128, 16, 128),
}


def preset_dict(name: str) -> dict:
    v, d, i, n, soft, h, hkv, dh, lnh, ldh = PRESET_SHAPES[name]
    return dict(
        _BASE, vocab_size=v, hidden_size=d, intermediate_size=i, num_hidden_layers=n,
        mixer_types=[hn.ATTN if j in soft else hn.LIGHTNING for j in range(n)],
        num_attention_heads=h, num_key_value_heads=hkv, head_dim=dh,
        lightning_nh=lnh, lightning_nkv=lnh, lightning_head_dim=ldh,
    )


# --------------------------------------------------------------------------
# Common
# --------------------------------------------------------------------------


def setup(device: str, threads: int | None) -> torch.device:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("bench_torch: CUDA is not available (use --device cpu for a smoke test)")
        torch.cuda.init()
    return dev


def meta(dev: torch.device) -> dict:
    m = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(dev),
        "allow_tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "allow_tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        m.update(gpu=p.name, sms=p.multi_processor_count, gpu_mem_gib=round(p.total_memory / 2**30, 1),
                 cuda=torch.version.cuda)
    else:
        m.update(cpu=platform.processor() or platform.machine(), threads=torch.get_num_threads())
    return m


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_reps(fn, dev: torch.device, warmup: int, reps: int, queued: bool) -> dict:
    """Per-repetition times in ms.  CUDA: device events around each call;
    queued=True enqueues all repetitions back to back (no host sync between
    them), else each one starts from an idle device and also gets a host
    wall-clock time (launch overhead included).  CPU: host clock only."""
    for _ in range(warmup):
        fn()
    sync(dev)
    ev, wall = [], []
    if dev.type == "cuda":
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
        t_all = time.perf_counter()
        for s, e in ev:
            if not queued:
                torch.cuda.synchronize(dev)
                t0 = time.perf_counter()
            s.record()
            fn()
            e.record()
            if not queued:
                torch.cuda.synchronize(dev)
                wall.append((time.perf_counter() - t0) * 1e3)
        torch.cuda.synchronize(dev)
        if queued:
            wall = [(time.perf_counter() - t_all) * 1e3 / reps]
        ms = [s.elapsed_time(e) for s, e in ev]
    else:
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            wall.append((time.perf_counter() - t0) * 1e3)
        ms = list(wall)
    return {
        "median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms),
        "wall_median_ms": statistics.median(wall), "reps": reps, "warmup": warmup, "all_ms": ms,
    }


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-300))


def write_json(path: str | None, obj: dict) -> None:
    if not path:
        return
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    print(f"wrote {path}")


# --------------------------------------------------------------------------
# matmul
# --------------------------------------------------------------------------


def parse_shapes(s: str):
    out = []
    for part in s.split(","):
        part = part.strip()
        if not part:
            continue
        dims = [int(v) for v in part.lower().split("x")]
        if len(dims) != 3 or min(dims) <= 0:
            raise SystemExit(f"bad shape {part!r}: expected MxNxK with positive sizes")
        out.append(tuple(dims))
    return out


def bench_matmul(args) -> dict:
    dev = setup(args.device, args.threads)
    g = torch.Generator(device=dev).manual_seed(args.seed)
    res = {"bench": "matmul", "meta": meta(dev), "results": []}
    desc = ("torch.matmul(x[M,K] fp32, W[N,K].t()) -> y[M,N] fp32 into a preallocated output; "
            "TF32 off (allow_tf32=False, float32_matmul_precision=highest); "
            f"median of {args.reps} reps, each between device events (CPU: host clock), queued back "
            f"to back after {args.warmup} warm-ups; inputs random normal, rotated among up to 3 sets "
            "when they are small; rel_err = first rows vs a float64 product")
    res["measured"] = desc
    print(f"# device: {res['meta'].get('gpu', res['meta'].get('cpu'))}  torch {torch.__version__}")
    print(f"# measured: {desc}")
    print(f"{'shape MxNxK':>22} {'ms':>9} {'min ms':>9} {'TFLOP/s':>8} {'rel_err':>9}")
    for M, N, K in parse_shapes(args.shapes):
        in_bytes = 4 * (M * K + N * K)
        nsets = 3 if 3 * in_bytes <= 512 * 2**20 else 1
        xs = [torch.randn(M, K, device=dev, generator=g) for _ in range(nsets)]
        ws = [torch.randn(N, K, device=dev, generator=g) for _ in range(nsets)]
        y = torch.full((M, N), float("nan"), device=dev)
        it = [0]

        def step():
            i = it[0] % nsets
            it[0] += 1
            torch.matmul(xs[i], ws[i].t(), out=y)

        # correctness: poisoned output fully written, float64 check on a row block
        torch.matmul(xs[0], ws[0].t(), out=y)
        sync(dev)
        finite = bool(torch.isfinite(y).all())
        r = min(M, 256)
        err = rel_err(y[:r], xs[0][:r].double() @ ws[0].double().t())
        t = time_reps(step, dev, args.warmup, args.reps, queued=True)
        flop = 2.0 * M * N * K
        row = dict(M=M, N=N, K=K, flop=flop, input_sets=nsets, rel_err=err, finite=finite, **t,
                   tflops=flop / (t["median_ms"] * 1e-3) / 1e12, tflops_best=flop / (t["min_ms"] * 1e-3) / 1e12)
        res["results"].append(row)
        flag = "" if finite and err < 1e-4 else "  <-- CHECK (non-finite or TF32-like error)"
        print(f"{f'{M}x{N}x{K}':>22} {t['median_ms']:9.3f} {t['min_ms']:9.3f} {row['tflops']:8.2f} {err:9.2e}{flag}",
              flush=True)
        del xs, ws, y
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    write_json(args.json, res)
    return res


# --------------------------------------------------------------------------
# prefill
# --------------------------------------------------------------------------


def forward_flops(cfg: hn.Config, T: int, chunk: int) -> dict:
    """fp32 FLOPs (2 per multiply-add) of one forward over T tokens, batch 1.

    Projections, MLP and LM head are dense products.  Softmax attention counts
    the causal half of QK^T and PV (what a causal kernel must do).  Lightning
    counts the chunked form (chunk c): intra-chunk q k^T and (.)v, the
    per-chunk k^T v state contribution and q times the incoming state; it
    leaves out the inter-chunk state carry (O(T/c * d^2) with a scan; the
    reference does it as an O((T/c)^2 d^2) einsum), norms, RoPE and gates."""
    D, I, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    H, Hkv, dh = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    nh, nkv, dl = cfg.lnh, cfg.lnkv, cfg.ldim
    mixers = cfg.mixers
    n_soft = sum(m == hn.ATTN for m in mixers)
    n_light = len(mixers) - n_soft
    mm = lambda m, n, k: 2.0 * m * n * k  # noqa: E731
    mlp = mm(T, 3 * I, D)
    soft_proj = mm(T, (2 * H + 2 * Hkv) * dh if cfg.attn_use_output_gate else (H + 2 * Hkv) * dh, D) + mm(T, D, H * dh)
    gate = nh * dl if cfg.lightning_use_output_gate else 0
    light_proj = mm(T, nh * dl + 2 * nkv * dl + gate, D) + mm(T, D, nh * dl)
    soft_core = 2.0 * 2.0 * H * dh * T * (T + 1) / 2.0
    full, rem = divmod(T, chunk)
    light_core = 0.0
    for n_chunks, c in ((full, chunk), (1 if rem else 0, rem)):
        light_core += n_chunks * nh * (4.0 * c * c * dl + 4.0 * c * dl * dl)
    body = len(mixers) * mlp + n_soft * (soft_proj + soft_core) + n_light * (light_proj + light_core)
    return {
        "mlp": len(mixers) * mlp,
        "softmax_proj": n_soft * soft_proj, "softmax_core_causal": n_soft * soft_core,
        "lightning_proj": n_light * light_proj, "lightning_core_chunked": n_light * light_core,
        "body": body,
        "lm_head_all_positions": mm(T, V, D), "lm_head_last_position": mm(1, V, D),
        "total_all_logits": body + mm(T, V, D), "total_last_logits": body + mm(1, V, D),
    }


def make_body(model: hn.HypeNet, lightning_mode: str, attn_impl: str, chunk: int):
    """The model body (embedding, layers, final norm) exactly as
    HypeNet.forward runs it with no cache and no extras (same ctx keys)."""

    def body(ids):
        T = ids.shape[1]
        positions = torch.arange(0, T, device=ids.device)
        ctx = {"cache": None, "lightning_mode": lightning_mode, "return_attn": None,
               "attn_impl": attn_impl, "states": None, "chunk": chunk}
        x = model.model.embed_tokens(ids)
        for layer in model.model.layers:
            x = layer(x, positions, ctx)
        return model.model.norm(x)

    return body


def profile_once(fn, dev: torch.device, rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=acts) as prof:
        fn()
        sync(dev)
    ka = prof.key_averages()
    for key in (("self_device_time_total", "self_cuda_time_total") if dev.type == "cuda" else ("self_cpu_time_total",)):
        try:
            return ka.table(sort_by=key, row_limit=rows, max_name_column_width=60)
        except Exception:  # noqa: BLE001  (the key's name changed between torch versions)
            continue
    return ka.table(row_limit=rows)


def bench_prefill(args) -> dict:
    dev = setup(args.device, args.threads)
    torch.manual_seed(args.seed)
    cfg = hn.Config.from_dict(preset_dict(args.preset))
    t0 = time.perf_counter()
    with torch.device(dev):
        model = hn.HypeNet(cfg)  # random init (HypeNet.reset_parameters), fp32
    model = model.to(dev, torch.float32).eval()
    sync(dev)
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    T = args.tokens
    g = torch.Generator(device=dev).manual_seed(args.seed + 1)
    ids = torch.randint(0, cfg.vocab_size, (1, T), device=dev, generator=g)
    fl = forward_flops(cfg, T, args.chunk)
    kw = dict(lightning_mode=args.lightning_mode, attn_impl=args.attn_impl, chunk=args.chunk)
    body = make_body(model, **kw)
    W = model.head_weight()

    variants = {
        # the reference's whole-sequence path: model(ids) -> logits [1, T, V] f32
        "forward_all_logits": (lambda: model(ids, **kw), fl["total_all_logits"]),
        "body_only": (lambda: body(ids), fl["body"]),
        "body_last_logits": (lambda: F.linear(body(ids)[:, -1:], W).float(), fl["total_last_logits"]),
    }
    desc = (f"HypeNet-{args.preset} (reference/hypenet.py, random weights, fp32, TF32 off, no_grad, eval) "
            f"prefill of {T} random ids from position 0, batch 1, lightning={args.lightning_mode} "
            f"chunk={args.chunk}, softmax={args.attn_impl} (SDPA is_causal); model(ids) always returns "
            f"f32 logits for every position, so the body and the last-position head are also timed "
            f"separately; median of {args.reps} reps after {args.warmup} warm-ups, each from an idle "
            f"device between device events (CPU: host clock; wall = host clock incl. launch overhead)")
    res = {"bench": "prefill", "meta": meta(dev), "measured": desc, "preset": args.preset, "tokens": T,
           "config": cfg.to_dict(), "params": n_params, "build_s": build_s, "flops": fl, "results": {}}
    print(f"# device: {res['meta'].get('gpu', res['meta'].get('cpu'))}  torch {torch.__version__}")
    print(f"# measured: {desc}")
    print(f"# params {n_params / 1e9:.3f} B ({n_params * 4 / 2**30:.2f} GiB fp32), built in {build_s:.1f} s")
    print("# fp32 GFLOP assumed (2 per multiply-add): " + ", ".join(f"{k} {v / 1e9:.5g}" for k, v in fl.items()))

    with torch.no_grad():
        # checks: finite logits, and body + head reproduces model(ids) at the last position
        full = model(ids, **kw)
        last = F.linear(body(ids)[:, -1:], W).float()
        err = rel_err(last[0, -1], full[0, -1])
        finite = bool(torch.isfinite(full).all())
        res.update(check_last_logits_rel_err=err, logits_finite=finite, logits_shape=list(full.shape),
                   logits_absmax=float(full.abs().max()))
        print(f"# check: logits {list(full.shape)} finite={finite} absmax={res['logits_absmax']:.3g}; "
              f"body+head vs model(ids) at the last position rel_err={err:.2e}")
        del full, last
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        weights_b = torch.cuda.memory_allocated(dev) if dev.type == "cuda" else None

        print(f"{'variant':>20} {'ms':>10} {'min ms':>10} {'wall ms':>10} {'tok/s':>10} {'TFLOP/s':>8} {'peak GiB':>9}")
        for name, (fn, flop) in variants.items():
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            t = time_reps(fn, dev, args.warmup, args.reps, queued=False)
            peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
            row = dict(t, flop=flop, tokens_per_s=T / (t["median_ms"] * 1e-3),
                       tflops=flop / (t["median_ms"] * 1e-3) / 1e12, peak_mem_bytes=peak,
                       weights_bytes=weights_b)
            res["results"][name] = row
            pk = f"{peak / 2**30:9.2f}" if peak is not None else f"{'n/a':>9}"
            print(f"{name:>20} {t['median_ms']:10.2f} {t['min_ms']:10.2f} {t['wall_median_ms']:10.2f} "
                  f"{row['tokens_per_s']:10.0f} {row['tflops']:8.2f} {pk}", flush=True)
        r = res["results"]
        head_ms = r["forward_all_logits"]["median_ms"] - r["body_only"]["median_ms"]
        res["lm_head_all_positions_ms_by_difference"] = head_ms
        print(f"# LM head over all positions (+ f32 copy), by difference: {head_ms:.2f} ms")
        if weights_b is not None:
            print(f"# GPU memory: weights+ids {weights_b / 2**30:.2f} GiB; peak of each variant in the table")

        if args.profile and dev.type == "cuda":
            try:
                tab = profile_once(variants["forward_all_logits"][0], dev, args.profile_rows)
                res["profile_forward_all_logits"] = tab
                print("# profile of one model(ids) call, by self device time:")
                print(tab)
            except Exception as e:  # noqa: BLE001  (profiling must not cost the numbers)
                print(f"# profile failed: {e!r}")
    write_json(args.json, res)
    return res


# --------------------------------------------------------------------------
# attention
# --------------------------------------------------------------------------


def bench_attention(args) -> dict:
    dev = setup(args.device, args.threads)
    g = torch.Generator(device=dev).manual_seed(args.seed)
    T, H, Hkv, dh = args.tokens, args.heads, args.kv_heads, args.dh
    q = torch.randn(1, H, T, dh, device=dev, generator=g)
    k = torch.randn(1, Hkv, T, dh, device=dev, generator=g)
    v = torch.randn(1, Hkv, T, dh, device=dev, generator=g)
    # GQA by repetition outside the timed call, so every backend may run.
    k, v = (x.repeat_interleave(H // Hkv, dim=1).contiguous() for x in (k, v))
    flop = 4.0 * H * dh * T * (T + 1) / 2

    def step():
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    with torch.no_grad():
        out = step()
        r = min(T, 64)
        logits = (q[0, :, :r].double() @ k[0, :, :r].double().transpose(-1, -2)) / math.sqrt(dh)
        logits = logits.masked_fill(torch.ones(r, r, dtype=torch.bool, device=dev).triu(1), float("-inf"))
        ref = torch.softmax(logits, -1) @ v[0, :, :r].double()
        err = rel_err(out[0, :, :r], ref)
        backend = "unknown"
        if dev.type == "cuda":
            from torch.profiler import ProfilerActivity, profile
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                step()
                sync(dev)
            names = [e.key for e in prof.key_averages() if e.device_type.name == "CUDA"]
            backend = ", ".join(names[:3])
        t = time_reps(step, dev, args.warmup, args.reps, queued=True)
    desc = (f"F.scaled_dot_product_attention(is_causal=True), fp32, q [1,{H},{T},{dh}], K/V repeated from "
            f"{Hkv} heads outside the timing; median of {args.reps} reps queued after {args.warmup} warm-ups; "
            "rel_err = first 64 rows vs a float64 softmax")
    res = {"bench": "attention", "meta": meta(dev), "measured": desc, "tokens": T, "heads": H, "kv_heads": Hkv,
           "dh": dh, "flop": flop, "rel_err": err, "kernels": backend, **t,
           "tflops": flop / (t["median_ms"] * 1e-3) / 1e12}
    print(f"# device: {res['meta'].get('gpu', res['meta'].get('cpu'))}  torch {torch.__version__}")
    print(f"# measured: {desc}")
    print(f"# kernels: {backend}")
    print(f"attention T={T} H={H}/{Hkv} dh={dh}: {t['median_ms']:.3f} ms (min {t['min_ms']:.3f}), "
          f"{res['tflops']:.2f} TFLOP/s, rel_err {err:.2e}", flush=True)
    write_json(args.json, res)
    return res


# --------------------------------------------------------------------------
# transformers checkpoints (Qwen3.5 and the other Hugging Face families)
# --------------------------------------------------------------------------


def bench_hf(args) -> dict:
    from transformers import AutoModelForCausalLM

    dev = setup(args.device, args.threads)
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, use_kernels=False).to(dev).eval()
    build_s = time.perf_counter() - t0
    cfg = model.config
    T = args.tokens
    g = torch.Generator(device=dev).manual_seed(args.seed + 1)
    ids = torch.randint(0, cfg.vocab_size, (1, T), device=dev, generator=g)
    body = model.model
    head = model.get_output_embeddings()

    def body_last_logits():
        h = body(input_ids=ids, use_cache=False).last_hidden_state
        return head(h[:, -1:]).float()

    desc = (f"transformers {model.__class__.__name__} ({cfg.model_type}, {args.model}, fp32, no_grad, eval, "
            f"attn {cfg._attn_implementation}) prefill of {T} random ids from position 0, batch 1, no cache: "
            f"the body and the LM head at the last position; median of {args.reps} reps after "
            f"{args.warmup} warm-ups (CPU: host clock)")
    res = {"bench": "hf", "meta": meta(dev), "measured": desc, "model": args.model, "tokens": T,
           "params": sum(p.numel() for p in model.parameters()), "build_s": build_s, "results": {}}
    print(f"# measured: {desc}")
    with torch.no_grad():
        t = time_reps(body_last_logits, dev, args.warmup, args.reps, queued=False)
    res["results"]["body_last_logits"] = dict(t, tokens_per_s=T / (t["median_ms"] * 1e-3))
    print(f"body_last_logits {t['median_ms']:10.2f} ms  {T / (t['median_ms'] * 1e-3):10.0f} tok/s")
    write_json(args.json, res)
    return res


def make_qwen35(args) -> dict:
    from transformers import Qwen3_5ForCausalLM, Qwen3_5TextConfig

    torch.manual_seed(args.seed)
    cfg = Qwen3_5TextConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=3 * args.hidden,
        num_hidden_layers=args.layers, num_attention_heads=args.hidden // 64, num_key_value_heads=2,
        head_dim=64, linear_num_key_heads=args.hidden // 128, linear_num_value_heads=args.hidden // 64,
        linear_key_head_dim=64, linear_value_head_dim=64, linear_conv_kernel_dim=4,
        max_position_embeddings=32768, rms_norm_eps=1e-6, tie_word_embeddings=False,
        rope_parameters=dict(rope_type="default", rope_theta=10000000.0, partial_rotary_factor=0.25),
    )
    model = Qwen3_5ForCausalLM(cfg).to(torch.float32)
    model.save_pretrained(args.out)
    print(f"# saved {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters to {args.out}")
    return {}


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp, warmup, reps):
        sp.add_argument("--device", default="cuda", help="cuda (default) or cpu")
        sp.add_argument("--json", default=None, help="write results to this file")
        sp.add_argument("--warmup", type=int, default=warmup)
        sp.add_argument("--reps", type=int, default=reps)
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")

    m = sub.add_parser("matmul", help="y = x W^T for MxNxK shapes")
    m.add_argument("--shapes", required=True, help="comma-separated MxNxK (x [M,K], W [N,K])")
    common(m, warmup=5, reps=20)
    f = sub.add_parser("prefill", help="HypeNet forward over T tokens")
    f.add_argument("--preset", default="2b", choices=sorted(PRESET_SHAPES))
    f.add_argument("--tokens", type=int, default=4096)
    f.add_argument("--lightning-mode", default="chunked", choices=["chunked", "recurrent"])
    f.add_argument("--chunk", type=int, default=64)
    f.add_argument("--attn-impl", default="sdpa", choices=["sdpa", "explicit"])
    f.add_argument("--no-profile", dest="profile", action="store_false",
                   help="skip the one profiled forward (CUDA only) printed at the end")
    f.add_argument("--profile-rows", type=int, default=15)
    common(f, warmup=2, reps=5)
    a = sub.add_parser("attention", help="causal SDPA over T tokens")
    a.add_argument("--tokens", type=int, default=4096)
    a.add_argument("--heads", type=int, default=16)
    a.add_argument("--kv-heads", type=int, default=8)
    a.add_argument("--dh", type=int, default=128)
    common(a, warmup=3, reps=20)
    h = sub.add_parser("hf", help="transformers' forward of a saved checkpoint over T tokens")
    h.add_argument("--model", required=True, help="a save_pretrained folder")
    h.add_argument("--tokens", type=int, default=2048)
    common(h, warmup=1, reps=3)
    q = sub.add_parser("qwen35-model", help="a random Qwen3.5 text model, saved")
    q.add_argument("--out", required=True)
    q.add_argument("--hidden", type=int, default=512)
    q.add_argument("--layers", type=int, default=8)
    q.add_argument("--vocab", type=int, default=4096)
    q.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    return {"matmul": bench_matmul, "prefill": bench_prefill, "attention": bench_attention,
            "hf": bench_hf, "qwen35-model": make_qwen35}[args.cmd](args)


if __name__ == "__main__":
    main()
