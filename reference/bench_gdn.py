"""The gated delta rule's peer on the GPU (issue 26): flash-linear-
attention's Triton `chunk_gated_delta_rule` timed on Qwen3.5-0.8B's
gated-delta shapes (16 key and 16 value heads of 128), prefill of T tokens,
in fp32 (qklab's precision) and bf16, beside a check that its output equals
fla's own naive recurrence on a short prompt.

Run on the GPU machine, fla carried as wheels (device README):

    python3 reference/bench_gdn.py --tokens 4096 --json gdn.json

fla's package __init__ imports its model zoo (which pins transformers);
only its ops are needed, so they are imported under a bare `fla` package.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

import fla_bare


def import_fla_ops():
    fla_bare.install()
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule
    from fla.ops.gated_delta_rule.naive import naive_recurrent_gated_delta_rule
    return chunk_gated_delta_rule, naive_recurrent_gated_delta_rule


def inputs(t: int, heads: int, dk: int, dv: int, dtype, seed: int = 0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, device="cuda", generator=g)
    q = torch.nn.functional.normalize(rnd(1, t, heads, dk), dim=-1)
    k = torch.nn.functional.normalize(rnd(1, t, heads, dk), dim=-1)
    v = rnd(1, t, heads, dv)
    beta = torch.sigmoid(rnd(1, t, heads))
    decay = -torch.nn.functional.softplus(rnd(1, t, heads)) * 0.1
    return [x.to(dtype) for x in (q, k, v)] + [decay.float(), beta.to(dtype)]


def time_ms(fn, warmup: int, reps: int) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--dk", type=int, default=128)
    p.add_argument("--dv", type=int, default=128)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    chunk, naive = import_fla_ops()
    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "tokens": a.tokens,
           "heads": a.heads, "dk": a.dk, "dv": a.dv}
    # fla's chunked kernel against its own recurrence, on a prompt of 300 tokens.
    q, k, v, g, beta = inputs(300, a.heads, a.dk, a.dv, torch.float32, seed=1)
    got, _ = chunk(q, k, v, g, beta, scale=a.dk ** -0.5)
    want, _ = naive(q, k, v, beta, g, scale=a.dk ** -0.5)
    out["chunk_vs_naive_max_abs"] = (got.float() - want.float()).abs().max().item()
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        q, k, v, g, beta = inputs(a.tokens, a.heads, a.dk, a.dv, dtype)
        try:
            ms = time_ms(lambda: chunk(q, k, v, g, beta, scale=a.dk ** -0.5), a.warmup, a.reps)
            out[f"fla_chunk_{name}_ms"] = ms
            print(f"fla chunk_gated_delta_rule {name}: T={a.tokens} H={a.heads} dk={a.dk} dv={a.dv}: {ms:.3f} ms")
        except Exception as e:  # a dtype the kernel refuses is a result too
            out[f"fla_chunk_{name}_error"] = str(e)[:300]
            print(f"fla chunk_gated_delta_rule {name}: {e}")
    print(json.dumps(out))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
