#!/usr/bin/env bash
# Regenerates everything that depends on the demo pair (www/demo/pre and
# www/demo/sft), after the pair changes. Run from the repo root:
#   scripts/regen-demo.sh [PYTHON]     (a Python with torch, safetensors, numpy; default python3)
# It writes:
#   tests/fixtures/demo/{pre,sft,qk-restore}.safetensors   golden logits etc. (reference/make_fixtures.py)
#   tests/fixtures/demo/routing-reference.json             distances and needle mass (reference/routing.py)
#   docs/demo-results/qklab-niah/sweep-s1.json             every S1 sample, 512..4096 bytes, seed 12345,
#                                                          HyPE 500 above 2048 (the browser test re-runs some)
#   docs/demo-results/qklab-niah/niah-s1-2048.json         S1 at 2048, 20 samples, seed 12345
# The qklab steps run on the CPU engine (target/release/qklab; built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-python3}"
QK=target/release/qklab
[ -x "$QK" ] || cargo build --release --bin qklab
"$PY" reference/make_fixtures.py
"$PY" reference/routing.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$QK" merge --pre www/demo/pre --sft www/demo/sft --method qk-restore --out "$tmp/qk-restore"
# Results name the merge /tmp/qk-restore, as the browser test expects.
rm -rf /tmp/qk-restore && cp -r "$tmp/qk-restore" /tmp/qk-restore
out=docs/demo-results/qklab-niah
rm -f "$out/sweep-s1.json" "$out/niah-s1-2048.json"
"$QK" niah www/demo/pre www/demo/sft /tmp/qk-restore --task s1 --lengths 512,1024,2048,4096 --samples 10 \
    --hype 500 --hype-above 2048 --backend cpu --json "$out/sweep-s1.json"
"$QK" niah www/demo/pre www/demo/sft /tmp/qk-restore --task s1 --lengths 2048 --samples 20 \
    --backend cpu --json "$out/niah-s1-2048.json"
