#!/usr/bin/env bash
# One training round on the GPU machine (device tool): pre-training, SFT
# variants, evaluation of pre, each sft and their merges. Results and
# checkpoints are written to $OUT (as tarballs: the tool returns 8 files).
#   PRE_MINUTES=6 SFT="a:1e-4:1500:0" SAMPLES=10 bash reference/gpu_round.sh
# SFT is a space-separated list of name:lr:steps:general. With PRE_FROM=DIR
# pre-training is skipped and that checkpoint is used.
set -euo pipefail
cd "$(dirname "$0")"
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT" runs
python -c "import torch, safetensors; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
if [ -n "${PRE_FROM:-}" ]; then
  rm -rf runs/pre && cp -r "$PRE_FROM" runs/pre
else
  python train.py pretrain --out runs/pre --minutes "${PRE_MINUTES:-6}" --seed "${SEED:-1}" \
    --seq "${PRE_SEQ:-2048}" --batch "${PRE_BATCH:-16}" --mix "${PRE_MIX:-}" --niah-tasks "${PRE_TASKS:-}"
  tar -C runs -cf "$OUT/pre.tar" pre
fi
sfts=()
for spec in ${SFT:-}; do
  IFS=: read -r name lr steps general <<<"$spec"
  python train.py sft --pre runs/pre --out "runs/sft-$name" --lr "$lr" --steps "$steps" --general "$general" \
    --mix "${SFT_MIX:-${PRE_MIX:-}}" --niah-tasks "${PRE_TASKS:-}"
  sfts+=("runs/sft-$name")
  tar -C runs -cf "$OUT/sft-$name.tar" "sft-$name"
done
# EVAL_ALSO: more sft folders to evaluate beside the ones trained here.
python train.py eval --pre runs/pre --sft ${EVAL_ALSO:-} "${sfts[@]}" --out runs/results.json --samples "${SAMPLES:-10}" || true
cp runs/results.json runs/results.json.log "$OUT/" 2>/dev/null || true
ls -la "$OUT"
