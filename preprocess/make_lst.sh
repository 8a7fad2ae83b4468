#!/usr/bin/env bash
# Write the split dicts for seeds 0-4 (train_lst/seed0.npy .. seed4.npy) from a label CSV.
#
#   preprocess/make_lst.sh                                     # LABEL_CSV=data/demo/labels.csv
#   LABEL_CSV=track1_train_disdim.csv preprocess/make_lst.sh --stratify
#
# Environment: LABEL_CSV (default: data/demo/labels.csv in the repository), SEEDS (default "0 1 2 3 4"),
# PYTHON (default: python, else python3). Extra arguments go to preprocess/mer2025_base.py; split files
# made from another label CSV are kept unless --overwrite is among them:
#
#   LABEL_CSV=new_labels.csv preprocess/make_lst.sh --overwrite
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
LABEL_CSV="${LABEL_CSV:-$repo/data/demo/labels.csv}"
SEEDS="${SEEDS:-0 1 2 3 4}"
if [ -z "${PYTHON:-}" ]; then
    if command -v python >/dev/null 2>&1; then PYTHON=python; else PYTHON=python3; fi
fi
for seed in $SEEDS; do
    "$PYTHON" "$here/mer2025_base.py" --label_csv "$LABEL_CSV" --seed "$seed" "$@"
done
