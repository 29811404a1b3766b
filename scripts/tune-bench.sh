#!/usr/bin/env bash
# The demo's default tune grid (22 candidates: S1 at 2048 tokens, 5 depths x
# 4 samples, the 300 arithmetic answers, 12 agreement prompts), timed, and
# beside it the way without swapping: for three candidates, `qklab merge`,
# `qklab niah` and `qklab answers` one after another (each loads its model).
# Run from the repo root:
#   scripts/tune-bench.sh [QKLAB_BINARY] [BACKEND] [OUT_DIR]   (default target/release/qklab, auto, .)
set -euo pipefail
cd "$(dirname "$0")/.."
QK="$(realpath "${1:-target/release/qklab}")"
BACKEND="${2:-auto}"
OUT="$(realpath "${3:-.}")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }
t0=$(now)
"$QK" tune --pre www/demo/pre --sft www/demo/sft --answers www/demo/arithmetic.jsonl --backend "$BACKEND" \
    --json "$OUT/tune-$BACKEND.json" > "$OUT/tune-$BACKEND.txt" 2> "$work/tune.err"
t1=$(now)
echo "tune, default grid, $BACKEND: $(secs "$t0" "$t1") s"
tail -3 "$OUT/tune-$BACKEND.txt"
t0=$(now)
for spec in "qk-restore" "qk-pro --beta 0.5" "k-restore"; do
    m="$work/m-${spec%% *}"
    # shellcheck disable=SC2086
    "$QK" merge --pre www/demo/pre --sft www/demo/sft --method $spec --out "$m" > /dev/null
    "$QK" niah "$m" --task s1 --lengths 2048 --samples 4 --backend "$BACKEND" > /dev/null 2>&1
    "$QK" answers "$m" --answers www/demo/arithmetic.jsonl --backend "$BACKEND" > /dev/null 2>&1
done
t1=$(now)
echo "merge + niah + answers per candidate, 3 candidates, $BACKEND: $(secs "$t0" "$t1") s"
