"""Write the golden fixtures under tests/fixtures/demo/ from the demo
checkpoints www/demo/pre and www/demo/sft (see tests/fixtures/demo/README.md).

Everything runs in f32 on CPU, single-threaded, so the output is the same
from run to run.  The stored logits come from the literal spec form
(recurrent Lightning, explicit softmax attention); the script checks that
the chunked / SDPA form agrees to 1e-4 relative and exits non-zero if not.

Usage (from the repo root):  python reference/make_fixtures.py
"""
import json
import os
import random
import struct
import sys

import torch
from safetensors.torch import load_file, save

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import data  # noqa: E402
import hypenet  # noqa: E402
from merge import merge  # noqa: E402

FIXTURE_VERSION = "1"
COMMAND = "python reference/make_fixtures.py"
SEED = 20261122
SENTENCE = "The quick brown fox jumps over the lazy dog."
RANDOM_LEN = 128
NIAH = dict(task="s2", length=512, depth=0.5, seed=SEED)
SOFTMAX_LAYERS = [3, 6]
ATTN_LAYER, ATTN_HEAD = 3, 0
STATE_LAYER = 0
GREEDY_NEW = 16
TOL = 1e-4

PRE_DIR = os.path.join(ROOT, "www", "demo", "pre")
SFT_DIR = os.path.join(ROOT, "www", "demo", "sft")
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "demo")


def sequences(bos):
    a = [bos] + list(SENTENCE.encode("utf-8"))
    rng = random.Random(SEED)
    b = [bos] + [rng.randrange(256) for _ in range(RANDOM_LEN)]
    s = data.niah_prompt(NIAH["task"], NIAH["length"], NIAH["depth"], seed=NIAH["seed"])
    c = [bos] + list(s["prompt"].encode("utf-8"))
    return {"a": a, "b": b, "c": c}, s


def save_sorted(tensors, path, metadata):
    """safetensors.torch.save, with the JSON header re-written with sorted keys:
    the library keeps __metadata__ in a hash map, whose order changes from run
    to run, so this makes the file byte-identical across runs."""
    raw = save(tensors, metadata=metadata)
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + raw[8 + n:])


def decode(ids):
    """Bytes as UTF-8 text, special ids as <bos>/<eos>/<pad>."""
    out, buf = [], bytearray()
    for i in ids:
        if i < 256:
            buf.append(i)
        else:
            out.append(buf.decode("utf-8", errors="replace") + ["<bos>", "<eos>", "<pad>"][i - 256])
            buf = bytearray()
    return "".join(out) + buf.decode("utf-8", errors="replace")


def model_from_state(cfg, sd):
    """Like hypenet.load_pretrained, from an in-memory state dict (f32, CPU, eval)."""
    sd = dict(sd)
    with torch.device("meta"):
        model = hypenet.HypeNet(cfg)
    if cfg.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    model.load_state_dict(sd, strict=True, assign=True)
    return model.to(device="cpu", dtype=torch.float32).eval()


def rel(x, ref):
    return float((x - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


@torch.no_grad()
def fixtures_for(name, model, cfg, seqs):
    t = {}
    worst = 0.0
    for key, ids in seqs.items():
        x = torch.tensor([ids], dtype=torch.long)
        want_extras = name == "pre" and key == "c"
        if want_extras:
            logits, ex = model(x, lightning_mode="recurrent", attn_impl="explicit",
                               return_attn=(ATTN_LAYER, ATTN_HEAD), return_states=True)
        else:
            logits = model(x, lightning_mode="recurrent", attn_impl="explicit")
        chunked = model(x, lightning_mode="chunked", attn_impl="sdpa")
        r = rel(chunked, logits)
        worst = max(worst, r)
        print(f"  {name} seq {key}: T={len(ids)}  chunked/sdpa vs recurrent/explicit "
              f"max|diff|/max|logit| = {r:.3e}")
        t[f"ids_{key}"] = torch.tensor(ids, dtype=torch.int32)
        t[f"logits_{key}"] = logits[0].float().contiguous()
        if want_extras:
            attn = ex["attn"][0].float().contiguous()
            state = ex["states"][STATE_LAYER][0].float().contiguous()
            _, ex2 = model(x, lightning_mode="chunked", return_states=True)
            rs = rel(ex2["states"][STATE_LAYER][0], state)
            worst = max(worst, rs)
            print(f"  {name} seq c: layer {STATE_LAYER} state chunked vs recurrent rel diff = {rs:.3e}")
            t[f"attn_l{ATTN_LAYER}_h{ATTN_HEAD}_c"] = attn
            t[f"lightning_state_l{STATE_LAYER}_c"] = state
    g = hypenet.generate(model, seqs["c"], GREEDY_NEW, lightning_mode="recurrent")
    g2 = hypenet.generate(model, seqs["c"], GREEDY_NEW, lightning_mode="chunked")
    if g != g2:
        sys.exit(f"{name}: greedy continuation differs between recurrent and chunked: {g} vs {g2}")
    t["greedy_c"] = torch.tensor(g, dtype=torch.int32)
    return t, worst, g


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cfg = hypenet.Config.from_json(os.path.join(PRE_DIR, "config.json"))
    cfg_sft = hypenet.Config.from_json(os.path.join(SFT_DIR, "config.json"))
    if cfg.to_dict() != cfg_sft.to_dict():
        sys.exit("pre and sft configs differ")
    found = [i for i, m in enumerate(cfg.mixers) if m == hypenet.ATTN]
    if found != SOFTMAX_LAYERS:
        sys.exit(f"softmax layers are {found}, expected {SOFTMAX_LAYERS}")

    pre_sd = load_file(os.path.join(PRE_DIR, "model.safetensors"))
    sft_sd = load_file(os.path.join(SFT_DIR, "model.safetensors"))
    qk_sd = merge(pre_sd, sft_sd, SOFTMAX_LAYERS, "qk-restore")

    seqs, niah = sequences(cfg.bos_token_id)
    meta = {
        "fixture_version": FIXTURE_VERSION,
        "command": COMMAND,
        "seed": str(SEED),
        "sentence_a": SENTENCE,
        "random_b": f"random.Random({SEED}).randrange(256) x {RANDOM_LEN}",
        "niah_c": (f"data.niah_prompt({NIAH['task']!r}, {NIAH['length']}, {NIAH['depth']}, "
                   f"seed={NIAH['seed']})['prompt']"),
        "niah_value": niah["value"],
        "niah_key": niah["key"],
        "mode": "f32 cpu; logits: lightning_mode=recurrent, attn_impl=explicit; "
                f"greedy: hypenet.generate(max_new={GREEDY_NEW}, no stop ids, cache)",
        "torch": torch.__version__,
    }
    models = [
        ("pre", "www/demo/pre", pre_sd),
        ("sft", "www/demo/sft", sft_sd),
        ("qk-restore", f"merge(www/demo/pre, www/demo/sft, {SOFTMAX_LAYERS}, 'qk-restore')", qk_sd),
    ]
    os.makedirs(OUT_DIR, exist_ok=True)
    worst = 0.0
    for name, src, sd in models:
        model = model_from_state(cfg, sd)
        t, w, g = fixtures_for(name, model, cfg, seqs)
        worst = max(worst, w)
        path = os.path.join(OUT_DIR, f"{name}.safetensors")
        save_sorted(t, path, dict(meta, model=name, model_source=src))
        text = decode(g)
        print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes); greedy_c = {g} "
              f"= {text!r}; contains value {niah['value']!r}: {niah['value'] in text}")
    print(f"max relative diff chunked vs recurrent over all: {worst:.3e} (tolerance {TOL:g})")
    if worst > TOL:
        sys.exit(f"chunked and recurrent disagree: {worst:.3e} > {TOL:g}")


if __name__ == "__main__":
    main()
