#!/usr/bin/env bash
# `make model`: rebuild the default text classifier from ../shared/datasets, offline.
#
#   1. build the licence-filtered corpus with seeded splits (.cache/default_corpus, not committed);
#      MIX (default v1, the shipped model's; see referee.eval.corpus.MIXES) picks the sources
#   2. train a head on frozen all-MiniLM-L6-v2 embeddings (cached in .cache/embeddings)
#   3. calibrate + pick thresholds on dev, score the held-out test split once
#   4. export ONNX fp32 + int8 into models/default and point `champion` at it
#
# Only models/default/{card.json,head.safetensors,train_log.jsonl} and models/champion.json are
# committed; the ONNX graphs are rebuilt with `referee model build` (seconds, no data needed).
set -euo pipefail
cd "$(dirname "$0")/.."

REFEREE=${REFEREE:-.venv/bin/referee}
SHARED=${SHARED:-${REFEREE_SHARED:-../shared}}
CORPUS=${CORPUS:-.cache/default_corpus}
OUT=${OUT:-models/default}
SEED=${SEED:-13}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

if [ ! -d "$SHARED/datasets" ]; then
  echo "no $SHARED/datasets: set REFEREE_SHARED to the folder holding datasets/ (see docs/classifier.md)" >&2
  exit 2
fi

"$REFEREE" model corpus --shared "$SHARED/datasets" --out "$CORPUS" --policy policies/default.yaml --seed "$SEED" \
  --mix "${MIX:-v1}"
"$REFEREE" train \
  --data "$CORPUS/train.jsonl" --dev "$CORPUS/dev.jsonl" --test "$CORPUS/test.jsonl" \
  --policy policies/default.yaml --out "$OUT" --name default --mode head --seed "$SEED" \
  --hidden "${HIDDEN:-256}" --lr "${LR:-2e-3}" --epochs "${EPOCHS:-150}" --target-precision 0.9 --provenance "$CORPUS/provenance.json"
"$REFEREE" model promote "$(basename "$OUT")" --models "$(dirname "$OUT")"
"$REFEREE" model card "$OUT"
# Out-of-domain check of the recipe (minutes, one core): OMP_NUM_THREADS=1 "$REFEREE" eval loso --universe v2
