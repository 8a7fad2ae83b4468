"""Bad flag values of the other scripts: one line naming the flag, exit 2, nothing written."""
import pytest

import ensemble
import evaluate
import pseudo_label
import predict as predict_script
from tests.bad_inputs.helpers import assert_one_line_error, run_main, snapshot
from stages import sweep

CASES = [
    (pseudo_label, ["--runs", "r", "--vlm", "v.csv", "--unlabeled", "u.csv", "--dataset", "seed0", "--out_dataset", "../x"], "--out_dataset"),
    (pseudo_label, ["--runs", "r", "--vlm", "v.csv", "--unlabeled", "u.csv", "--dataset", "seed0", "--out_dataset", "a/b"], "--out_dataset"),
    (pseudo_label, ["--runs", "r", "--vlm", "v.csv", "--unlabeled", "u.csv", "--dataset", "seed0", "--out_dataset", "x",
                    "--min_conf", "1.5"], "--min_conf"),
    (pseudo_label, ["--runs", "r", "--vlm", "v.csv", "--unlabeled", "u.csv", "--dataset", "seed0", "--out_dataset", "x",
                    "--max_per_class", "-1"], "--max_per_class"),
    (pseudo_label, ["--runs", "r"], "required"),
    (predict_script, ["--run", "r", "--names", "n.csv", "--out", "o", "--batch_size", "0"], "--batch_size"),
    (predict_script, ["--run", "r", "--fold_runs", "a", "--names", "n.csv", "--out", "o"], "--fold_runs"),
    (ensemble, ["--preds", "a.npz", "--method", "median", "--out", "s.csv"], "--method"),
    *[(ensemble, ["--preds", "a.npz", "--out", "s.csv", "--fit_rerank", "--valid_preds", "r", "--rerank_out", "r.yaml",
                  "--min_gain", gain], "--min_gain") for gain in ("-1", "nan", "inf")],
    (evaluate, ["--truth", "t.csv"], "--pred"),
    (sweep, ["--seeds", "0", "--epochs", "0"], "--epochs"),
    (sweep, ["--seeds", "0", "--jobs", "0"], "--jobs"),
    (sweep, ["--seeds", "0", "--lr", "nan"], "--lr"),
]


@pytest.mark.parametrize("script,argv,culprit", CASES, ids=[f"{s.__name__}:{' '.join(a[-2:])}" for s, a, _ in CASES])
def test_bad_flags_are_one_line(script, argv, culprit, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(script.main, argv, capsys)
    assert_one_line_error(code, err, culprit)
    assert snapshot(tmp_path) == {}


def test_predict_py_out_at_an_existing_file_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "preds").write_text("mine")
    code, _, err = run_main(predict_script.main, ["--run", "r", "--names", "n.csv", "--out", "preds"], capsys)
    assert_one_line_error(code, err, "--out", "preds is a file")
    assert sorted(snapshot(tmp_path)) == ["preds"] and (tmp_path / "preds").read_text() == "mine"
