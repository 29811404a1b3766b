#!/usr/bin/env bash
# Issue 27's GPU figures, in one command on the GPU machine (device tool),
# each peer in the same run. From the repo root there, carrying `.gl` (the
# Vulkan loader debs), `.whl` (flash-linear-attention, fla-core, einops)
# and the qklab binary:
#   scripts/gpu-bench-jet.sh [QKLAB_BINARY]      (default target/release/qklab)
# Steps:
#   - `qklab bench jet-nemotron-2b --backend gpu`: prefill of TOKENS (4096),
#     each kernel's share, and decode ms/token after it;
#   - `qklab bench 2b --backend gpu`: our HypeNet-2B on the same prompt;
#   - fla's Triton `chunk_gated_delta_rule` at the JetBlock's shapes (12
#     heads, dk 96, dv 256), fp32 and bf16 (reference/bench_gdn.py).
# Output: $OUT/bench.log and a JSON file per step (else /tmp/gpu-bench-jet).
set -uo pipefail
cd "$(dirname "$0")/.."
QKLAB="${1:-target/release/qklab}"
TOKENS="${TOKENS:-4096}"
DIR="${OUT:-/tmp/gpu-bench-jet}"
mkdir -p "$DIR"
export PYTHONUNBUFFERED=1

. scripts/gpu-common.sh

main() {
    vulkan_setup
    fla_setup
    step qklab-jet-2b "$QKLAB" bench jet-nemotron-2b --tokens "$TOKENS" --decode 32 --backend gpu \
        --json "$DIR/qklab-jet.json"
    step qklab-hypenet-2b "$QKLAB" bench 2b --tokens "$TOKENS" --decode 32 --backend gpu \
        --json "$DIR/qklab-hypenet.json"
    step fla-chunk-jet python3 reference/bench_gdn.py --tokens "$TOKENS" --heads 12 --dk 96 --dv 256 \
        --json "$DIR/fla-jet.json"
    summary
}

main 2>&1 | tee "$DIR/bench.log"
exit "${PIPESTATUS[0]}"
