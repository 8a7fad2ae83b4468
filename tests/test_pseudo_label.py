import json
import os
import subprocess
import sys

import numpy as np
import pytest

import pseudo_label
import train
from tests.conftest import REPO
from toolkit.errors import UserError
from toolkit.io import load_split, save_split
from inference.predict import load_run, predict


@pytest.fixture
def semi(tiny_project, tmp_path):
    """Stage 1 trained on clips 0-79 (50 train, 30 valid); clips 80-119 form the unlabeled pool."""
    p = tiny_project
    names, emos = p["names"], p["emos"]
    info = lambda sl: {"names": names[sl], "emos": emos[sl], "vals": p["vals"][sl]}  # noqa: E731
    save_split(os.path.join(p["train_lst"], "small.npy"), info(slice(30, 80)), info(slice(0, 30)))
    run = str(tmp_path / "stage1")
    train.run(train.parse_args(p["argv"] + ["--dataset", "small", "--epochs", "8", "--save_model", "--run_dir", run]))
    pool = names[80:]
    (tmp_path / "unlabeled.csv").write_text("name\n" + "\n".join(f"{n}.mp4" for n in pool) + "\n")
    (tmp_path / "truth.csv").write_text("name,discrete\n" + "\n".join(f"{n},{e}" for n, e in zip(pool, emos[80:])) + "\n")
    model, meta = load_run(run, "cpu")
    model_pred = predict(model, meta, pool, "cpu")["probs"].argmax(1)
    classes = meta["classes"]
    # The VLM: right on even clips, the model's label shifted by one on odd ones; no answer for the last clip.
    vlm = [emos[80 + i] if i % 2 == 0 else classes[(model_pred[i] + 1) % 6] for i in range(len(pool) - 1)]
    (tmp_path / "vlm.csv").write_text("name,label\n" + "\n".join(f"{n},{v}" for n, v in zip(pool, vlm)) + "\n")
    return {**p, "run": run, "pool": pool, "vlm": vlm, "model_pred": model_pred, "classes": classes, "tmp": tmp_path}


def pl_argv(s, *extra):
    t = s["tmp"]
    return ["--runs", s["run"], "--vlm", str(t / "vlm.csv"), "--unlabeled", str(t / "unlabeled.csv"), "--dataset", "small",
            "--out_dataset", "small_pl", "--train_lst", s["train_lst"], "--cache_dir", str(t / "cache"), "--device", "cpu", *extra]


def run_pl(s, *extra):
    return pseudo_label.run(pseudo_label.build_parser().parse_args(pl_argv(s, *extra)))


def test_keeps_exactly_the_clips_where_model_and_vlm_agree(semi):
    report = run_pl(semi, "--truth", str(semi["tmp"] / "truth.csv"))
    expected = [n for i, n in enumerate(semi["pool"][:-1]) if semi["classes"][semi["model_pred"][i]] == semi["vlm"][i]]
    split = load_split(os.path.join(semi["train_lst"], "small_pl.npy"))
    train_info, labeled = split["train_info"], load_split(os.path.join(semi["train_lst"], "small.npy"))
    assert train_info["names"] == labeled["train_info"]["names"] + expected
    assert train_info["pseudo"] == [False] * 50 + [True] * len(expected)
    assert split["valid_info"] == labeled["valid_info"]
    assert report["kept"] == len(expected) and report["skipped"]["no_vlm_answer"] == 1
    truth = dict(zip(semi["names"], semi["emos"]))
    kept_acc = np.mean([truth[n] == e for n, e in zip(train_info["names"][50:], train_info["emos"][50:])])
    assert report["truth"]["pseudo_label_accuracy"] == pytest.approx(kept_acc)
    assert json.load(open(os.path.join(semi["train_lst"], "small_pl.report.json")))["kept"] == len(expected)
    # the new split trains, with pseudo-labels down-weighted
    summary = train.run(train.parse_args(semi["argv"] + ["--dataset", "small_pl", "--epochs", "2", "--pseudo_weight", "0.3",
                                                         "--run_dir", str(semi["tmp"] / "stage2")]))
    assert summary["n_train"] == 50 + len(expected)


def test_confidence_threshold_and_class_cap(semi):
    everything = run_pl(semi)
    capped = run_pl(semi, "--max_per_class", "1", "--overwrite")
    assert all(n <= 1 for n in capped["kept_per_class"].values()) and capped["kept"] <= everything["kept"]
    strict = run_pl(semi, "--min_conf", "0.999", "--overwrite")
    assert strict["kept"] <= everything["kept"]


def test_clips_without_features_are_skipped_or_refused(semi):
    folder = semi["folders"]["tiny-text-UTT"][2]
    os.remove(os.path.join(folder, semi["pool"][0] + ".npy"))
    report = run_pl(semi)
    assert report["skipped"]["missing_features"] == 1 and report["skipped"]["missing_features_per_feature"]["tiny-text-UTT"] == 1
    with pytest.raises(UserError, match="1 unlabeled clips lack feature files"):
        run_pl(semi, "--strict", "--overwrite")


def test_runs_with_different_features_are_refused(semi):
    other = str(semi["tmp"] / "other")
    train.run(train.parse_args(semi["argv"] + ["--dataset", "small", "--epochs", "1", "--save_model", "--run_dir", other,
                                               "--feat", "tiny-text-UTT"]))
    with pytest.raises(UserError, match="differ in features"):
        pseudo_label.run(pseudo_label.build_parser().parse_args(pl_argv(semi)[:2] + [other] + pl_argv(semi)[2:]))


def test_existing_output_is_refused_in_one_line(semi):
    run_pl(semi)
    before = open(os.path.join(semi["train_lst"], "small_pl.npy"), "rb").read()
    proc = subprocess.run([sys.executable, "pseudo_label.py"] + pl_argv(semi), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "small_pl.npy already exists; pick another --out_dataset or pass --overwrite" in proc.stderr
    assert open(os.path.join(semi["train_lst"], "small_pl.npy"), "rb").read() == before
