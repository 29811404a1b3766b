# Sourced by the GPU machine's bench scripts (scripts/gpu-bench*.sh): a step
# runner that never stops the run, and the Vulkan loader the device README
# says to carry (`.gl`).

STATUS=() FAILED=0
step() {  # step NAME CMD...: run with a time limit, record its exit code and time, never stop
    local name=$1 t0 rc
    shift
    echo; echo "=== $name: $*"
    t0=$(date +%s%N)
    timeout "${STEP_TIMEOUT:-240}" "$@"
    rc=$?
    [ "$rc" = 0 ] || FAILED=1
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    echo "=== $name: exit $rc after $ms ms"
    STATUS+=("$(printf '%-28s exit %3d  %8d ms' "$name" "$rc" "$ms")")
}

vulkan_setup() {  # unpack the carried loader debs over / and point at the NVIDIA ICD
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
}

fla_setup() {  # install the carried fla wheels (`.whl`) where python3 finds them
    if compgen -G ".whl/*.whl" >/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
            export PYTHONPATH=/tmp/site
    fi
}

summary() {  # the steps' exit codes and times; returns 1 if any failed
    echo; echo "=== summary"
    printf '%s\n' "${STATUS[@]}"
    return "$FAILED"
}
