"""Training and evaluation of the tiny demo pairs (HypeNet; Jet-Nemotron with --family jet).

    python reference/train.py pretrain --out runs/pre [--family jet] [--steps N | --minutes M] [--seed S]
    python reference/train.py sft --pre runs/pre --out runs/sft --steps 1500 --lr 1e-4 [--general 0.1]
    python reference/train.py eval --pre runs/pre --sft runs/sft --out results.json [--samples 20]

pretrain: language modelling on packed 2048-byte rows of the data.py mix
(NIAH documents with answers, essay text, a little plain arithmetic).
sft: CoT arithmetic traces (<= 512 bytes), loss on the answer only, with an
optional share of general rows (full loss) so the answer format survives.
eval: NIAH s1/s2/s3/mk x lengths x 5 depths x samples, and arithmetic exact
match on 500 held-out problems, for pre, sft and the merges of merge.py.
sft and eval read the family from the checkpoint's config.json.
Exactness is teacher-forced: the greedy continuation equals the answer iff
the argmax at every answer position is the answer's next token.
"""
import argparse
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import hypenet  # noqa: E402
import jet  # noqa: E402
from merge import merge  # noqa: E402

BOS, EOS, PAD = 256, 257, 258
SOFTMAX_LAYERS = [3, 6]
# The Jet demo: JetBlocks, full attention at 3 and 6 as in the HypeNet demo,
# and a sliding-window layer between them that the needle must not need.
JET_LAYERS = ["jet", "jet", "jet", "attn", "jet", "swa", "attn", "jet"]
JET_WINDOW = 64


def demo_config():
    mixers = ["attn" if i in SOFTMAX_LAYERS else "lightning-attn" for i in range(8)]
    return hypenet.Config(
        vocab_size=259, hidden_size=192, intermediate_size=512, num_hidden_layers=8, mixer_types=mixers,
        num_attention_heads=4, num_key_value_heads=2, head_dim=48,
        lightning_nh=4, lightning_nkv=4, lightning_head_dim=48,
        rope_theta=1e6, attn_use_rope=False, lightning_use_rope=True, attn_use_output_gate=True,
        attn_logits_scaling=None, tie_word_embeddings=True,
    )


def jet_demo_config():
    """The same trunk as demo_config (D 192, I 512, 8 layers, 4 heads of 48
    over 2 kv heads, tied byte embeddings), Qwen2 attention with RoPE, and
    JetBlocks of 3 heads (dk 32, dv 64) with a 4-tap dynamic convolution.
    dk is 32, not 48, because flash-linear-attention's training kernel is
    miscompiled on Hopper at a key block of 64 (see jet.gated_delta_fla)."""
    return jet.JetConfig(
        vocab_size=259, hidden_size=192, intermediate_size=512, num_hidden_layers=8,
        num_attention_heads=4, num_key_value_heads=2, head_dim=48, rope_theta=1e6,
        tie_word_embeddings=True, max_position_embeddings=4096, layer_types=list(JET_LAYERS),
        efficient_attention_config={
            "jet": dict(mode="chunk", expand_v=2.0, num_heads=3, head_dim=32, norm_eps=1e-5, conv_size=4,
                        dconv_generator_reduction=8, dconv_implementation="triton"),
            "swa": dict(window_size=JET_WINDOW),
        },
    )


FAMILIES = {"hypenet": (demo_config, hypenet.HypeNet), "jet": (jet_demo_config, jet.JetNemotron)}


def load_pretrained(folder, device="cpu", **options):
    """(model, cfg) of either family, by the config's model_type; options
    (gdn_impl) go to the Jet-Nemotron loader only."""
    with open(os.path.join(folder, "config.json")) as f:
        model_type = json.load(f).get("model_type")
    if model_type == "jet_nemotron":
        return jet.load_pretrained(folder, device=device, **options)
    return hypenet.load_pretrained(folder, device=device)



def save_pretrained(model, cfg, folder):
    (jet if isinstance(cfg, jet.JetConfig) else hypenet).save_pretrained(model, cfg, folder)


def softmax_layers(cfg):
    """The layers QK-Restore restores by default: full attention only (a
    Jet-Nemotron's sliding-window layers are left to the SFT, as qklab does)."""
    if isinstance(cfg, jet.JetConfig):
        return cfg.full_attention_layers
    return [i for i, m in enumerate(cfg.mixer_types) if m == "attn"]


def attn_head_dim(cfg):
    return cfg.attn_head_dim if isinstance(cfg, jet.JetConfig) else cfg.head_dim


def encode(text):
    return list(text.encode("utf-8"))


# ---------------------------------------------------------------- data streams

class PackedRows(torch.utils.data.IterableDataset):
    """Rows of `seq + 1` tokens: [bos] doc [eos] [bos] doc [eos] …, pad-filled
    (loss-masked) where the next document would not fit."""

    def __init__(self, seq, seed, mix):
        self.seq, self.seed, self.mix = seq, seed, mix

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = random.Random(self.seed * 1000 + (info.id if info else 0))
        n = self.seq + 1
        while True:
            row = []
            while True:
                doc = [BOS] + encode(data.lm_document(rng, max_len=self.seq - 2, **self.mix)) + [EOS]
                if len(row) + len(doc) > n:
                    break
                row += doc
            row += [PAD] * (n - len(row))
            yield torch.tensor(row, dtype=torch.long)


class SftRows(torch.utils.data.IterableDataset):
    """Rows of 513 tokens packed with CoT examples (loss on the answers), and
    with probability `general` a general-text row (loss everywhere)."""

    def __init__(self, seed, general, mix, seq=512):
        self.seed, self.general, self.mix, self.seq = seed, general, mix, seq

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = random.Random(self.seed * 1000 + 7 + (info.id if info else 0))
        n = self.seq + 1
        while True:
            ids, mask = [], []
            if rng.random() < self.general:
                while True:
                    doc = [BOS] + encode(data.lm_document(rng, max_len=self.seq - 2, **self.mix)) + [EOS]
                    if len(ids) + len(doc) > n:
                        break
                    ids += doc
                    mask += [1] * len(doc)
            else:
                while True:
                    prompt, target = data.sft_example(rng)
                    p, t = [BOS] + encode(prompt), encode(target) + [EOS]
                    if len(ids) + len(p) + len(t) > n:
                        break
                    ids += p + t
                    mask += [0] * len(p) + [1] * len(t)
            ids += [PAD] * (n - len(ids))
            mask += [0] * (n - len(mask))
            yield torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.bool)


def loader(ds, batch, workers):
    return iter(torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers, persistent_workers=workers > 0,
                                            prefetch_factor=8 if workers else None))


# ---------------------------------------------------------------- training

def lr_at(step, total, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def param_groups(model):
    """Weight decay 0.1, except where the model says decay would distort
    (a JetBlock's A_log and dt_bias would be pulled towards fixed decays)."""
    exempt = set(getattr(model, "no_weight_decay", lambda: [])())
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [{"params": [p for n, p in named if n not in exempt], "weight_decay": 0.1},
            {"params": [p for n, p in named if n in exempt], "weight_decay": 0.0}]


def train_loop(model, batches, steps, peak_lr, warmup, log, masked, minutes=None):
    opt = torch.optim.AdamW(param_groups(model), lr=peak_lr, betas=(0.9, 0.95))
    dev = next(model.parameters()).device
    t0 = t20 = time.time()
    step = 0
    if minutes is not None:
        steps = 10**9  # set at step 60
    while True:
        # With a time budget, the step count is fixed from steps 20-60 (the
        # first steps include start-up) and the schedule follows it.
        if minutes is not None and step == 20:
            t20 = time.time()
        if minutes is not None and step == 60:
            per = (time.time() - t20) / 40
            steps = max(80, 60 + int((minutes * 60 - (time.time() - t0)) / per))
            log(f"{per * 1000:.0f} ms/step: {steps} steps fit in {minutes} min")
        if step >= steps:
            break
        b = next(batches)
        if masked:
            ids, mask = b[0].to(dev, non_blocking=True), b[1].to(dev, non_blocking=True)
            tgt_mask = mask[:, 1:]
        else:
            ids = b.to(dev, non_blocking=True)
            tgt_mask = ids[:, 1:] != PAD
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, peak_lr, warmup)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1), reduction="none")
        loss = (loss * tgt_mask.reshape(-1)).sum() / tgt_mask.sum().clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"step {step}/{steps} loss {loss.item():.4f} lr {opt.param_groups[0]['lr']:.2e} {time.time() - t0:.0f}s")
        step += 1
    return step


def logger(path):
    f = open(path, "a", buffering=1)

    def log(msg):
        print(msg, flush=True)
        f.write(msg + "\n")
    return log


def device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def weights(text):
    """"niah=0.8,essay=0.1" -> {"niah": 0.8, "essay": 0.1}"""
    return {k: float(v) for k, v in (kv.split("=") for kv in text.split(","))} if text else None


def pre_mix(a):
    return dict(mix=weights(a.mix), niah_tasks=weights(a.niah_tasks))


def cmd_pretrain(a):
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    log = logger(os.path.join(a.out, "train.log"))
    log(f"pretrain {vars(a)}")
    make_config, Model = FAMILIES[a.family]
    cfg = make_config()
    model = (Model(cfg, gdn_impl=a.gdn) if a.family == "jet" else Model(cfg)).to(device())
    log(f"{sum(p.numel() for p in model.parameters())} parameters")
    batches = loader(PackedRows(a.seq, a.seed, pre_mix(a)), a.batch, a.workers)
    steps = train_loop(model, batches, a.steps, a.lr, 200, log, masked=False, minutes=a.minutes)
    log(f"done: {steps} steps")
    save_pretrained(model, cfg, a.out)


def cmd_sft(a):
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    log = logger(os.path.join(a.out, "train.log"))
    log(f"sft {vars(a)}")
    model, cfg = load_pretrained(a.pre, device=device(), gdn_impl=a.gdn)
    model.train()
    if a.train_only:
        # Only parameters whose name holds this string learn (".self_attn."
        # is what LoRA on q/k/v/o would touch); the rest stay pre's.
        for name, p in model.named_parameters():
            p.requires_grad = a.train_only in name
        log(f"training {sum(p.numel() for p in model.parameters() if p.requires_grad)} of {sum(p.numel() for p in model.parameters())} parameters")
    batches = loader(SftRows(a.seed, a.general, pre_mix(a)), a.batch, a.workers)
    steps = train_loop(model, batches, a.steps, a.lr, 50, log, masked=True, minutes=a.minutes)
    log(f"done: {steps} steps")
    save_pretrained(model, cfg, a.out)


# ---------------------------------------------------------------- evaluation

@torch.no_grad()
def exact(model, prompts, answers, batch=32, hype=None):
    """Teacher-forced exactness of `answers` after `prompts` (lists of str)."""
    dev = next(model.parameters()).device
    # HyPE is HypeNet's length extrapolation; other families have none.
    has_hype = hasattr(model.config, "attn_logits_scaling")
    if has_hype:
        old = model.config.attn_logits_scaling
        model.config.attn_logits_scaling = hype
    out = []
    for i in range(0, len(prompts), batch):
        seqs = [([BOS] + encode(p), encode(t)) for p, t in zip(prompts[i:i + batch], answers[i:i + batch])]
        n = max(len(p) + len(t) for p, t in seqs)
        ids = torch.full((len(seqs), n), PAD, dtype=torch.long)
        for r, (p, t) in enumerate(seqs):
            ids[r, :len(p) + len(t)] = torch.tensor(p + t)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            pred = model(ids.to(dev)).argmax(-1).cpu()
        for r, (p, t) in enumerate(seqs):
            got = pred[r, len(p) - 1:len(p) + len(t) - 1].tolist()
            out.append(int(got == t))
    if has_hype:
        model.config.attn_logits_scaling = old
    return out


def niah_suite(samples, lengths, tasks, seed):
    """Cells of the sweep; lengths below a task's template minimum are skipped
    (the fixed text alone is ~360 bytes, ~950 for mk with 8 distractors)."""
    cells = []
    for task in tasks:
        for length in lengths:
            if length < data.min_length(task):
                continue
            for d, depth in enumerate([0.0, 0.25, 0.5, 0.75, 1.0]):
                items = [data.niah_prompt(task, length, depth, seed=seed + 1000 * s + 17 * d + length)
                         for s in range(samples)]
                cells.append(dict(task=task, length=length, depth=depth, items=items))
    return cells


def evaluate(model, cells, arith, log, name):
    res = {"niah": [], "arith": None}
    for c in cells:
        hype = "hype 500" if c["length"] > 2048 else None
        scores = exact(model, [it["prompt"] for it in c["items"]], [" " + it["value"] for it in c["items"]], hype=hype)
        res["niah"].append(dict(task=c["task"], length=c["length"], depth=c["depth"], accuracy=sum(scores) / len(scores)))
    q, cot = [x[0] for x in arith], [x[1] for x in arith]
    res["arith"] = sum(exact(model, q, cot)) / len(q) if q else float("nan")
    table = {}
    for r in res["niah"]:
        table.setdefault((r["task"], r["length"]), []).append(r["accuracy"])
    summary = "  ".join(f"{t}@{l}={100 * sum(v) / len(v):.0f}" for (t, l), v in sorted(table.items()))
    log(f"{name:>20}: arith {100 * res['arith']:.1f}  {summary}")
    return res


def cmd_eval(a):
    log = logger(a.out + ".log")
    dev = device()
    pre, cfg = load_pretrained(a.pre, device=dev)
    t0 = time.time()
    cells = niah_suite(a.samples, a.lengths, a.tasks, a.seed)
    arith = [(p, c) for p, c in data.arith_eval_pairs(a.arith)] if a.arith else []
    log(f"prompts ready in {time.time() - t0:.0f}s")
    results = {"pre": evaluate(pre, cells, arith, log, "pre")}
    pre_sd = {k: v.detach().clone() for k, v in pre.state_dict().items()}
    for sft_dir in a.sft:
        sft, _ = load_pretrained(sft_dir, device=dev)
        tag = os.path.basename(sft_dir.rstrip("/"))
        results[tag] = evaluate(sft, cells, arith, log, tag)
        sft_sd = {k: v.detach().clone() for k, v in sft.state_dict().items()}
        for method in a.methods:
            merged = merge(pre_sd, sft_sd, softmax_layers(cfg), method, heads=cfg.num_attention_heads,
                           kv_heads=cfg.num_key_value_heads, head_dim=attn_head_dim(cfg))
            sft.load_state_dict(merged)
            results[f"{tag}+{method}"] = evaluate(sft, cells, arith, log, f"{tag}+{method}")
    json.dump(results, open(a.out, "w"), indent=1)


def data_args(p):
    """The options pretrain and sft share (sft uses the mix for its general rows)."""
    # The Triton kernel (fla) is the same function as the chunked form
    # (test_jet.py holds them together on CUDA) and much faster there.
    p.add_argument("--gdn", choices=jet.GDN_IMPLS, default="chunked",
                   help="Jet-Nemotron: how JetBlocks run the gated delta rule while training")
    p.add_argument("--workers", type=int, default=12)
    p.add_argument("--mix", default="", help="document kinds, e.g. niah=0.8,essay=0.1,arith=0.1 (default: data.py's)")
    p.add_argument("--niah-tasks", default="", help="e.g. s1=0.3,s2=0.3,s3=0.1,mk=0.3")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pretrain")
    p.add_argument("--out", required=True)
    p.add_argument("--family", choices=sorted(FAMILIES), default="hypenet")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--minutes", type=float)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=1)
    data_args(p)
    s = sub.add_parser("sft")
    s.add_argument("--pre", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--steps", type=int, default=1500)
    s.add_argument("--batch", type=int, default=64)
    s.add_argument("--lr", type=float, default=1e-4)
    s.add_argument("--minutes", type=float, help="fix the step count from the speed of steps 20-60 (overrides --steps)")
    s.add_argument("--general", type=float, default=0.0)
    s.add_argument("--seed", type=int, default=2)
    s.add_argument("--train-only", default="", help='train only parameters whose name contains this, e.g. ".self_attn."')
    data_args(s)
    e = sub.add_parser("eval")
    e.add_argument("--pre", required=True)
    e.add_argument("--sft", nargs="*", default=[], help="sft checkpoints (none: pre alone)")
    e.add_argument("--out", required=True)
    e.add_argument("--samples", type=int, default=20)
    e.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    e.add_argument("--tasks", nargs="+", default=["s1", "s2", "s3", "mk"])
    e.add_argument("--seed", type=int, default=12345)
    e.add_argument("--methods", nargs="*", default=["qk-restore", "qk-pro", "q-restore", "k-restore", "v-restore"],
                   help="merges of each sft to evaluate too")
    e.add_argument("--arith", type=int, default=500, help="held-out arithmetic problems (0: none)")
    a = ap.parse_args()
    {"pretrain": cmd_pretrain, "sft": cmd_sft, "eval": cmd_eval}[a.cmd](a)


if __name__ == "__main__":
    main()
