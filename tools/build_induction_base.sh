#!/usr/bin/env bash
# Builds ftlab/assets/models/tiny-base-induction: the tiny base's architecture and world text, pre-trained with a
# curriculum of documents that repeat patterns (copy rows, then synthetic `x -> y` lists whose pairs come back later
# in the same document), so that induction heads form (Olsson et al. 2022). Lesson 5 uses it for in-context learning
# of new facts; tiny-base never learned to copy from its prompt. Why each stage: docs/icl_induction_experiment.md.
#
#     bash tools/build_induction_base.sh [WORKDIR]      # ~30 min on 2 CPU cores; writes WORKDIR/w7/tiny-base
#     INSTALL=1 bash tools/build_induction_base.sh      # ... and copies it to ftlab/assets/models/tiny-base-induction
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/ftlab-induction}
PY=${PYTHON:-python}
export ICL_THREADS=${ICL_THREADS:-2} GOMP_SPINCOUNT=10000 FTLAB_PROFILE=cpu HF_HUB_OFFLINE=1
T="tools/icl_curriculum.py"
stage() { $PY $T stage --data "$W/data" "$@"; }
LONG="--alpha 2044 --minlen 2 --maxlen 32 --context 256 --warmup 1 --pair-every 50"
mkdir -p "$W"
$PY $T prep --out "$W/data"
# 1. copy rows over the 256 most frequent tokens at short range, half of every batch world text, until acc 0.5
stage --out "$W/w1" --steps 1400 --alpha 256 --copy-share 0.5 --minlen 2 --maxlen 8 --context 32 --warmup 30 \
      --stop-acc 0.5 --pair-every 100000
# 2. grow the alphabet to 1024, then to all 2044 tokens (replaying the smaller one)
stage --init "$W/w1" --out "$W/w2a" --steps 300 --alpha 1024 --new-from 256 --copy-share 0.5 --keep-alpha 256 \
      --keep-share 0.25 --minlen 2 --maxlen 8 --context 32 --warmup 1 --pair-every 100000
stage --init "$W/w2a" --out "$W/w2b" --steps 300 --alpha 2044 --new-from 1024 --copy-share 0.5 --keep-alpha 1024 \
      --keep-share 0.25 --minlen 2 --maxlen 8 --context 32 --warmup 1 --pair-every 100000
# 3. grow the range: segments up to 16 tokens at context 64, up to 32 at 128, then 256 with `x -> y` documents
stage --init "$W/w2b" --out "$W/w3a" --steps 300 --alpha 2044 --new-from 1024 --copy-share 0.5 --keep-alpha 1024 \
      --keep-share 0.125 --minlen 2 --maxlen 16 --context 64 --warmup 1 --pair-every 100000
stage --init "$W/w3a" --out "$W/w3b" --steps 300 --alpha 2044 --copy-share 0.5 --keep-alpha 1024 --keep-share 0.125 \
      --minlen 2 --maxlen 32 --context 128 --warmup 1 --pair-every 150
stage --init "$W/w3b" --out "$W/w3c" --steps 250 $LONG --copy-share 0.375 --doc-share 0.375
# 4. synthetic `x -> y` lists over random tokens (copying a y means matching its x), then more world text
stage --init "$W/w3c" --out "$W/w3d" --steps 250 $LONG --copy-share 0.125 --pair-share 0.375 --doc-share 0.25
stage --init "$W/w3d" --out "$W/w4a" --steps 250 $LONG --copy-share 0.125 --pair-share 0.25 --doc-share 0.125
stage --init "$W/w4a" --out "$W/w4b" --steps 250 $LONG --copy-share 0.0625 --pair-share 0.125 --doc-share 0.0625
# 5. no more copy rows: world text, `x -> y` documents over words, synthetic lists up to 40 lines long
stage --init "$W/w4b" --out "$W/w5" --steps 250 $LONG --copy-share 0 --pair-share 0.125 --doc-share 0.375
stage --init "$W/w5" --out "$W/w6" --steps 250 $LONG --copy-share 0 --pair-share 0.125 --doc-share 0.375 --seed 2
stage --init "$W/w6" --out "$W/w7" --steps 250 $LONG --copy-share 0 --pair-share 0.25 --pair-maxlines 40 \
      --doc-share 0.25 --seed 3
if [ "${INSTALL:-0}" = 1 ]; then
    rm -rf ftlab/assets/models/tiny-base-induction
    cp -r "$W/w7/tiny-base" ftlab/assets/models/tiny-base-induction
    # drop the keys that say where the tokenizer was loaded from this time (tiny-base's config has none)
    $PY -c "import json, sys; p = sys.argv[1]; d = json.load(open(p)); [d.pop(k, None) for k in ('is_local', 'local_files_only')]; open(p, 'w').write(json.dumps(d, indent=2, ensure_ascii=False) + '\n')" \
        ftlab/assets/models/tiny-base-induction/tokenizer_config.json
fi
echo "built $W/w7/tiny-base"
