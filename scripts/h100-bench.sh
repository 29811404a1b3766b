#!/usr/bin/env bash
# qklab (wgpu/Vulkan) against its PyTorch peers (fp32, TF32 off), in one
# command on the GPU machine. Run from the repo root there:
#   scripts/h100-bench.sh [QKLAB_BINARY]      (default target/release/qklab)
# The device call must carry `.gl` (the Vulkan loader debs) and the binary.
# Env: SHAPES (MxNxK list), TOKENS (4096), STEP_TIMEOUT (seconds a step, 240).
# Output goes to $OUT/bench.log (and JSON files under $OUT) when OUT is set,
# else under /tmp/h100-bench. Every step runs; their exit codes come last, and
# the script exits 1 if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
QKLAB="${1:-target/release/qklab}"
SHAPES="${SHAPES:-4096x2048x2048,4096x6144x2048,4096x2048x6144,4096x151936x2048}"
TOKENS="${TOKENS:-4096}"
DIR="${OUT:-/tmp/h100-bench}"
mkdir -p "$DIR"
export PYTHONUNBUFFERED=1

STATUS=() FAILED=0
step() {  # step NAME CMD...: run with a time limit, record its exit code, never stop
    local name=$1 t0=$SECONDS rc
    shift
    echo; echo "=== $name: $*"
    timeout "${STEP_TIMEOUT:-240}" "$@"
    rc=$?
    [ "$rc" = 0 ] || FAILED=1
    echo "=== $name: exit $rc after $((SECONDS - t0)) s"
    STATUS+=("$(printf '%-16s exit %3d  %4d s' "$name" "$rc" $((SECONDS - t0)))")
}

main() {
    # Vulkan loader (device README): unpack the carried debs over /
    if compgen -G ".gl/*.deb" >/dev/null; then
        for f in .gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
    else
        echo "warning: no .gl/*.deb (carry .gl): the Vulkan loader may be missing"
    fi
    ldconfig -p | grep -m1 libvulkan.so.1 || echo "warning: libvulkan.so.1 not found"
    local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    if [ -f "$icd" ] && ! ls /usr/share/vulkan/icd.d/nvidia*.json /etc/vulkan/icd.d/nvidia*.json >/dev/null 2>&1; then
        export VK_DRIVER_FILES="$icd"
        local egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
        [ -f "$egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$egl"
        echo "VK_DRIVER_FILES=$VK_DRIVER_FILES"
    fi
    nvidia-smi -L
    echo "qklab: $QKLAB  shapes: $SHAPES  tokens: $TOKENS  out: $DIR"

    step qklab-matmul "$QKLAB" bench matmul --shapes "$SHAPES" --json "$DIR/qklab-matmul.json"
    step qklab-prefill "$QKLAB" bench 2b --tokens "$TOKENS" --backend gpu --json "$DIR/qklab-prefill.json"
    step torch-matmul python3 reference/bench_torch.py matmul --shapes "$SHAPES" --json "$DIR/torch-matmul.json"
    step torch-prefill python3 reference/bench_torch.py prefill --preset 2b --tokens "$TOKENS" \
        --json "$DIR/torch-prefill.json"

    echo; echo "=== summary"
    printf '%s\n' "${STATUS[@]}"
    return "$FAILED"
}

main 2>&1 | tee "$DIR/bench.log"
exit "${PIPESTATUS[0]}"
