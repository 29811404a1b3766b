#!/usr/bin/env bash
# Records the demo's results that the page shows the moment the demo
# opens (www/demo/results.json): S1 and MK at 2048 tokens, 5 depths x 10
# samples (seed 12345), for pre, sft, QK-Restore and the ablation (QK-Pro,
# Q-, K-, V-Restore), with the command, the adapter and the date, and the
# demo checkpoints' fingerprints (tests/demo_results.rs checks them).
# Run from the repo root (on the lent GPU for the shipped file; any backend
# gives the same answers):
#   scripts/record-demo.sh [QKLAB_BINARY] [BACKEND]     (default target/release/qklab, gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
QK="$(realpath "${1:-target/release/qklab}")"
BACKEND="${2:-gpu}"
ROOT="$PWD"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r www/demo/pre www/demo/sft "$work/"
cd "$work"
for m in qk-restore q-restore k-restore v-restore qk-pro; do
    "$QK" merge --pre pre --sft sft --method "$m" --out "$m" > /dev/null
done
MODELS="pre sft qk-restore qk-pro q-restore k-restore v-restore"
for task in s1 mk; do
    # shellcheck disable=SC2086
    "$QK" niah $MODELS --task "$task" --lengths 2048 --samples 10 --seed 12345 --backend "$BACKEND" --json "niah-$task.json"
done
"$QK" run pre --ids 256 --max-new 1 --backend "$BACKEND" 2> run.log > /dev/null
adapter=$(sed -n 's/^loaded on \(.*\) in .*/\1/p' run.log)
"$QK" fingerprint pre --role pre > fp-pre.json
"$QK" fingerprint sft --role sft > fp-sft.json
python3 - "$adapter" "$ROOT/www/demo/results.json" <<'PY'
import datetime, json, sys
adapter, out = sys.argv[1], sys.argv[2]
doc = {
    "recorded": {
        "command": "scripts/record-demo.sh (qklab niah pre sft qk-restore qk-pro q-restore k-restore v-restore "
                   "--task s1|mk --lengths 2048 --samples 10 --seed 12345)",
        "adapter": adapter,
        "date": datetime.date.today().isoformat(),
    },
    "checkpoints": {"pre": json.load(open("fp-pre.json")), "sft": json.load(open("fp-sft.json"))},
    "models": ["pre", "sft", "qk-restore", "qk-pro", "q-restore", "k-restore", "v-restore"],
    "niah": {t: json.load(open(f"niah-{t}.json")) for t in ("s1", "mk")},
    # The SFT skill: the reference's teacher-forced exact match on 300 held-out CoT arithmetic
    # problems (reference/train.py eval --arith 300; qklab scores answers with issue 17).
    "arithmetic": {"source": "reference/train.py eval --arith 300 (docs/demo-results/v2-eval-c.log)",
                   "pre": 0.0, "sft": 100.0, "qk-restore": 50.3, "qk-pro": 97.0, "v-restore": 53.7},
}
json.dump(doc, open(out, "w"), indent=1)
print(f"wrote {out}")
PY
