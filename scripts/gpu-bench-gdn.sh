#!/usr/bin/env bash
# Issue 26's GPU figures, in one command on the GPU machine (device tool),
# each peer in the same run. From the repo root there, carrying `.gl` (the
# Vulkan loader debs), `.whl` (flash-linear-attention, fla-core, einops)
# and the qklab binary:
#   scripts/gpu-bench-gdn.sh [QKLAB_BINARY]      (default target/release/qklab)
# Steps:
#   - `qklab bench qwen3.5-0.8b --backend gpu`: prefill of TOKENS (4096) with
#     the gated-delta kernels' own row, and decode ms/token after it;
#   - the same without wgpu's bounds checks (QKLAB_UNCHECKED_SHADERS=1);
#   - fla's Triton `chunk_gated_delta_rule` on the same shapes, fp32 and
#     bf16 (reference/bench_gdn.py).
# Output: $OUT/bench.log and a JSON file per step (else /tmp/gpu-bench-gdn).
set -uo pipefail
cd "$(dirname "$0")/.."
QKLAB="${1:-target/release/qklab}"
TOKENS="${TOKENS:-4096}"
DIR="${OUT:-/tmp/gpu-bench-gdn}"
mkdir -p "$DIR"
export PYTHONUNBUFFERED=1

. scripts/gpu-common.sh

main() {
    vulkan_setup
    fla_setup
    step qklab-qwen35-08b "$QKLAB" bench qwen3.5-0.8b --tokens "$TOKENS" --decode 32 --backend gpu \
        --json "$DIR/qklab-qwen35.json"
    step qklab-qwen35-08b-unchecked env QKLAB_UNCHECKED_SHADERS=1 "$QKLAB" bench qwen3.5-0.8b --tokens "$TOKENS" \
        --decode 32 --backend gpu --json "$DIR/qklab-qwen35-unchecked.json"
    step fla-chunk python3 reference/bench_gdn.py --tokens "$TOKENS" --json "$DIR/fla.json"
    summary
}

main 2>&1 | tee "$DIR/bench.log"
exit "${PIPESTATUS[0]}"
