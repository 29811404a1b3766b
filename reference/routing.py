"""Mean attention distance per head (SPEC-methods Eq. 17) of the demo pair
and its QK-Restore merge on one NIAH prompt, computed the plain way: the full
T x T probability matrix of every softmax head from the explicit attention
path, then d_h = mean over t of sum_{s<=t} a(t,s) (t - s).

It writes tests/fixtures/demo/routing-reference.json, which says which heads
attend closer after SFT; tests/routing.rs checks `qklab routing` against it.

Usage (from the repo root):  python reference/routing.py
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import data  # noqa: E402
import hypenet  # noqa: E402
from make_fixtures import model_from_state  # noqa: E402
from merge import merge  # noqa: E402

# S1 at 2048 bytes is where the demo's SFT loses most (docs/demo-reproduction.md).
PROMPT = dict(task="s1", length=2048, depth=0.5, seed=0)
OUT = os.path.join(ROOT, "tests", "fixtures", "demo", "routing-reference.json")


@torch.no_grad()
def distances(model, cfg, ids):
    x = torch.tensor([ids], dtype=torch.long)
    t = torch.arange(len(ids), dtype=torch.float64)
    gap = (t[:, None] - t[None, :]).clamp_min(0)
    out = {}
    for layer, mixer in enumerate(cfg.mixers):
        if mixer != hypenet.ATTN:
            continue
        per_head = []
        for head in range(cfg.num_attention_heads):
            _, extras = model(x, return_attn=(layer, head), attn_impl="explicit")
            a = extras["attn"][0].double()
            per_head.append(float((a * gap).sum(dim=1).mean()))
        out[str(layer)] = per_head
    return out


def main():
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    pre_dir, sft_dir = (os.path.join(ROOT, "www", "demo", n) for n in ("pre", "sft"))
    cfg = hypenet.Config.from_json(os.path.join(pre_dir, "config.json"))
    softmax = [i for i, m in enumerate(cfg.mixers) if m == hypenet.ATTN]
    pre_sd = load_file(os.path.join(pre_dir, "model.safetensors"))
    sft_sd = load_file(os.path.join(sft_dir, "model.safetensors"))
    models = {
        "pre": pre_sd,
        "sft": sft_sd,
        "qk-restore": merge(pre_sd, sft_sd, softmax, "qk-restore"),
    }
    s = data.niah_prompt(PROMPT["task"], PROMPT["length"], PROMPT["depth"], seed=PROMPT["seed"])
    ids = [cfg.bos_token_id] + list(s["prompt"].encode("utf-8"))
    result = {name: distances(model_from_state(cfg, sd), cfg, ids) for name, sd in models.items()}
    closer = {
        layer: [h for h, (p, q) in enumerate(zip(result["pre"][layer], result["sft"][layer])) if q < p]
        for layer in result["pre"]
    }
    doc = {
        "command": "python reference/routing.py",
        "prompt": PROMPT,
        "tokens": len(ids),
        "mean_distance": result,
        "heads_closer_after_sft": closer,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    for name, per_layer in result.items():
        for layer, d in per_layer.items():
            print(f"{name:10s} layer {layer}: " + " ".join(f"{x:7.1f}" for x in d))
    print("heads closer after SFT:", closer)


if __name__ == "__main__":
    main()
