#!/usr/bin/env python3
"""Issue 18's targets from one scripts/gpu-bench.sh run: reads the JSON
files the run wrote (qklab and its PyTorch peers) and prints each target
as measured, met or not.

    python3 scripts/gpu-bench-targets.py DIR
"""

import json
import os
import sys


def load(d, name):
    path = os.path.join(d, name)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def kernel_ms(report, name):
    for k in (report or {}).get("kernels", []):
        if k["kernel"] == name:
            return k["ms"]
    return None


def main(d):
    checked, unchecked = load(d, "qklab-prefill.json"), load(d, "qklab-prefill-unchecked.json")
    torch_prefill, torch_attn = load(d, "torch-prefill.json"), load(d, "torch-attention.json")
    qk_mm, torch_mm = load(d, "qklab-matmul.json"), load(d, "torch-matmul.json")
    rows = []

    def row(what, measured, target, met):
        rows.append((what, measured, target, "yes" if met else "no"))

    if checked and torch_prefill:
        q = checked["prefill"][-1]["ms"]
        t = torch_prefill["results"]["body_last_logits"]["median_ms"]
        row(f"prefill, 2B shape, {checked['prefill'][-1]['tokens']} tokens, checked",
            f"{q:.0f} ms; torch fp32 {t:.0f} ms: {100 * t / q:.0f}% of its speed", ">= 60%", t / q >= 0.6)
    if checked and "decode" in checked:
        dec = checked["decode"]
        row(f"decode after {dec['context']} tokens, checked",
            f"{dec['ms_per_token']:.2f} ms/token ({dec['ms_per_token_one_submission']:.2f} with "
            f"{dec['steps']} steps a submission)", "<= 5 ms", dec["ms_per_token"] <= 5)
    a = kernel_ms(checked, "softmax attention (causal)")
    if a and torch_attn:
        t = torch_attn["median_ms"]
        row("softmax attention, T 4096, 16/8 heads, dh 128, checked",
            f"{a:.2f} ms; torch SDPA fp32 {t:.2f} ms: {100 * t / a:.0f}% of its speed", ">= 50%", t / a >= 0.5)
    au = kernel_ms(unchecked, "softmax attention (causal)")
    if a and au:
        row("softmax attention, checked / unchecked", f"{a:.2f} / {au:.2f} ms = {a / au:.2f}x", "<= 1.25x", a / au <= 1.25)
    if qk_mm and torch_mm:
        peers = {(r["M"], r["N"], r["K"]): r["tflops"] for r in torch_mm["results"]}
        for r in qk_mm["matmul"]:
            t = peers.get((r["m"], r["n"], r["k"]))
            if t and r["weights"] == "Bf16":
                row(f"matmul {r['m']}x{r['n']}x{r['k']} (bf16 weights)",
                    f"{r['tflops']:.1f} TFLOP/s; torch fp32 {t:.1f}: {100 * r['tflops'] / t:.0f}%", ">= 70%",
                    r["tflops"] / t >= 0.7)
    print("| target | measured | wanted | met |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/gpu-bench")
