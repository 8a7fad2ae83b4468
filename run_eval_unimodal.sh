#!/usr/bin/env bash
# Unimodal sweep: train.py for every feature × seed, results in saved/unimodal/<feature>/seed{N}/.
#
#   bash run_eval_unimodal.sh                       # every config.py feature with a folder, seeds 0-4
#   FEATS="demo-clip-UTT demo-hubert-UTT" SEEDS="0 1" JOBS=2 bash run_eval_unimodal.sh
#   PRESET=published bash run_eval_unimodal.sh      # the published script's settings, to reproduce its tables
#   bash run_eval_unimodal.sh -- --hidden_dim 64    # extra train.py flags after --
#
# Environment: PRESET (default: train.py's settings, lr 6e-3, batch 256 or a quarter of the training set when
# smaller, up to 100 epochs with early stopping, one expert copy; published: lr 1e-4, batch 512, 80 epochs,
# 3 expert copies of an utterance feature and 1 of a frame-level one), EPOCHS, LR, BATCH_SIZE, REPEAT (override
# the preset), FEATS, SEEDS (0 1 2 3 4), DATASET_PREFIX (seed; e.g. fold), JOBS (1), SAVE_ROOT (saved/unimodal),
# KEEP (best: each feature's best seed keeps its best.pth; all; none), FORCE=1 (retrain finished runs; otherwise
# they are skipped, so an interrupted sweep resumes), PYTHON (python). The sweep starts with an estimate of each
# feature's time per run (a few timed training steps) and prints a line per finished run with the time left.
set -euo pipefail
cd "$(dirname "$0")"
args=(--feats "${FEATS:-}" --seeds "${SEEDS:-0 1 2 3 4}" --preset "${PRESET:-default}" ${EPOCHS:+--epochs "$EPOCHS"}
      ${LR:+--lr "$LR"} ${BATCH_SIZE:+--batch_size "$BATCH_SIZE"} --dataset_prefix "${DATASET_PREFIX:-seed}" ${REPEAT:+--repeat "$REPEAT"}
      --jobs "${JOBS:-1}" --save_root "${SAVE_ROOT:-saved/unimodal}" --keep "${KEEP:-best}")
if [ "${FORCE:-0}" = "1" ]; then args+=(--force); fi
exec "${PYTHON:-python}" -m stages.sweep "${args[@]}" "$@"
