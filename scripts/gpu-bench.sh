#!/usr/bin/env bash
# qklab (wgpu/Vulkan) against its PyTorch peers, in one command on the GPU
# machine. Run from the repo root there:
#   scripts/gpu-bench.sh [QKLAB_BINARY]      (default target/release/qklab)
# The device call must carry `.gl` (the Vulkan loader debs) and the binary.
#
# Steps, each timed, all in the same run:
#   - the demo S1 sweep: pre, sft and their QK-Restore x 512/1024/2048/4096
#     tokens x 5 depths x 10 samples (600 prompts; HyPE 500 above 2048, as
#     the reference evaluates), with `qklab niah --backend gpu`;
#   - the same prompts through the reference's own evaluation
#     (reference/train.py eval: teacher-forced, batched, bf16);
#   - matmul, softmax attention and HypeNet-2B prefill and decode against
#     reference/bench_torch.py (fp32, TF32 off; SDPA for attention), qklab
#     with bounds checks (what browsers run) and without;
#   - last, issue 18's targets as measured (scripts/gpu-bench-targets.py).
# Env: SHAPES (MxNxK list), TOKENS (4096), STEP_TIMEOUT (seconds a step, 240),
# CHUNKS (prefill chunks to try for the sweep, default "0": automatic),
# SKIP_2B=1 to leave out the 2B and matmul steps.
# Output goes to $OUT/bench.log (and JSON files under $OUT) when OUT is set,
# else under /tmp/gpu-bench. Every step runs; their exit codes come last, and
# the script exits 1 if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
QKLAB="${1:-target/release/qklab}"
SHAPES="${SHAPES:-4096x2048x2048,4096x6144x2048,4096x2048x6144,4096x151936x2048}"
TOKENS="${TOKENS:-4096}"
CHUNKS="${CHUNKS:-0}"
DIR="${OUT:-/tmp/gpu-bench}"
mkdir -p "$DIR"
export PYTHONUNBUFFERED=1

. scripts/gpu-common.sh

main() {
    vulkan_setup
    echo "qklab: $QKLAB  shapes: $SHAPES  tokens: $TOKENS  out: $DIR"

    local qk="$DIR/qk-restore"
    rm -rf "$qk"
    step merge "$QKLAB" merge --pre www/demo/pre --sft www/demo/sft --method qk-restore --out "$qk"
    for chunk in $CHUNKS; do
        rm -f "$DIR/sweep-$chunk.json"
        step "qklab-sweep-600 (chunk $chunk)" env QKLAB_PREFILL_CHUNK="$chunk" "$QKLAB" niah www/demo/pre www/demo/sft "$qk" \
            --task s1 --lengths 512,1024,2048,4096 --samples 10 --hype 500 --hype-above 2048 --backend gpu \
            --json "$DIR/sweep-$chunk.json"
    done
    step reference-eval-600 python3 reference/train.py eval --pre www/demo/pre --sft www/demo/sft --out "$DIR/reference-eval.json" \
        --samples 10 --lengths 512 1024 2048 4096 --tasks s1 --methods qk-restore --arith 0
    if [ "${SKIP_2B:-0}" != 1 ]; then
        step qklab-matmul "$QKLAB" bench matmul --shapes "$SHAPES" --json "$DIR/qklab-matmul.json"
        step qklab-prefill "$QKLAB" bench 2b --tokens "$TOKENS" --decode 16 --backend gpu --json "$DIR/qklab-prefill.json"
        step qklab-prefill-unchecked env QKLAB_UNCHECKED_SHADERS=1 "$QKLAB" bench 2b --tokens "$TOKENS" --decode 16 --backend gpu \
            --json "$DIR/qklab-prefill-unchecked.json"
        step torch-matmul python3 reference/bench_torch.py matmul --shapes "$SHAPES" --json "$DIR/torch-matmul.json"
        step torch-attention python3 reference/bench_torch.py attention --tokens "$TOKENS" --json "$DIR/torch-attention.json"
        step torch-prefill python3 reference/bench_torch.py prefill --preset 2b --tokens "$TOKENS" \
            --json "$DIR/torch-prefill.json"
    fi

    echo; echo "=== summary"
    printf '%s\n' "${STATUS[@]}"
    echo; echo "=== issue 18 targets"
    python3 scripts/gpu-bench-targets.py "$DIR"
    return "$FAILED"
}

main 2>&1 | tee "$DIR/bench.log"
exit "${PIPESTATUS[0]}"
