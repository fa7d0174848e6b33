#!/usr/bin/env bash
# `make eval`: import every shared dataset, split it (seed 13), and evaluate the
# lexicon detector (and the classifier, when its model is installed) on each
# test split. Writes reports/eval/<dataset>.<detector>.{json,html}, the
# converted data under reports/eval/data/, and reports/eval/summary.md.
#
# Environment: SHARED (default ../shared), REFEREE (default .venv/bin/referee),
# EVAL_SPLIT (default test; "all" for every row), EVAL_BOOTSTRAP (default 500),
# EVAL_DETECTORS (default "lexicon classifier"), EVAL_FORMATS (default: all).
set -euo pipefail

SHARED="${SHARED:-../shared}"
REFEREE="${REFEREE:-.venv/bin/referee}"
PYTHON="${PYTHON:-$(dirname "$REFEREE")/python}"
SPLIT="${EVAL_SPLIT:-test}"
BOOT="${EVAL_BOOTSTRAP:-500}"
DETECTORS="${EVAL_DETECTORS:-lexicon classifier}"
OUT=reports/eval
DATA="$OUT/data"
mkdir -p "$DATA"

if [ ! -d "$SHARED/datasets" ]; then
  echo "eval_all: no datasets at $SHARED/datasets (set SHARED=...)" >&2
  exit 2
fi

# format<TAB>folder, from the converters' own table so this list cannot drift.
FORMATS="${EVAL_FORMATS:-$("$PYTHON" -c '
from referee.eval.datasets import FORMATS
print(" ".join(f"{n}:{f.shared_path}" for n, f in FORMATS.items() if f.shared_path))')}"

available=()
for det in $DETECTORS; do
  if "$PYTHON" - "$det" <<'PY' 2>/dev/null; then
import sys
from referee.eval.runner import build_detector
from referee.policy import load_policy
build_detector(sys.argv[1], load_policy("policies/default.yaml"))
PY
    available+=("$det")
  else
    echo "eval_all: detector '$det' is not available (model not installed?); skipping it" >&2
  fi
done

split_args=()
[ "$SPLIT" != "all" ] && split_args=(--split "$SPLIT")

# The default classifier trained on some of these sets, split its own way. Rebuild its
# corpus (deterministic, seconds) and drop from every evaluated split whatever it
# trained or calibrated on, for every detector, so all detectors see the same rows.
exclude_args=()
if [[ " ${available[*]} " == *" classifier "* ]]; then
  "$REFEREE" model corpus --shared "$SHARED/datasets" --out "$OUT/corpus" > /dev/null
  exclude_args=(--exclude "$OUT/corpus/train.jsonl" --exclude "$OUT/corpus/dev.jsonl")
fi

results=()
for entry in $FORMATS; do
  fmt="${entry%%:*}"
  folder="${entry#*:}"
  [ "$folder" = "$entry" ] && folder="$fmt"
  src="$SHARED/datasets/$folder"
  if [ ! -e "$src" ]; then
    echo "eval_all: $src missing; skipping $fmt" >&2
    continue
  fi
  data="$DATA/$fmt.jsonl"
  echo "== $fmt"
  "$REFEREE" data import "$src" --format "$fmt" --out "$data" > /dev/null
  "$REFEREE" data split "$data" --seed 13 --ratios 0.8,0.1,0.1
  for det in "${available[@]}"; do
    "$REFEREE" eval run --data "$data" --detector "$det" "${split_args[@]}" "${exclude_args[@]}" --bootstrap "$BOOT" \
      --out "$OUT/$fmt.$det.json" --html "$OUT/$fmt.$det.html" > "$OUT/$fmt.$det.txt"
    results+=("$OUT/$fmt.$det.json")
  done
done

if [ "${#results[@]}" -gt 0 ]; then
  COLUMNS=200 "$REFEREE" eval summary "${results[@]}" --markdown "$OUT/summary.md"
  echo "reports in $OUT/ (summary: $OUT/summary.md)"
fi
