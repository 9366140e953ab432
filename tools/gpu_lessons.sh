#!/usr/bin/env bash
# Run on a CUDA machine (the `device` tool's, or any): the gpu profile measured with the bundled tiny
# models, since no hub is reachable there.
#   1. tools/gpu_check.py: load, evaluate, SFT in the native and the fp16 path;
#   2. tools/gpu_shapes.py: seconds per step of every method at SmolLM2-135M/360M sizes (random weights);
#   3. every lesson, executed by nbmake as CI executes it, twice at once: the GPU's native bf16, and the
#      T4's path (tools/fake_t4: no native bf16 -> fp32 weights + fp16 autocast + loss scaling).
# Results go to $OUT (default build/gpu). Packages missing on the machine travel as wheels in .whl/
# (see the device README); without .whl/ the current Python's packages are used.
set -u
OUT=${OUT:-build/gpu}
mkdir -p "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-6} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
export FTLAB_PROFILE=${FTLAB_PROFILE:-gpu} FTLAB_BASE_MODEL=tiny-base FTLAB_CHAT_MODEL=tiny-chat
DEADLINE=$(( $(date +%s) + ${TOTAL_S:-540} ))  # no lesson starts later than this; none runs past it
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, transformers, trl, peft, datasets, ipywidgets, bitsandbytes as b; print(torch.__version__, transformers.__version__, trl.__version__, peft.__version__, datasets.__version__, ipywidgets.__version__, b.__version__)"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
[ "${CHECK_S:-90}" = 0 ] || timeout "${CHECK_S:-90}" python3 tools/gpu_check.py > "$OUT/gpu_check.txt" 2>&1; echo "gpu_check rc=$?"
[ "${SHAPES_S:-150}" = 0 ] || timeout "${SHAPES_S:-150}" python3 tools/gpu_shapes.py --steps 20 > "$OUT/shapes.txt" 2>&1; echo "gpu_shapes rc=$?"

one_lesson() {  # $1: label, $2: copy of the repository, $3: notebook; logs its time, rc and outputs
  local label=$1 copy=$2 nb=$3 start rc left
  left=$(( DEADLINE - $(date +%s) ))
  if [ "$left" -lt 20 ]; then echo "$label $nb not run: out of time" | tee -a "$OUT/times.txt"; return; fi
  start=$EPOCHREALTIME
  (cd "$copy" && timeout "$left" python3 -m pytest -q -p no:cacheprovider --nbmake --overwrite \
     "notebooks/$nb.ipynb") > "/tmp/log-$label-$nb.txt" 2>&1
  rc=$?
  awk -v l="$label" -v n="$nb" -v r="$rc" -v a="$start" -v b="$EPOCHREALTIME" \
    'BEGIN { printf "%s %s rc=%s %.1f s\n", l, n, r, b - a }' | tee -a "$OUT/times.txt"
  { cat "/tmp/log-$label-$nb.txt"; python3 - "$copy/notebooks/$nb.ipynb" <<'PY'
import json, sys
print(f"===== {sys.argv[1]}")
for i, cell in enumerate(json.load(open(sys.argv[1]))["cells"]):
    for o in cell.get("outputs", []):
        text = o.get("text") or o.get("data", {}).get("text/plain") or o.get("evalue", "")
        text = "".join(text) if isinstance(text, list) else text
        if o.get("output_type") == "error":
            text = "ERROR " + o.get("ename", "") + ": " + text
        if text.strip():
            print(f"[{i}] {text.strip()[:1200]}")
PY
  } >> "$OUT/outputs-$label.txt"
}

lessons() {  # $1: label; the lessons one after another (PARALLEL=1: all at once) in a copy of the repository
  local label=$1 copy=/tmp/run-$1 nb
  rm -rf "$copy"; mkdir -p "$copy"; cp -r ftlab notebooks pyproject.toml "$copy"/
  for nb in ${LESSONS:-03_full_vs_lora 04_rlhf 02_sft_formatting 05_icl_vs_finetuning 01_base_vs_tuned}; do
    # kernels started at the same instant can pick the same ports: start them a few seconds apart
    if [ -n "${PARALLEL:-}" ]; then one_lesson "$label" "$copy" "$nb" & sleep 4; else one_lesson "$label" "$copy" "$nb"; fi
  done
  wait
}
lessons bf16 &
sleep 2; FTLAB_FAKE_T4=1 PYTHONPATH=$PWD/tools/fake_t4:$PYTHONPATH lessons fp16 &
wait
cat "$OUT/times.txt"
