#!/usr/bin/env python3
"""Benchmark: merging two HypeNet-2B-shaped bf16 checkpoints (2 shards,
~3.9 GB each) with `qklab merge` (qk-restore, qk-pro) and with mergekit
0.1.5 on the same files. Prints wall time, bytes read and peak resident
memory of each run, and the ratios. Not a test: it asserts nothing.

    python3 bench/merge.py [--work DIR] [--mergekit PATH-TO-mergekit-yaml] [--keep]

Without --mergekit it looks for `mergekit-yaml` on PATH and skips that row
when absent (install: pip install mergekit==0.1.5, which pulls torch).
The page cache is warm for every run (inputs were just written or read):
the numbers compare the tools, not the disk.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QKLAB = os.path.join(ROOT, "target", "release", "qklab")


def child_peak(cmd, env=None):
    """Peak RSS of one command, measured in a fresh Python so that no other child counts."""
    code = (
        "import resource, subprocess, sys, time, json\n"
        "t=time.perf_counter(); p=subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "dt=time.perf_counter()-t\n"
        "print(json.dumps({'rc':p.returncode,'s':dt,'rss':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss*1024,"
        "'out':p.stdout,'err':p.stderr}))\n"
    )
    r = json.loads(subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, env=env).stdout)
    if r["rc"] != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r['err'][-3000:]}")
    return r


def gib(n):
    return f"{n / 2**30:.2f} GiB"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.path.join(ROOT, "target", "bench-merge"))
    ap.add_argument("--mergekit", default=shutil.which("mergekit-yaml"))
    ap.add_argument("--keep", action="store_true", help="keep the generated checkpoints")
    a = ap.parse_args()

    subprocess.run(["cargo", "build", "--release", "-q", "-p", "qklab", "--bin", "qklab"], cwd=ROOT, check=True)
    os.makedirs(a.work, exist_ok=True)
    pre, sft = os.path.join(a.work, "pre"), os.path.join(a.work, "sft")
    for path, seed in [(pre, "1"), (sft, "2")]:
        if not os.path.exists(os.path.join(path, "config.json")):
            print(f"writing {path} (HypeNet-2B shapes, bf16, 2 shards, random weights)", flush=True)
            subprocess.run([QKLAB, "synth", "--preset", "2b", "--shards", "2", "--seed", seed, "--out", path], check=True)
    size = sum(os.path.getsize(os.path.join(sft, f)) for f in os.listdir(sft) if f.endswith(".safetensors"))
    print(f"each checkpoint: {gib(size)} of weights")

    rows = []
    for method in ["qk-restore", "qk-pro"]:
        out = os.path.join(a.work, f"out-{method}")
        shutil.rmtree(out, ignore_errors=True)
        extra = ["--mergekit-out", os.path.join(a.work, "mergekit.yml")] if method == "qk-restore" else []
        r = child_peak([QKLAB, "merge", "--pre", pre, "--sft", sft, "--method", method, "--out", out, *extra])
        read = r["out"].split(" read ")[1].split(" in ")[0]
        rows.append((f"qklab {method}", r["s"], r["rss"], read))
        print(r["out"].strip())

    if a.mergekit:
        # mergekit 0.1.5 refuses model_type hypenet: relabel as qwen3 in copies of the folders.
        relabelled = {}
        for name, src in [("pre", pre), ("sft", sft)]:
            dst = os.path.join(a.work, f"{name}-as-qwen3")
            shutil.rmtree(dst, ignore_errors=True)
            os.makedirs(dst)
            for f in os.listdir(src):
                if f != "config.json":
                    os.symlink(os.path.join(src, f), os.path.join(dst, f))
            cfg = json.load(open(os.path.join(src, "config.json")))
            cfg.update(model_type="qwen3", architectures=["Qwen3ForCausalLM"])
            json.dump(cfg, open(os.path.join(dst, "config.json"), "w"))
            relabelled[src] = dst
        yml = open(os.path.join(a.work, "mergekit.yml")).read()
        for src, dst in relabelled.items():
            yml = yml.replace(json.dumps(src), json.dumps(dst))
        cfg_path = os.path.join(a.work, "mergekit-relabelled.yml")
        open(cfg_path, "w").write(yml)
        out = os.path.join(a.work, "out-mergekit")
        shutil.rmtree(out, ignore_errors=True)
        r = child_peak([a.mergekit, cfg_path, out, "--lazy-unpickle", "--out-shard-size", "2B"])
        rows.append(("mergekit 0.1.5 (linear)", r["s"], r["rss"], "n/a"))
        ours, theirs = set(), set()
        for d, names in [(os.path.join(a.work, "out-qk-restore"), ours), (out, theirs)]:
            for f in os.listdir(d):
                if f.endswith(".safetensors"):
                    with open(os.path.join(d, f), "rb") as fh:
                        n = int.from_bytes(fh.read(8), "little")
                        names.update(k for k in json.loads(fh.read(n)) if k != "__metadata__")
        missing = sorted(ours - theirs)
        kinds = sorted({m.split(".self_attn.")[-1] for m in missing})
        print(f"mergekit output lacks {len(missing)} of {len(ours)} tensors: {kinds}")
    else:
        print("mergekit-yaml not found: skipping that row (pip install mergekit==0.1.5)")

    print()
    print(f"{'run':<26} {'wall s':>8} {'peak RSS':>12} {'RSS / ckpt':>11} {'read':>12}")
    for name, s, rss, read in rows:
        print(f"{name:<26} {s:>8.2f} {gib(rss):>12} {100 * rss / size:>10.2f}% {read:>12}")
    if a.mergekit:
        print(f"mergekit / qklab qk-restore wall time: {rows[2][1] / rows[0][1]:.1f}x")
    if not a.keep:
        for d in os.listdir(a.work):
            if d.startswith("out-") or d.endswith("-as-qwen3"):
                shutil.rmtree(os.path.join(a.work, d), ignore_errors=True)


if __name__ == "__main__":
    main()
