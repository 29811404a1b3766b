#!/usr/bin/env bash
# One training round on the GPU machine (device tool): pre-training, SFT
# variants, evaluation of pre, each sft and their merges. Results and
# checkpoints are written to $OUT (as tarballs: the tool returns 8 files).
#   PRE_MINUTES=6 SFT="a:1e-4:1500:0" SAMPLES=10 bash reference/gpu_round.sh
# SFT is a space-separated list of name:lr:steps:general; the runs go side by
# side (one tiny model leaves the GPU mostly idle), each then evaluated.
# FAMILY=jet trains the Jet-Nemotron demo (GDN=fla: flash-linear-attention's
# Triton kernel, carried as wheels in .whl, checked first by test_jet.py).
# With PRE_FROM=DIR pre-training is skipped and that checkpoint is used;
# SFT_ARGS are passed to every sft (e.g. "--train-only .self_attn.").
set -euo pipefail
cd "$(dirname "$0")"
OUT="${OUT:-/tmp/out}"
FAMILY="${FAMILY:-hypenet}"
GDN="${GDN:-chunked}"
EVAL_ARGS="--samples ${SAMPLES:-10} ${EVAL_EXTRA:-}"
mkdir -p "$OUT" runs
python -c "import torch, safetensors; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
if [ "$GDN" = fla ] && ! python -m pytest -q -s test_jet.py -k fla >runs/pytest.log 2>&1; then
  tail -20 runs/pytest.log
  # The chunked form is too slow to train the demo in a device session.
  echo "fla's kernel failed its check: not training with it" && exit 1
fi
grep -h "fla vs chunked" runs/pytest.log 2>/dev/null || true; tail -1 runs/pytest.log 2>/dev/null || true
if [ -n "${PRE_FROM:-}" ]; then
  rm -rf runs/pre && cp -r "$PRE_FROM" runs/pre
else
  python train.py pretrain --family "$FAMILY" --gdn "$GDN" --out runs/pre --minutes "${PRE_MINUTES:-6}" \
    --seed "${SEED:-1}" --seq "${PRE_SEQ:-2048}" --batch "${PRE_BATCH:-16}" --mix "${PRE_MIX:-}" \
    --niah-tasks "${PRE_TASKS:-}"
  tar -C runs -cf "$OUT/pre.tar" pre
  if [ -z "${SFT:-}" ]; then
    # shellcheck disable=SC2086
    python train.py eval --pre runs/pre --sft --out runs/eval-pre.json $EVAL_ARGS --arith 0 || true
  fi
fi
pids=()
for spec in ${SFT:-}; do
  IFS=: read -r name lr steps general <<<"$spec"
  # shellcheck disable=SC2086
  # steps "m2.5": as many as fit in 2.5 minutes (the log says how many)
  if [[ "$steps" == m* ]]; then steps_arg="--minutes ${steps#m}"; else steps_arg="--steps $steps"; fi
  # shellcheck disable=SC2086
  python train.py sft --gdn "$GDN" --pre runs/pre --out "runs/sft-$name" --lr "$lr" $steps_arg \
    --general "$general" --mix "${SFT_MIX:-${PRE_MIX:-}}" --niah-tasks "${PRE_TASKS:-}" --workers 3 \
    ${SFT_ARGS:-} >"runs/sft-$name.out" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || echo "an sft failed (see runs/sft-*.out)"; done
pids=()
for spec in ${SFT:-}; do
  name="${spec%%:*}"
  tar -C runs -cf "$OUT/sft-$name.tar" "sft-$name"
  # shellcheck disable=SC2086
  python train.py eval --pre runs/pre --sft "runs/sft-$name" --out "runs/eval-$name.json" $EVAL_ARGS \
    >/dev/null 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || echo "an eval failed"; done
cat runs/*.json.log 2>/dev/null || true
tar -C runs -cf "$OUT/results.tar" --exclude='pre' --exclude='sft-*/model.safetensors' . 2>/dev/null || true
ls -la "$OUT"
