"""Soft targets in a split file (key ``probs``) and the split pseudo_label.py extends: bad values are one line
naming the split file and the sample, before any feature is read or anything written."""
import os

import numpy as np
import pytest

import train
from tests.bad_inputs.helpers import assert_one_line_error, run_main, snapshot
from toolkit.io import load_split, save_split

SOFT = [0.1, 0.1, 0.5, 0.1, 0.1, 0.1]
BAD_PROBS = [
    ([0.2, 0.2, 0.6], "has 3 values, expected 6"),
    ([0.5, 0.5, 0.5, 0.0, 0.0, 0.0], "sum to 1 (got sum 1.5)"),
    ([1.2, -0.2, 0.0, 0.0, 0.0, 0.0], "finite, >= 0"),
    ([float("nan"), 0.2, 0.2, 0.2, 0.2, 0.2], "finite"),
    ("happy", "list of 6 numbers or None"),
]


def write_soft_split(project, row):
    split = load_split(os.path.join(project["train_lst"], "seed0.npy"))
    train_info = dict(split["train_info"])
    probs = [None] * len(train_info["names"])
    probs[3] = SOFT
    probs[7] = row
    train_info["probs"] = probs
    save_split(os.path.join(project["train_lst"], "soft.npy"), train_info, split["valid_info"])
    return train_info["names"][7]


@pytest.mark.parametrize("row,message", BAD_PROBS, ids=[m for _, m in BAD_PROBS])
def test_bad_soft_targets_name_the_split_and_the_sample(tiny_project, tmp_path, capsys, row, message):
    sample = write_soft_split(tiny_project, row)
    before = snapshot(tmp_path)
    code, _, err = run_main(train.main, tiny_project["argv"] + ["--dataset", "soft", "--epochs", "1"], capsys)
    assert_one_line_error(code, err, "soft.npy", sample, message)
    assert snapshot(tmp_path) == before  # no cache, no run directory


def test_probs_not_aligned_with_names(tiny_project, tmp_path, capsys):
    split = load_split(os.path.join(tiny_project["train_lst"], "seed0.npy"))
    train_info = dict(split["train_info"], probs=[SOFT] * 5)
    save_split(os.path.join(tiny_project["train_lst"], "short.npy"), train_info, split["valid_info"])
    before = snapshot(tmp_path)
    code, _, err = run_main(train.main, tiny_project["argv"] + ["--dataset", "short", "--epochs", "1"], capsys)
    assert_one_line_error(code, err, "short.npy", "90 names but 5 probs")
    assert snapshot(tmp_path) == before


def test_pseudo_label_refuses_a_split_that_already_holds_pseudo_labels(tiny_project, tmp_path, capsys):
    import pseudo_label

    split = load_split(os.path.join(tiny_project["train_lst"], "seed0.npy"))
    n = len(split["train_info"]["names"])
    save_split(os.path.join(tiny_project["train_lst"], "seed0_pl.npy"),
               dict(split["train_info"], pseudo=list(np.arange(n) >= n - 4)), split["valid_info"])
    (tmp_path / "pool.csv").write_text("name\nx\n")
    (tmp_path / "vlm.csv").write_text("name,label\nx,happy\n")
    before = snapshot(tmp_path)
    code, _, err = run_main(pseudo_label.main, ["--runs", str(tmp_path / "run"), "--vlm", str(tmp_path / "vlm.csv"),
                                                "--unlabeled", str(tmp_path / "pool.csv"), "--dataset", "seed0_pl",
                                                "--out_dataset", "seed0_pl2", "--train_lst", tiny_project["train_lst"]], capsys)
    assert_one_line_error(code, err, "seed0_pl.npy", "4 pseudo-labeled clips", "labeled split")
    assert snapshot(tmp_path) == before
