import json
import os
import statistics

import pytest

import select_features
from engine import TrainConfig
from tests.conftest import TINY_FEATURES
from toolkit.io import save_split


def write_folds(project, k=3):
    """fold0..fold{k-1}.npy of the tiny project: disjoint validation thirds."""
    names, emos, vals = project["names"], project["emos"], project["vals"]
    for fold in range(k):
        valid = [i for i in range(len(names)) if i % k == fold]
        train = [i for i in range(len(names)) if i % k != fold]
        info = lambda rows: {"names": [names[i] for i in rows], "emos": [emos[i] for i in rows], "vals": [vals[i] for i in rows]}  # noqa: E731
        save_split(os.path.join(project["train_lst"], f"fold{fold}.npy"), info(train), info(valid))


def select_argv(project, tmp_path, *extra):
    return ["--folds", "3", "--feats", " ".join(TINY_FEATURES), "--out", str(tmp_path / "select"), *extra, "--",
            "--train_lst", project["train_lst"], "--cache_dir", str(tmp_path / "cache"), "--epochs", "4", "--lr", "1e-2"]


def test_greedy_selection_adds_the_best_feature_while_its_gain_beats_the_fold_spread(tiny_project, tmp_path, capsys):
    write_folds(tiny_project)
    selection = select_features.main(select_argv(tiny_project, tmp_path))
    out = capsys.readouterr().out
    record = json.load(open(tmp_path / "select" / "selection.json"))
    assert record["features"] == selection.features and len(record["steps"]) >= 1
    chosen, previous = [], []
    for step in record["steps"]:
        means = {f: statistics.fmean(scores) for f, scores in step["candidates"].items()}
        assert set(means) == set(TINY_FEATURES) - set(chosen) and means[step["best"]] == max(means.values())
        gain = means[step["best"]] - (statistics.fmean(previous) if previous else 0.0)
        spread = statistics.pstdev([a - b for a, b in zip(step["candidates"][step["best"]], previous)]) if previous else 0.0
        assert step["current_spread"] == pytest.approx(statistics.pstdev(previous) if previous else 0.0)
        assert step["gain"] == pytest.approx(gain) and step["spread"] == pytest.approx(spread) and step["added"] == (gain > spread)
        if step["added"]:
            chosen, previous = chosen + [step["best"]], step["candidates"][step["best"]]
    assert chosen == selection.features and record["fold_f1"] == previous
    assert len(chosen) == len(TINY_FEATURES) or not record["steps"][-1]["added"]
    assert TrainConfig.load(str(tmp_path / "select" / "selected.yaml")).feat == chosen
    assert f"train them: python train.py --config {tmp_path / 'select' / 'selected.yaml'} --folds 3" in out
    again = select_features.main(select_argv(tiny_project, tmp_path, "--max_features", "1"))  # same seed, same data: same first step
    assert again.features == chosen[:1] and again.fold_f1 == record["steps"][0]["candidates"][chosen[0]]


def test_selection_refuses_what_it_sets_itself_and_missing_folds(tiny_project, tmp_path, capsys):
    from tests.bad_inputs.helpers import assert_one_line_error, run_main

    code, _, err = run_main(select_features.main, select_argv(tiny_project, tmp_path) + ["--dataset", "seed0"], capsys)
    assert_one_line_error(code, err, "--dataset after --")
    code, _, err = run_main(select_features.main, select_argv(tiny_project, tmp_path), capsys)
    assert_one_line_error(code, err, "fold0.npy")
    code, _, err = run_main(select_features.main, ["--feats", "tiny-text-UTT", "--", "--train_lst", tiny_project["train_lst"]], capsys)
    assert_one_line_error(code, err, "at least 2 candidate features")
    assert not (tmp_path / "select").exists()
