"""Mean attention distance per head (SPEC-methods Eq. 17) and needle mass
from the question of the demo pair and its QK-Restore merge on one NIAH
prompt, computed the plain way: the full T x T probability matrix of every
softmax head from the explicit attention path, then
d_h = mean over t of sum_{s<=t} a(t,s) (t - s), and the mean over the
question's last 8 rows of the probability on the needle's tokens.

It writes tests/fixtures/demo/routing-reference.json, which says which heads
attend closer after SFT and which layer and head lose the most needle mass;
tests/routing.rs checks `qklab routing` against it.

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
def distances(model, cfg, ids, needle, queries):
    """Per softmax layer: each head's mean distance and needle mass."""
    x = torch.tensor([ids], dtype=torch.long)
    t = torch.arange(len(ids), dtype=torch.float64)
    gap = (t[:, None] - t[None, :]).clamp_min(0)
    dist, mass = {}, {}
    for layer, mixer in enumerate(cfg.mixers):
        if mixer != hypenet.ATTN:
            continue
        d, m = [], []
        for head in range(cfg.num_attention_heads):
            _, extras = model(x, return_attn=(layer, head), attn_impl="explicit")
            a = extras["attn"][0].double()
            d.append(float((a * gap).sum(dim=1).mean()))
            m.append(float(a[queries[0]:queries[1], needle[0]:needle[1]].sum(dim=1).mean()))
        dist[str(layer)], mass[str(layer)] = d, m
    return dist, mass


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
    # Byte tokens after BOS: the needle's span, and the question after the haystack.
    needle = (1 + s["needle_span"][0], 1 + s["needle_span"][1])
    # The question's last 8 positions (src/prompts.rs QUESTION_ROWS).
    queries = (max(1 + s["prompt"].rindex("\n"), len(ids) - 8), len(ids))
    both = {name: distances(model_from_state(cfg, sd), cfg, ids, needle, queries) for name, sd in models.items()}
    result = {name: d for name, (d, _) in both.items()}
    mass = {name: m for name, (_, m) in both.items()}
    closer = {
        layer: [h for h, (p, q) in enumerate(zip(result["pre"][layer], result["sft"][layer])) if q < p]
        for layer in result["pre"]
    }
    drops = [(mass["pre"][l][h] - mass["sft"][l][h], l, h) for l in mass["pre"] for h in range(len(mass["pre"][l]))]
    drop, layer, head = max(drops)
    doc = {
        "command": "python reference/routing.py",
        "prompt": PROMPT,
        "tokens": len(ids),
        "needle_tokens": list(needle),
        "query_tokens": list(queries),
        "mean_distance": result,
        "needle_mass": mass,
        "heads_closer_after_sft": closer,
        "largest_needle_mass_drop": {"layer": int(layer), "head": head, "pre": mass["pre"][layer][head], "sft": mass["sft"][layer][head]},
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    for name, per_layer in result.items():
        for layer, d in per_layer.items():
            print(f"{name:10s} layer {layer}: " + " ".join(f"{x:7.1f}" for x in d))
    for name, per_layer in mass.items():
        for layer, m in per_layer.items():
            print(f"{name:10s} layer {layer} needle mass: " + " ".join(f"{x:6.3f}" for x in m))
    print("heads closer after SFT:", closer)
    print("largest needle-mass drop:", doc["largest_needle_mass_drop"])


if __name__ == "__main__":
    main()
