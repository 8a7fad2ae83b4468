#!/usr/bin/env bash
# Unimodal sweep: train.py for every feature × seed, results in saved/unimodal/<feature>/seed{N}/.
#
#   bash run_eval_unimodal.sh                       # every config.py feature with a folder, seeds 0-4
#   FEATS="demo-clip-UTT demo-hubert-UTT" SEEDS="0 1" JOBS=2 bash run_eval_unimodal.sh
#   bash run_eval_unimodal.sh -- --hidden_dim 64    # extra train.py flags after --
#
# Environment: FEATS, SEEDS (0 1 2 3 4), EPOCHS (80), LR (1e-4), BATCH_SIZE (512), DATASET_PREFIX (seed;
# e.g. fold), REPEAT (expert copies of the feature; default 3 for utterance features, comparable with a trimodal
# model, and 1 for frame-level (-FRM) features, whose temporal expert costs ~20x per epoch), JOBS (1),
# SAVE_ROOT (saved/unimodal), KEEP (best: each feature's best seed keeps its best.pth; all; none), FORCE=1 (retrain finished runs; otherwise they are skipped, so an interrupted
# sweep resumes), PYTHON (python). The sweep starts with an estimate of each feature's time per run
# (a few timed training steps; frame-level features dominate a sweep's time).
set -euo pipefail
cd "$(dirname "$0")"
args=(--feats "${FEATS:-}" --seeds "${SEEDS:-0 1 2 3 4}" --epochs "${EPOCHS:-80}" --lr "${LR:-1e-4}"
      --batch_size "${BATCH_SIZE:-512}" --dataset_prefix "${DATASET_PREFIX:-seed}" ${REPEAT:+--repeat "$REPEAT"}
      --jobs "${JOBS:-1}" --save_root "${SAVE_ROOT:-saved/unimodal}" --keep "${KEEP:-best}")
if [ "${FORCE:-0}" = "1" ]; then args+=(--force); fi
exec "${PYTHON:-python}" -m stages.sweep "${args[@]}" "$@"
