import json
import subprocess
import sys

import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

import evaluate
from tests.conftest import REPO
from toolkit.errors import UserError

TRUTH = ["happy", "sad", "worried", "worried", "neutral", "angry", "surprise", "sad"]
PRED = ["happy", "worried", "worried", "sad", "neutral", "angry", "neutral", "sad"]


def write(tmp_path, truth=TRUTH, pred=PRED, pred_names=None):
    names = [f"clip_{i}" for i in range(len(truth))]
    pd.DataFrame({"name": names, "discrete": truth, "valence": 0.0}).to_csv(tmp_path / "truth.csv", index=False)
    pred_names = pred_names if pred_names is not None else [f"test/{n}.mp4" for n in names]
    pd.DataFrame({"name": pred_names, "discrete": pred}).to_csv(tmp_path / "pred.csv", index=False)
    return ["--truth", str(tmp_path / "truth.csv"), "--pred", str(tmp_path / "pred.csv")]


def test_scores_match_sklearn(tmp_path, capsys):
    metrics = evaluate.run(evaluate.build_parser().parse_args(write(tmp_path) + ["--out", str(tmp_path / "eval")]))
    assert metrics["f1"] == pytest.approx(f1_score(TRUTH, PRED, average="weighted"))
    assert metrics["acc"] == pytest.approx(accuracy_score(TRUTH, PRED))
    saved = json.load(open(tmp_path / "eval" / "metrics.json"))
    assert saved["f1"] == pytest.approx(metrics["f1"]) and saved["n"] == 8
    assert (tmp_path / "eval" / "confusion.png").exists()
    assert "weighted F1" in capsys.readouterr().out


def test_extra_prediction_rows_are_reported_and_order_does_not_matter(tmp_path, capsys):
    names = [f"clip_{i}" for i in range(8)]
    argv = write(tmp_path, pred=(PRED + ["happy"])[::-1], pred_names=(names + ["clip_extra"])[::-1])
    metrics = evaluate.run(evaluate.build_parser().parse_args(argv))
    assert metrics["f1"] == pytest.approx(f1_score(TRUTH, PRED, average="weighted"))
    assert "1 other prediction rows are not scored" in capsys.readouterr().out


def test_missing_predictions_are_counted(tmp_path):
    argv = write(tmp_path, pred=PRED[:5], pred_names=[f"clip_{i}" for i in range(5)])
    with pytest.raises(UserError, match=r"lacks 3 of the 8 truth clips \(first: clip_5, clip_6, clip_7\)"):
        evaluate.run(evaluate.build_parser().parse_args(argv))


def test_name_mismatch_is_one_line(tmp_path):
    argv = write(tmp_path, pred_names=[f"other_{i}" for i in range(8)])
    proc = subprocess.run([sys.executable, "evaluate.py"] + argv + ["--out", str(tmp_path / "eval")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "lacks 8 of the 8 truth clips" in lines[0], proc.stderr
    assert not (tmp_path / "eval").exists()
