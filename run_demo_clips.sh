#!/usr/bin/env bash
# From raw clips to a trained model on the raw-clip demo: write real .mp4/.avi clips in the MER2025 release
# layout, build small random encoders and LLMs locally, extract openSMILE, OpenFace-CSV, encoder and video-LLM
# features with extract.py, check them, split the labeled clips and train the MoE on them; then ask a (tiny) video LLM about
# the candidate clips with describe.py and embed its answers. Extra arguments go to train.py.
#
#   bash run_demo_clips.sh            # after the first set-up command of the README (same virtualenv)
#   CLIPS=400 DATA=data/bench/demo-clips-400 EXTRACT_ONLY=1 bash run_demo_clips.sh   # a larger release, features only
#
# Environment: CLIPS (96: clips written, about 3/4 of them labeled), DATA (data/demo_clips: where the release,
# encoders and features go; the splits go to train_lst/<its name>, the run to saved/<its name>), EXTRACT_ONLY=1
# (stop after the feature check: no split, training or VLM step), PYTHON (python).
#
# The encoders have random weights (no download happens anywhere): their features are only as good as a
# random projection of the input. With real checkpoints the same extract.py commands make real features.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}
DATA=${DATA:-data/demo_clips}
NAME=$(basename "$DATA")
FEATS="['eGeMAPSv02-UTT','openface-au-FRM','tiny-hubert-UTT','tiny-bert-UTT','tiny-vit-UTT','tiny-internvl-UTT']"

"$PYTHON" preprocess/make_demo_clips.py --out "$DATA" --clips "${CLIPS:-96}"
"$PYTHON" preprocess/make_demo_encoders.py --out "$DATA/models" --kinds hubert bert vit llava internvl --corpus "$DATA/subtitle_chieng.csv"
"$PYTHON" extract.py --data "$DATA" --modality opensmile --overwrite                # eGeMAPSv02 functionals, 88-d
"$PYTHON" extract.py --data "$DATA" --modality openface --level frm --overwrite     # AUs per frame from the CSVs
"$PYTHON" extract.py --data "$DATA" --modality audio --model "$DATA/models/tiny-hubert" --overwrite
"$PYTHON" extract.py --data "$DATA" --modality text --model "$DATA/models/tiny-bert" --overwrite
"$PYTHON" extract.py --data "$DATA" --modality visual --model "$DATA/models/tiny-vit" --overwrite   # face crops
"$PYTHON" extract.py --data "$DATA" --modality video_llm --model "$DATA/models/tiny-internvl" --num_frames 4 --overwrite
"$PYTHON" preprocess/check_feat_dim.py --root "$DATA/features"
if [ "${EXTRACT_ONLY:-0}" = "1" ]; then exit 0; fi
"$PYTHON" preprocess/mer2025_base.py --label_csv "$DATA/track1_train_disdim.csv" --save_root "train_lst/$NAME" \
    --stratify --overwrite
# one labeled clip has no audio stream and one no subtitle: --allow_missing masks their missing experts
"$PYTHON" train.py --train_lst "train_lst/$NAME" --dataset seed0 --feat "$FEATS" --manifests "$DATA/features/features.yaml" \
    --allow_missing --run_dir "saved/$NAME" --overwrite "$@"
# The VLM step: a local video LLM answers prompt.txt about each candidate clip (frames + subtitle), and its answers
# go through the text encoder into a feature folder. With a real VLM (--model FOLDER, or --api_base URL --model NAME
# for a vLLM server or a provider) the same commands make the paper's VLM labels and description feature.
"$PYTHON" describe.py --data "$DATA" --names "$DATA/track_all_candidates.csv" --out "$DATA/vlm_answers" \
    --model "$DATA/models/tiny-llava" --frames 2 --max_tokens 16 --overwrite --no_progress \
    --embed_model "$DATA/models/tiny-bert" --embed_out "$DATA/vlm_features"
echo "parse_vlm_answers.py: the demo's VLM has random weights and writes no JSON, so every answer is reported unusable (expected here):"
"$PYTHON" preprocess/parse_vlm_answers.py --answers "$DATA/vlm_answers" --out "$DATA/vlm_answers.csv" \
    || echo "(exit $?: no usable answer, as expected from a random model)"
