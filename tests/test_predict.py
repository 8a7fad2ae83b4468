"""predict.py and inference/predictor.py: rebuild runs, predict in batches, average fold runs, score labels."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import predict as predict_script
import train
from dataloader.registry import CONFIG_VARIABLE, Registry
from tests.conftest import REPO, TINY_FEATURES, make_tiny_project, write_project_config
from toolkit.errors import UserError
from toolkit.metrics import emotion_metrics
from inference.predictor import load_preds, load_run, load_runs, predict


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny project with three 3-epoch runs (seeds 0-2) and a names CSV with labels."""
    root = tmp_path_factory.mktemp("predict")
    project = make_tiny_project(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CONFIG_VARIABLE, write_project_config(project))
        cache = str(root / "cache")
        base = ["--train_lst", project["train_lst"], "--cache_dir", cache, "--no_progress", "--no_plots", "--epochs", "3", "--save_model"]
        runs = []
        for seed in range(3):
            runs.append(str(root / f"seed{seed}"))
            train.run(train.parse_args(base + ["--seed", str(seed), "--run_dir", runs[-1]]))
        # names as users have them: with folders and extensions, in a shuffled order
        order = np.random.default_rng(0).permutation(len(project["names"]))
        names_csv = root / "names.csv"
        pd.DataFrame({"name": [f"videos/{project['names'][i]}.mp4" for i in order],
                      "discrete": [project["emos"][i] for i in order]}).to_csv(names_csv, index=False)
        yield {**project, "root": root, "cache": cache, "runs": runs, "names_csv": str(names_csv),
               "order": [project["names"][i] for i in order], "base": base}


def run_predict(trained, out, *argv):
    return predict_script.run(predict_script.build_parser().parse_args(
        list(argv) + ["--names", trained["names_csv"], "--out", str(out), "--cache_dir", trained["cache"], "--no_progress"]))


def test_prediction_does_not_depend_on_batch_size(trained):
    model, meta = load_run(trained["runs"][0], "cpu")
    names = trained["names"]
    full = predict(model, meta, names, "cpu", Registry.from_config(), batch_size=512, cache_dir=trained["cache"])
    alone = predict(model, meta, names, "cpu", Registry.from_config(), batch_size=1, cache_dir=trained["cache"])
    assert full["probs"].shape == (120, 6) and full["valence"].shape == (120,)
    np.testing.assert_allclose(alone["probs"], full["probs"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(alone["valence"], full["valence"], rtol=1e-5, atol=1e-6)
    one = predict(model, meta, [names[7]], "cpu", Registry.from_config(), cache_dir=trained["cache"])
    np.testing.assert_allclose(one["probs"][0], full["probs"][7], rtol=1e-5, atol=1e-6)


def test_predictions_match_the_runs_validation_results(trained):
    """The rebuilt model is the best epoch's: it reproduces best_valid_results.npy."""
    run_dir = trained["runs"][1]
    results = np.load(os.path.join(run_dir, "best_valid_results.npy"), allow_pickle=True).item()
    model, meta = load_run(run_dir, "cpu")
    out = predict(model, meta, results["eval_names"], "cpu", Registry.from_config(), cache_dir=trained["cache"])
    np.testing.assert_allclose(out["probs"], results["eval_emoprobs"], rtol=1e-5, atol=1e-6)
    assert meta["valid_f1"] == json.load(open(os.path.join(run_dir, "summary.json")))["f1"]


def test_outputs_and_metrics(trained, tmp_path, capsys):
    preds, metrics = run_predict(trained, tmp_path / "out", "--run", trained["runs"][0])
    out = tmp_path / "out"
    assert {"preds.npz", "preds.csv", "metrics.json", "confusion.png"} <= set(os.listdir(out))
    saved = load_preds(str(out / "preds.npz"))
    assert saved["names"] == trained["order"]
    assert saved["classes"] == ["neutral", "angry", "happy", "sad", "worried", "surprise"]
    assert saved["features"] == list(TINY_FEATURES) and saved["run_dirs"] == [trained["runs"][0]]
    assert saved["valid_f1"] == pytest.approx(json.load(open(os.path.join(trained["runs"][0], "summary.json")))["f1"])
    assert saved["valence"].shape == (120,)
    csv = pd.read_csv(out / "preds.csv")
    assert list(csv.columns) == ["name", "discrete", "valence"] and csv["name"].tolist() == trained["order"]
    assert (csv["discrete"] == [saved["classes"][i] for i in saved["probs"].argmax(1)]).all()
    labels = [saved["classes"].index(trained["emos"][trained["names"].index(n)]) for n in trained["order"]]
    expected = emotion_metrics(labels, saved["probs"].argmax(1), saved["classes"])
    written = json.load(open(out / "metrics.json"))
    assert written["f1"] == pytest.approx(expected["f1"]) and written["acc"] == pytest.approx(expected["acc"])
    assert written["confusion"] == expected["confusion"] and len(written["per_class"]) == 6
    printed = capsys.readouterr().out
    assert "weighted F1" in printed and "worried" in printed


def test_without_labels_only_predictions(trained, tmp_path):
    names_csv = tmp_path / "candidates.csv"
    pd.DataFrame({"name": trained["names"][:10]}).to_csv(names_csv, index=False)
    predict_script.run(predict_script.build_parser().parse_args(
        ["--run", trained["runs"][0], "--names", str(names_csv), "--out", str(tmp_path / "out"), "--cache_dir", trained["cache"], "--no_progress"]))
    assert sorted(os.listdir(tmp_path / "out")) == ["preds.csv", "preds.npz"]


def test_fold_runs_average_probabilities(trained, tmp_path):
    preds, _ = run_predict(trained, tmp_path / "folds", "--fold_runs", *trained["runs"])
    singles = [predict(*load_run(r, "cpu"), trained["order"], "cpu", Registry.from_config(), cache_dir=trained["cache"]) for r in trained["runs"]]
    np.testing.assert_allclose(preds["probs"], np.mean([s["probs"] for s in singles], axis=0), rtol=1e-6)
    f1s = [json.load(open(os.path.join(r, "summary.json")))["f1"] for r in trained["runs"]]
    saved = load_preds(str(tmp_path / "folds" / "preds.npz"))
    assert saved["valid_f1"] == pytest.approx(np.mean(f1s)) and saved["run_dirs"] == trained["runs"]


def test_fold_runs_must_share_features(trained, tmp_path):
    other = str(tmp_path / "text-only")
    train.run(train.parse_args(trained["base"] + ["--epochs", "1", "--feat", "tiny-text-UTT", "--run_dir", other]))
    with pytest.raises(UserError, match="differ in features"):
        load_runs([trained["runs"][0], other], "cpu")


def test_unknown_label_is_refused_before_writing(trained, tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"name": ["clip_0000", "clip_0001"], "discrete": ["happy", "joyful"]}).to_csv(bad, index=False)
    args = predict_script.build_parser().parse_args(["--run", trained["runs"][0], "--names", str(bad), "--out", str(tmp_path / "out")])
    with pytest.raises(UserError, match=r"1 labels are not one of .*'joyful'"):
        predict_script.run(args)
    assert not (tmp_path / "out").exists()


def test_run_without_checkpoint_is_one_line(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "args.yaml").write_text("model: moe\n")
    names = tmp_path / "names.csv"
    names.write_text("name\nclip_0000\n")
    proc = subprocess.run([sys.executable, "predict.py", "--run", str(run_dir), "--names", str(names), "--out", str(tmp_path / "out")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "--save_model" in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


def test_predictions_already_in_out_are_kept_unless_overwrite(trained, tmp_path, capsys):
    """As train.py keeps an earlier run: the earlier predictions move to .<out>.prev-<time>, --overwrite replaces them."""
    out = tmp_path / "preds"
    run_predict(trained, out, "--run", trained["runs"][0])
    first = (out / "preds.csv").read_text()
    run_predict(trained, out, "--run", trained["runs"][1])
    kept = [d for d in os.listdir(tmp_path) if d.startswith(".preds.prev-")]
    assert len(kept) == 1 and f"kept as {tmp_path / kept[0]}" in capsys.readouterr().out
    assert (tmp_path / kept[0] / "preds.csv").read_text() == first
    assert sorted(os.listdir(tmp_path / kept[0])) == sorted(os.listdir(out)) == ["confusion.png", "metrics.json", "preds.csv", "preds.npz"]
    assert load_preds(str(out / "preds.npz"))["run_dirs"] == [trained["runs"][1]]
    run_predict(trained, out, "--run", trained["runs"][2], "--overwrite")
    assert load_preds(str(out / "preds.npz"))["run_dirs"] == [trained["runs"][2]]
    assert sorted(os.listdir(tmp_path)) == sorted(["preds", *kept])  # nothing more kept, no lock or staging left


def test_a_folder_of_other_files_is_refused_and_left_as_it_was(trained, tmp_path, capsys):
    from tests.bad_inputs.helpers import assert_one_line_error, run_main, snapshot

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    before = snapshot(tmp_path)
    code, _, err = run_main(predict_script.main, ["--run", trained["runs"][0], "--names", trained["names_csv"],
                                                  "--out", str(tmp_path / "mine"), "--no_progress"], capsys)
    assert_one_line_error(code, err, "--out", str(tmp_path / "mine"), "preds.npz", "left untouched")
    assert snapshot(tmp_path) == before


def test_test_py_is_the_old_name_of_predict_py(tmp_path):
    """test.py notes the new name in one line on stderr, then behaves as predict.py: same help, same exit codes."""
    from tests.bad_inputs.helpers import run_script

    old, new = run_script("test.py", "--help"), run_script("predict.py", "--help")
    assert old.returncode == new.returncode == 0 and new.stderr == ""
    assert old.stderr == "test.py is now predict.py; it runs the same\n"
    assert old.stdout.startswith("usage: test.py") and new.stdout.startswith("usage: predict.py")
    assert old.stdout.split("\n\n", 1)[1] == new.stdout.split("\n\n", 1)[1] and "--fold_runs" in new.stdout  # after the usage
    bad = ["--run", str(tmp_path / "no-run"), "--names", str(tmp_path / "no.csv"), "--out", str(tmp_path / "out")]
    old, new = run_script("test.py", *bad), run_script("predict.py", *bad)
    assert old.returncode == new.returncode == 2 and "no.csv" in new.stderr
    assert old.stderr.splitlines() == ["test.py is now predict.py; it runs the same", *new.stderr.splitlines()]


def test_the_code_tells_users_to_run_predict_py(tmp_path):
    """No script, module or shell script but the alias itself names test.py; the messages name predict.py."""
    skip = {".git", ".venv", "tests", "data", "saved", "cache", "train_lst"}
    naming_test_py = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in skip and not d.startswith(".")]
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith((".py", ".sh")) and os.path.relpath(path, REPO) != "test.py":
                if "test.py" in open(path, encoding="utf-8").read():
                    naming_test_py.append(os.path.relpath(path, REPO))
    assert naming_test_py == []
    with pytest.raises(UserError, match="write it with predict.py --out DIR"):
        load_preds(str(tmp_path / "missing.npz"))
