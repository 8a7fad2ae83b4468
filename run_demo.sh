#!/usr/bin/env bash
# The whole demo pipeline on the embedded synthetic dataset: make the data, check feature dims,
# write the seed 0-4 splits, train the default MoE on seed0 and print its validation result.
# Extra arguments go to train.py (e.g. bash run_demo.sh --model auto_attention).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}
"$PYTHON" preprocess/make_demo_data.py --out data/demo
"$PYTHON" preprocess/check_feat_dim.py --root data/demo/features
PYTHON="$PYTHON" bash preprocess/make_lst.sh
"$PYTHON" train.py --dataset seed0 --save_model "$@"
