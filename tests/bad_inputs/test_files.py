"""Bad files users exchange or runs leave behind: crafted pickles, bad split values, damaged predictions,
failed runs, damaged summaries and split files made from another label CSV. Each is refused with one line
naming the file, and nothing is run from it or written."""
import json
import math
import os
import pathlib

import numpy as np
import pytest
import torch

import ensemble
import eval_avg_performance
import predict as predict_script
import train
from preprocess import mer2025_base
from tests.bad_inputs.helpers import assert_one_line_error, run_main, snapshot
from tests.toolkit.test_results import fake_run
from toolkit.io import save_json, save_npy, save_split
from inference.predictor import save_preds

CLASSES = ["neutral", "angry", "happy", "sad", "worried", "surprise"]


class Payload:
    """Unpickling this object creates ``marker``: what a crafted file would do with any code it likes."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def assert_payload_is_live(path, marker, loader):
    """The crafted file really runs code under an unrestricted loader (so its refusal proves something)."""
    loader(path)
    assert marker.exists()
    marker.unlink()


def split_info(names, **fields):
    return {"names": list(names), "emos": ["happy"] * len(names), "vals": [0.0] * len(names), **fields}


def member(path, names, probs, run_dirs=()):
    save_preds(str(path), {"names": names, "classes": CLASSES, "probs": probs, "valid_f1": 0.5, "run_dirs": list(run_dirs)})
    return str(path)


# -- crafted pickles: one per loader --------------------------------------------------------------------------

def test_crafted_split_file_runs_nothing(tiny_project, tmp_path, capsys):
    marker = tmp_path / "marker"
    path = os.path.join(tiny_project["train_lst"], "evil.npy")
    save_npy(path, {"train_info": split_info(["a"], vals=[Payload(marker)]), "valid_info": split_info(["b"])})
    assert_payload_is_live(path, marker, lambda p: np.load(p, allow_pickle=True))
    before = snapshot(tmp_path)
    code, _, err = run_main(train.main, tiny_project["argv"] + ["--dataset", "evil", "--epochs", "1"], capsys)
    assert_one_line_error(code, err, path, "pathlib.Path.touch")
    assert not marker.exists() and snapshot(tmp_path) == before


def test_crafted_valid_results_run_nothing(tmp_path, capsys):
    marker = tmp_path / "marker"
    run_dir = tmp_path / "run"
    path = str(run_dir / "best_valid_results.npy")
    save_npy(path, {"eval_names": ["a"], "eval_emoprobs": np.ones((1, 6)) / 6, "eval_emolabels": np.array([0]), "x": Payload(marker)})
    assert_payload_is_live(path, marker, lambda p: np.load(p, allow_pickle=True))
    test_member = member(tmp_path / "m.npz", ["t1"], np.ones((1, 6)) / 6)
    before = snapshot(tmp_path)
    code, _, err = run_main(ensemble.main, ["--preds", test_member, "--out", str(tmp_path / "sub.csv"), "--fit_rerank",
                                            "--valid_preds", str(run_dir), "--rerank_out", str(tmp_path / "rules.yaml")], capsys)
    assert_one_line_error(code, err, path, "pathlib.Path.touch")
    assert not marker.exists() and snapshot(tmp_path) == before


def test_crafted_checkpoint_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "marker"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "args.yaml").write_text("{}\n")
    path = str(run_dir / "best.pth")
    torch.save({"state_dict": {"w": torch.zeros(1)}, "model": "moe", "hook": Payload(marker)}, path)
    assert_payload_is_live(path, marker, lambda p: torch.load(p, weights_only=False))
    (tmp_path / "names.csv").write_text("name\na\n")
    before = snapshot(tmp_path)
    code, _, err = run_main(predict_script.main, ["--run", str(run_dir), "--names", str(tmp_path / "names.csv"),
                                                  "--out", str(tmp_path / "out"), "--no_progress"], capsys)
    assert_one_line_error(code, err, path, "refusing to load")
    assert not marker.exists() and snapshot(tmp_path) == before


# -- split values ----------------------------------------------------------------------------------------------

BAD_SPLITS = {
    "name with a folder": ({"names": ["clip_a", "../../etc/passwd"]}, "names[1]"),
    "name is ..": ({"names": ["clip_a", ".."]}, "names[1]"),
    "empty name": ({"names": ["", "clip_b"]}, "names[0]"),
    "name not a string": ({"names": ["clip_a", 7]}, "names[1]"),
    "emotion not a string": ({"emos": ["happy", 3]}, "clip_b"),
    "infinite valence": ({"vals": [0.0, float("inf")]}, "clip_b"),
    "valence as text": ({"vals": ["0.5", 0.0]}, "clip_a"),
    "NaN weight": ({"weights": [1.0, float("nan")]}, "clip_b"),
    "negative weight": ({"weights": [-1.0, 1.0]}, "clip_a"),
    "infinite weight": ({"weights": [1.0, math.inf]}, "clip_b"),
    "pseudo not a boolean": ({"pseudo": [False, "yes"]}, "clip_b"),
}


@pytest.mark.parametrize("case", list(BAD_SPLITS))
def test_bad_split_values_are_refused(tiny_project, tmp_path, capsys, case):
    fields, culprit = BAD_SPLITS[case]
    train_info = split_info(["clip_a", "clip_b"])
    train_info.update(fields)
    path = os.path.join(tiny_project["train_lst"], "bad.npy")
    save_split(path, train_info, split_info(["clip_c"]))
    before = snapshot(tmp_path)
    code, _, err = run_main(train.main, tiny_project["argv"] + ["--dataset", "bad", "--epochs", "1"], capsys)
    line = assert_one_line_error(code, err, path, "train_info", culprit)
    assert snapshot(tmp_path) == before, line


def test_nan_valence_is_no_valence_not_an_error(tiny_project, tmp_path):
    from toolkit.io import load_split

    path = os.path.join(tiny_project["train_lst"], "nan.npy")
    save_split(path, split_info(["clip_a"], vals=[float("nan")], weights=[0.0], pseudo=[True]), split_info(["clip_c"]))
    assert math.isnan(load_split(path)["train_info"]["vals"][0])


# -- ensemble members ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf, -0.2])
def test_member_with_non_probabilities_is_refused(tmp_path, capsys, bad):
    probs = np.full((3, 6), 1 / 6)
    probs[1, 2] = bad
    good = member(tmp_path / "good.npz", ["a", "b", "c"], np.full((3, 6), 1 / 6))
    broken = member(tmp_path / "broken.npz", ["a", "b", "c"], probs)
    before = snapshot(tmp_path)
    code, _, err = run_main(ensemble.main, ["--preds", good, broken, "--out", str(tmp_path / "sub.csv")], capsys)
    assert_one_line_error(code, err, broken, "'b'")
    assert snapshot(tmp_path) == before


def mark_failed(run_dir, how):
    os.makedirs(run_dir, exist_ok=True)
    if how == "FAILED file":
        pathlib.Path(run_dir, "FAILED").write_text("valid loss became NaN at epoch 3\n")
    else:
        save_json(os.path.join(run_dir, "summary.json"), {"status": "failed", "reason": "loss diverged"})
    return str(run_dir)


@pytest.mark.parametrize("how", ["FAILED file", "status failed"])
def test_member_of_a_failed_run_is_refused(tmp_path, capsys, how):
    run_dir = mark_failed(tmp_path / "runs" / "seed1", how)
    good = member(tmp_path / "good.npz", ["a"], np.full((1, 6), 1 / 6))
    bad = member(tmp_path / "bad.npz", ["a"], np.full((1, 6), 1 / 6), run_dirs=[run_dir])
    before = snapshot(tmp_path)
    code, _, err = run_main(ensemble.main, ["--preds", good, bad, "--out", str(tmp_path / "sub.csv")], capsys)
    assert_one_line_error(code, err, bad, run_dir, "failed")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("how", ["FAILED file", "status failed"])
def test_failed_run_is_no_model(tmp_path, capsys, how):
    run_dir = mark_failed(tmp_path / "run", how)
    (tmp_path / "run" / "args.yaml").write_text("{}\n")
    (tmp_path / "names.csv").write_text("name\na\n")
    good = member(tmp_path / "m.npz", ["t1"], np.ones((1, 6)) / 6)
    fake_run(tmp_path / "sweep", "feat-a", "audio", 0, 0.5)
    mark_failed(tmp_path / "sweep" / "feat-a" / "seed1", how)
    before = snapshot(tmp_path)
    code, _, err = run_main(predict_script.main, ["--run", run_dir, "--names", str(tmp_path / "names.csv"),
                                                  "--out", str(tmp_path / "out"), "--no_progress"], capsys)
    assert_one_line_error(code, err, run_dir, "failed")
    code, _, err = run_main(ensemble.main, ["--preds", good, "--out", str(tmp_path / "sub.csv"), "--fit_rerank",
                                            "--valid_preds", run_dir, "--rerank_out", str(tmp_path / "rules.yaml")], capsys)
    assert_one_line_error(code, err, run_dir, "failed")
    code, _, err = run_main(eval_avg_performance.main, ["--root", str(tmp_path / "sweep")], capsys)
    assert_one_line_error(code, err, os.path.join(str(tmp_path / "sweep"), "feat-a", "seed1"), "failed")
    assert snapshot(tmp_path) == before


# -- summaries -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "key-less", "not an object"])
def test_damaged_summary_is_named(tmp_path, capsys, damage):
    fake_run(tmp_path, "feat-a", "audio", 0, 0.5)
    fake_run(tmp_path, "feat-a", "audio", 1, 0.6)
    path = tmp_path / "feat-a" / "seed1" / "summary.json"
    text = path.read_text()
    path.write_text({"truncated": text[:len(text) // 2], "key-less": json.dumps({"model": "moe"}),
                     "not an object": "[1, 2]"}[damage])
    before = snapshot(tmp_path)
    code, _, err = run_main(eval_avg_performance.main, ["--root", str(tmp_path)], capsys)
    assert_one_line_error(code, err, str(path))
    assert snapshot(tmp_path) == before


# -- split files made from another label CSV -------------------------------------------------------------------

@pytest.mark.parametrize("existing", ["another CSV", "no record"])
def test_split_from_another_label_csv_is_kept(tmp_path, capsys, existing):
    rows = "".join(f"clip_{i},{CLASSES[i % 6]},0.5\n" for i in range(30))
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("name,discrete,valence\n" + rows)
    second.write_text("name,discrete,valence\n" + rows.replace("clip_0,neutral", "clip_0,happy"))
    lst = tmp_path / "lst"
    target = str(lst / "seed0.npy")
    if existing == "another CSV":
        mer2025_base.main(["--label_csv", str(first), "--save_root", str(lst)])
    else:  # a split of the published format: no record of its label CSV
        save_split(target, split_info(["clip_0"]), split_info(["clip_1"]))
    before = snapshot(tmp_path)
    capsys.readouterr()
    code, _, err = run_main(mer2025_base.main, ["--label_csv", str(second), "--save_root", str(lst)], capsys)
    culprits = [target, str(second), "--overwrite"] + ([str(first)] if existing == "another CSV" else [])
    assert_one_line_error(code, err, *culprits)
    assert snapshot(tmp_path) == before


# -- files of runs and models that are damaged or ask for code ------------------------------------------------

def test_args_yaml_with_a_yaml_tag_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "marker"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "args.yaml").write_text(f"model: !!python/object/apply:pathlib.Path.touch [{str(marker)!r}]\n")
    (tmp_path / "names.csv").write_text("name\na\n")
    before = snapshot(tmp_path)
    code, _, err = run_main(predict_script.main, ["--run", str(run_dir), "--names", str(tmp_path / "names.csv"),
                                                  "--out", str(tmp_path / "out"), "--no_progress"], capsys)
    assert_one_line_error(code, err, str(run_dir / "args.yaml"), "line 1")
    assert not marker.exists() and snapshot(tmp_path) == before


@pytest.fixture
def bert_copy(checkpoints, tmp_path):
    """A copy of the tiny BERT encoder folder (config, tokenizer, model.safetensors) to damage."""
    import shutil

    return shutil.copytree(checkpoints["bert"], tmp_path / "bert")


def extract_text(release, model, capsys):
    import extract

    return run_main(extract.main, ["--data", release, "--modality", "text", "--model", str(model), "--workers", "0",
                                   "--no_progress"], capsys)


def test_pickled_pytorch_model_bin_runs_nothing(bert_copy, tmp_path, capsys):
    from tests.feature_extraction.media import write_release

    from safetensors.torch import load_file

    marker = tmp_path / "marker"
    weights = load_file(bert_copy / "model.safetensors")
    os.remove(bert_copy / "model.safetensors")
    path = bert_copy / "pytorch_model.bin"
    torch.save({**weights, "hook": Payload(marker)}, path)
    assert_payload_is_live(path, marker, lambda p: torch.load(p, weights_only=False))
    release = write_release(str(tmp_path / "release"), ["s1"])
    before = snapshot(tmp_path)
    code, _, err = extract_text(release, bert_copy, capsys)
    assert_one_line_error(code, err, str(path), "a reference to getattr", "refusing to load")  # getattr(Path, "touch")
    assert not marker.exists() and snapshot(tmp_path) == before


def test_truncated_model_safetensors_is_one_line(bert_copy, tmp_path, capsys):
    from tests.feature_extraction.media import write_release

    path = bert_copy / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    release = write_release(str(tmp_path / "release"), ["s1"])
    before = snapshot(tmp_path)
    code, _, err = extract_text(release, bert_copy, capsys)
    assert_one_line_error(code, err, str(path), "damaged or incomplete")
    assert snapshot(tmp_path) == before
