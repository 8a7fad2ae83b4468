"""train.py / predict.py with frame-level experts and clips that miss feature files (--allow_missing)."""
import os

import numpy as np

from dataloader.registry import Registry
import pandas as pd
import pytest
import yaml

import predict as predict_script
import train
from toolkit.errors import UserError
from inference.predictor import load_run, predict


def run_train(project, *extra):
    return train.run(train.parse_args(project["argv"] + ["--no_plots"] + list(extra)))


def delete(project, feat, clips):
    for clip in clips:
        os.remove(os.path.join(project["folders"][feat][2], clip + ".npy"))


def test_frame_expert_trains_with_utterance_experts(frame_project, tmp_path):
    summary = run_train(frame_project, "--epochs", "4", "--max_frames", "16", "--save_model",
                        "--feat", "tiny-video-UTT,tiny-au-FRM")
    assert [(f["name"], f["level"]) for f in summary["features"]] == [("tiny-video-UTT", "utt"), ("tiny-au-FRM", "frm")]
    run_dir = str(tmp_path / "run")
    args = yaml.safe_load(open(os.path.join(run_dir, "args.yaml")))
    assert args["max_frames"] == 16 and args["feat_levels"]["tiny-au-FRM"] == "frm"
    model, meta = load_run(run_dir, "cpu")
    assert meta["feat_levels"] == {"tiny-video-UTT": "utt", "tiny-au-FRM": "frm"} and meta["max_frames"] == 16
    results = np.load(os.path.join(run_dir, "best_valid_results.npy"), allow_pickle=True).item()
    cache = frame_project["argv"][frame_project["argv"].index("--cache_dir") + 1]
    for batch_size in (1, 7):
        out = predict(model, meta, results["eval_names"], "cpu", Registry.from_config(), batch_size=batch_size, cache_dir=cache)
        np.testing.assert_allclose(out["probs"], results["eval_emoprobs"], rtol=1e-5, atol=1e-6)


def test_missing_files_are_an_error_without_the_flag(tiny_project):
    delete(tiny_project, "tiny-audio-UTT", ["clip_0003"])
    with pytest.raises(UserError, match=r"feature 'tiny-audio-UTT': 1 of 120 samples have no .npy.*--allow_missing"):
        run_train(tiny_project, "--epochs", "1")


def test_allow_missing_trains_reports_and_predicts(frame_project, tmp_path):
    p = frame_project
    delete(p, "tiny-audio-UTT", p["names"][0:40:4])      # 10 clips, 8 of them in validation (first 30)
    delete(p, "tiny-au-FRM", p["names"][1:120:10])       # 12 clips
    feats = "tiny-video-UTT,tiny-audio-UTT,tiny-au-FRM"
    summary = run_train(p, "--epochs", "5", "--allow_missing", "--expert_dropout", "0.2", "--save_model", "--feat", feats)
    assert summary["missing"] == {"tiny-video-UTT": {"train": 0, "valid": 0}, "tiny-audio-UTT": {"train": 2, "valid": 8},
                                  "tiny-au-FRM": {"train": 9, "valid": 3}}
    assert summary["allow_missing"] is True and summary["n_valid"] == 30 and summary["f1"] > 0.3
    run_dir = tmp_path / "run"
    log = (run_dir / "info.log").read_text()
    assert "clips missing each feature (train/valid" in log and "tiny-audio-UTT 2/8" in log
    # predict.py follows the run's rule: clips with missing files are predicted
    names_csv = tmp_path / "names.csv"
    pd.DataFrame({"name": p["names"], "discrete": p["emos"]}).to_csv(names_csv, index=False)
    cache = p["argv"][p["argv"].index("--cache_dir") + 1]
    preds, metrics = predict_script.run(predict_script.build_parser().parse_args(
        ["--run", str(run_dir), "--names", str(names_csv), "--out", str(tmp_path / "out"), "--cache_dir", cache, "--no_progress"]))
    assert preds["probs"].shape == (120, 6) and np.isfinite(preds["probs"]).all()
    results = np.load(run_dir / "best_valid_results.npy", allow_pickle=True).item()
    model, meta = load_run(str(run_dir), "cpu")
    assert meta["allow_missing"] is True
    out = predict(model, meta, results["eval_names"], "cpu", Registry.from_config(), batch_size=5, cache_dir=cache)
    np.testing.assert_allclose(out["probs"], results["eval_emoprobs"], rtol=1e-5, atol=1e-6)


def test_run_without_allow_missing_refuses_missing_files_at_prediction(tiny_project, tmp_path):
    run_train(tiny_project, "--epochs", "1", "--save_model")
    delete(tiny_project, "tiny-text-UTT", ["clip_0005"])
    model, meta = load_run(str(tmp_path / "run"), "cpu")
    with pytest.raises(UserError, match="clip_0005.*--allow_missing"):
        predict(model, meta, tiny_project["names"], "cpu", Registry.from_config(), cache_dir="none")


def test_clip_missing_every_feature_is_an_error(tiny_project):
    for feat in tiny_project["folders"]:
        delete(tiny_project, feat, ["clip_0050"])
    with pytest.raises(UserError, match=r"1 clips have no file for any of the features .*\(first: clip_0050\)"):
        run_train(tiny_project, "--epochs", "1", "--allow_missing")


def test_expert_dropout_is_checked(tiny_project):
    with pytest.raises(UserError, match=r"--expert_dropout: must be in \[0, 1\)"):
        train.parse_args(tiny_project["argv"] + ["--expert_dropout", "1.0"])
