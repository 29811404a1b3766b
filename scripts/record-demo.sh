#!/usr/bin/env bash
# Records a demo pair's results that the page shows the moment that demo
# opens (PAIR_DIR/results.json; the pairs are listed in src/app/demo.rs):
# S1 and MK at 2048 tokens, 5 depths x 10 samples (seed 12345), for pre,
# sft, QK-Restore and the ablation (QK-Pro, Q-, K-, V-Restore), with the
# command, the adapter and the date, and the checkpoints' fingerprints
# (tests/demo_results.rs checks them). For the guide it also records what
# the pair is (family, every layer's kind: full attention, sliding window,
# linear; `qklab inspect`) and its retrieval head with that head's needle
# mass in pre, sft and QK-Restore (`qklab routing`: the mean over six S1
# prompts at 2048 tokens, needle at depth 0.5, prompt seeds 0-5).
#
# Run from the repo root (on the lent GPU for the shipped files, a few
# minutes a pair; any backend gives the same answers):
#   scripts/record-demo.sh [QKLAB_BINARY] [BACKEND] [PAIR_DIR]
#       (default target/release/qklab, gpu, www/demo; www/demo-jet for Jet-Nemotron)
#
# Inputs, beside PAIR_DIR/pre and PAIR_DIR/sft:
#   PAIR_DIR/arithmetic-scores.json   the skill SFT taught, from the reference's evaluation
#       (qklab does not score it here): {"source": "how it was scored", "pre": 0.0,
#       "sft": 100.0, "qk-restore": 50.3, ...} in % exact, any of the recorded models.
#       Without it the recording has no arithmetic and the page says so.
#   RETRIEVAL_HEAD=L,H (environment, optional) pins the retrieval head; by default it
#       is the head of a full-attention layer whose needle mass falls most from pre to sft.
set -euo pipefail
cd "$(dirname "$0")/.."
QK="$(realpath "${1:-target/release/qklab}")"
BACKEND="${2:-gpu}"
PAIR="${3:-www/demo}"
PAIR="${PAIR%/}"
OUT="$(realpath "$PAIR")/results.json"
SCORES="$(realpath "$PAIR")/arithmetic-scores.json"
for side in pre sft; do
    [ -f "$PAIR/$side/model.safetensors" ] || { echo "record-demo: $PAIR/$side/model.safetensors is missing" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$PAIR/pre" "$PAIR/sft" "$work/"
cd "$work"
for m in qk-restore q-restore k-restore v-restore qk-pro; do
    "$QK" merge --pre pre --sft sft --method "$m" --out "$m" > /dev/null
done
MODELS="pre sft qk-restore qk-pro q-restore k-restore v-restore"
for task in s1 mk; do
    # shellcheck disable=SC2086
    "$QK" niah $MODELS --task "$task" --lengths 2048 --samples 10 --seed 12345 --backend "$BACKEND" --json "niah-$task.json"
done
"$QK" inspect pre --json > inspect.json
# The routing report holds every softmax layer's needle mass per head,
# whichever layer's map it draws: draw the first full-attention layer's.
first_full=$(python3 -c '
import json
layers = json.load(open("inspect.json"))["layers"]
print(next(l["index"] for l in layers if l["softmax"] and l["window"] is None))')
for seed in 0 1 2 3 4 5; do
    "$QK" routing pre sft qk-restore --task s1 --length 2048 --depth 0.5 --prompt-seed "$seed" \
        --layer "$first_full" --head 0 --backend "$BACKEND" --json "routing-$seed.json" > /dev/null
done
"$QK" run pre --ids 256 --max-new 1 --backend "$BACKEND" 2> run.log > /dev/null
adapter=$(sed -n 's/^loaded on \(.*\) in .*/\1/p' run.log)
"$QK" fingerprint pre --role pre > fp-pre.json
"$QK" fingerprint sft --role sft > fp-sft.json
python3 - "$adapter" "$OUT" "$SCORES" "$PAIR" "${RETRIEVAL_HEAD:-}" <<'PY'
import datetime, json, os, sys
adapter, out, scores, pair, pinned = sys.argv[1:6]
models = ["pre", "sft", "qk-restore", "qk-pro", "q-restore", "k-restore", "v-restore"]

# What the pair is: the family and every layer's kind.
inspect = json.load(open("inspect.json"))
def kind(l):
    if not l["softmax"]:
        return "linear"
    return "window" if l["window"] is not None else "full"
layers = []
for l in inspect["layers"]:
    entry = {"index": l["index"], "mixer": l["mixer"], "kind": kind(l)}
    if l["window"] is not None:
        entry["window"] = l["window"]
    layers.append(entry)
full = [l["index"] for l in layers if l["kind"] == "full"]

# Needle mass per (layer, head) and model, the mean over the six prompts;
# the routing runs name their models pre, sft, qk-restore in that order.
runs = [json.load(open(f"routing-{s}.json")) for s in range(6)]
mass = {}
for run in runs:
    for name, m in zip(["pre", "sft", "qk-restore"], run["models"]):
        for l in m["layers"]:
            for h, x in enumerate(l["needle_mass"]):
                mass.setdefault((l["layer"], h), {}).setdefault(name, []).append(x)
mean = {k: {n: sum(xs) / len(xs) for n, xs in v.items()} for k, v in mass.items()}
if pinned:
    head = tuple(int(x) for x in pinned.split(","))
    if head not in mean:
        sys.exit(f"record-demo: RETRIEVAL_HEAD={pinned} is no softmax head of the pair")
else:
    head = max((k for k in mean if k[0] in full), key=lambda k: (mean[k]["pre"] - mean[k]["sft"], -k[0], -k[1]))

doc = {
    "recorded": {
        "command": f"scripts/record-demo.sh QKLAB BACKEND {pair} (qklab niah pre sft qk-restore qk-pro q-restore k-restore v-restore "
                   "--task s1|mk --lengths 2048 --samples 10 --seed 12345)",
        "adapter": adapter,
        "date": datetime.date.today().isoformat(),
    },
    "checkpoints": {"pre": json.load(open("fp-pre.json")), "sft": json.load(open("fp-sft.json"))},
    "models": models,
    "niah": {t: json.load(open(f"niah-{t}.json")) for t in ("s1", "mk")},
    # The SFT skill, from the reference's evaluation (PAIR_DIR/arithmetic-scores.json).
    "arithmetic": {},
    "pair": {"family": inspect["family"], "layers": layers},
    "retrieval": {
        "layer": head[0],
        "head": head[1],
        "needle_mass": {n: round(x, 4) for n, x in mean[head].items()},
        "prompts": "six S1 prompts of 2048 tokens, needle at depth 0.5, prompt seeds 0-5",
    },
}
if os.path.exists(scores):
    arith = json.load(open(scores))
    if not isinstance(arith.get("source"), str):
        sys.exit(f"record-demo: {scores} needs a \"source\": how the skill was scored")
    for k, v in arith.items():
        if k != "source" and (k not in models or not isinstance(v, (int, float))):
            sys.exit(f"record-demo: {scores}: {k!r} is not a recorded model with a number")
    doc["arithmetic"] = arith
else:
    print(f"record-demo: no {scores}: the recording has no arithmetic", file=sys.stderr)
json.dump(doc, open(out, "w"), indent=1)
print(f"wrote {out}: retrieval head layer {head[0]} head {head[1]}, needle mass " +
      ", ".join(f"{n} {x:.3f}" for n, x in mean[head].items()))
PY
