"""Project configuration: class lists, feature registry and default paths.

Edit the three feature dictionaries to add your own features. Each entry is

    "<feature-name>": [dim, "<feature folder>"]

where the folder holds one ``<sample>.npy`` per clip (shape ``(dim,)`` or ``(1, dim)``). A name ending in
``-FRM`` is a frame-level feature: ``(T, dim)`` per clip, T varying, modelled by a temporal expert (see
docs/06-frames-and-missing-modalities.md). An optional third field says the level explicitly or selects columns:

    "openface-AU-FRM": [35, "<folder>"]                                   # frame level from the suffix
    "openface-AU-FRM": [17, "<folder>", {"level": "frm", "columns": "-35:-18"}]  # 17 of the last 35 columns
    "my-frames": [512, "<folder>", "frm"]                                 # frame level without the suffix
    "openface-AU-mean": [35, "<folder>", {"columns": "-35:", "pool": "mean"}]  # frames averaged into a vector

``dim`` is the number of columns after the selection.

A data set can instead carry its features as data: ``DIR/features.yaml`` (written by extract.py and by
``python preprocess/check_feat_dim.py --root DIR --manifest --modality NAME=A|V|T ...``) lists each folder's
name, dim, modality and level. Include it with one line below (``--emit-config >> config.py`` appends it), or
pass ``--manifests DIR/features.yaml`` to train.py. A name registered twice (here and in a manifest, or in two
manifests) is an error: registering a second data set never re-points the first one's features.

This file is read once by each script (dataloader/registry.py) into a registry that is passed down; set the
environment variable MER_CONFIG to read another file of this form instead (one per data set, say).
Relative paths are resolved against the directory of this file, not the working directory.
"""
import os

PROJECT_ROOT = os.path.dirname(os.path.abspath(__file__))

# Class lists, in the order the model's outputs use. "MER" is the MER2023-2026 six-class set.
EMO_RULE = {
    "MER": ["neutral", "angry", "happy", "sad", "worried", "surprise"],
}

# Where preprocess/mer2025_base.py writes split dicts and where `train.py --dataset NAME` reads NAME.npy.
PATH_TO_TRAIN_LST = "train_lst"
# Packed feature arrays (one per feature and sample list) so a second run skips the .npy reads.
PATH_TO_CACHE = "cache"
# Default parent folder of run directories.
PATH_TO_SAVED = "saved"

DEMO_FEATURES = os.path.join("data", "demo", "features")

FEAT_VIDEO_DICT = {
    # embedded demo data (python preprocess/make_demo_data.py)
    "demo-face-UTT": [128, os.path.join(DEMO_FEATURES, "demo-face-UTT")],
    "demo-clip-UTT": [512, os.path.join(DEMO_FEATURES, "demo-clip-UTT")],
    "demo-internvl-UTT": [1024, os.path.join(DEMO_FEATURES, "demo-internvl-UTT")],
    "demo-au-FRM": [17, os.path.join(DEMO_FEATURES, "demo-au-FRM")],  # frame level: (T, 17) AU intensities
    # the VLM's per-class scores (preprocess/parse_vlm_answers.py --as_feature ... --fill uniform)
    "vlm-scores-UTT": [6, os.path.join(DEMO_FEATURES, "vlm-scores-UTT")],
}

FEAT_AUDIO_DICT = {
    "demo-hubert-UTT": [768, os.path.join(DEMO_FEATURES, "demo-hubert-UTT")],
    "demo-wav2vec2-UTT": [256, os.path.join(DEMO_FEATURES, "demo-wav2vec2-UTT")],
}

FEAT_TEXT_DICT = {
    "demo-roberta-UTT": [768, os.path.join(DEMO_FEATURES, "demo-roberta-UTT")],
    "demo-macbert-UTT": [64, os.path.join(DEMO_FEATURES, "demo-macbert-UTT")],
}

# The raw-clip demo (run_demo_clips.sh passes --manifests data/demo_clips/features/features.yaml) and the
# benchmarks' synthetic sets (benchmarks/) register their features themselves, so names that extract.py gives
# real data by default (eGeMAPSv02-UTT, openface-au-FRM, <model folder>-UTT) stay free for yours.
# Feature manifests (features.yaml) whose features are registered too, e.g. "data/mine/features/features.yaml".
FEATURE_MANIFESTS = []

# Features `train.py` uses when --feat is not given: the demo's strongest feature per modality plus the VLM.
DEFAULT_FEATURES = ["demo-clip-UTT", "demo-hubert-UTT", "demo-roberta-UTT", "demo-internvl-UTT"]
