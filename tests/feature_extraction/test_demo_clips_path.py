"""The raw-clip demo's path on a few clips: real media → extract.py (openSMILE, OpenFace CSVs, a local
encoder on detected faces, a local video LLM on the face crops) → check_feat_dim.py reads the folders as features."""
import os

import numpy as np
import pytest

import extract
from preprocess import check_feat_dim, make_demo_clips
from tests.bad_inputs.helpers import run_main


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("demo") / "clips")
    make_demo_clips.main(["--out", out, "--clips", "8", "--seed", "1"])
    return out


@pytest.mark.parametrize("argv, folder, shape", [
    (["--modality", "opensmile", "--level", "utt", "frm"], "eGeMAPSv02-UTT", (88,)),
    (["--modality", "openface", "--level", "frm"], "openface-au-FRM", (None, 35)),
    (["--modality", "visual", "--faces", "detect", "--fps", "2"], "vit-UTT", (16,)),
    (["--modality", "video_llm", "--num_frames", "4"], "internvl-UTT", (16,)),
])
def test_demo_clips_extract_into_feature_folders(demo, checkpoints, capsys, argv, folder, shape):
    model = {"visual": "vit", "video_llm": "internvl"}.get(argv[1])
    if model:
        argv = argv + ["--model", checkpoints[model]]
    code, out, err = run_main(extract.main, ["--data", demo, "--workers", "1", "--no_progress", *argv], capsys)
    assert code == 0, err
    files = sorted(os.listdir(os.path.join(demo, "features", folder)))
    silent = 1 if "opensmile" in argv else 0  # one demo clip has no audio stream
    assert len(files) == 8 - silent and f"{len(files)} clips written" in out
    array = np.load(os.path.join(demo, "features", folder, files[0]))
    assert array.dtype == np.float32 and np.isfinite(array).all()
    assert all(s is None or s == n for s, n in zip(shape, array.shape)) and array.ndim == len(shape)
    code, out, err = run_main(check_feat_dim.main, ["--root", os.path.join(demo, "features"), "--all"], capsys)
    assert code == 0 and f"{folder}, dim={shape[-1]}, files={len(files)}" in out
