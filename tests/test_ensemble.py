"""ensemble.py and inference/voting.py: voting methods, candidate order, refusals, fitted re-ranking."""
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

import ensemble
from tests.conftest import REPO
from toolkit.errors import UserError
from toolkit.io import save_json, save_npy
from inference.predictor import load_preds, save_preds
from inference.voting import combine

CLASSES = ["neutral", "angry", "happy", "sad", "worried", "surprise"]


def probs_of(rows):
    """(N, 6) probabilities from rows of {class: p}; the rest of each row is spread evenly."""
    out = np.zeros((len(rows), 6))
    for i, row in enumerate(rows):
        rest = (1 - sum(row.values())) / (6 - len(row))
        out[i] = [row.get(c, rest) for c in CLASSES]
    return out


def write_member(path, names, probs, valid_f1=0.8, classes=CLASSES):
    save_preds(str(path), {"names": names, "classes": classes, "probs": probs, "valid_f1": valid_f1, "run_dirs": [str(path)]})
    return str(path)


def run_ensemble(*argv):
    return ensemble.run(ensemble.build_parser().parse_args([str(a) for a in argv]))


def test_vote_majority_and_ties_by_mean_probability(tmp_path):
    names = ["a", "b", "c"]
    members = [
        # a: 2 of 3 vote angry weakly, one votes neutral strongly → vote angry, soft neutral
        # b: tie 1-1 (third member votes happy) → the tied class with higher mean probability (sad)
        # c: all agree on surprise
        probs_of([{"angry": 0.40, "neutral": 0.35}, {"sad": 0.50, "worried": 0.45}, {"surprise": 0.9}]),
        probs_of([{"angry": 0.40, "neutral": 0.35}, {"worried": 0.40, "sad": 0.35}, {"surprise": 0.8}]),
        probs_of([{"neutral": 0.95}, {"happy": 0.60, "sad": 0.30}, {"surprise": 0.7}]),
    ]
    paths = [write_member(tmp_path / f"m{i}.npz", names, p) for i, p in enumerate(members)]
    vote = run_ensemble("--preds", *paths, "--method", "vote", "--out", tmp_path / "vote.csv")
    assert [CLASSES[i] for i in vote["labels"]] == ["angry", "sad", "surprise"]
    np.testing.assert_allclose(vote["probs"].sum(1), 1)
    soft = run_ensemble("--preds", *paths, "--method", "soft", "--out", tmp_path / "soft.csv")
    assert [CLASSES[i] for i in soft["labels"]] == ["neutral", "sad", "surprise"]
    np.testing.assert_allclose(soft["probs"], np.mean(members, axis=0))
    assert pd.read_csv(tmp_path / "vote.csv")["discrete"].tolist() == ["angry", "sad", "surprise"]


def test_weighted_follows_validation_f1(tmp_path):
    names = ["a"]
    strong = write_member(tmp_path / "strong.npz", names, probs_of([{"neutral": 0.6}]), valid_f1=0.9)
    weak = write_member(tmp_path / "weak.npz", names, probs_of([{"angry": 0.9, "neutral": 0.02}]), valid_f1=0.1)
    soft = run_ensemble("--preds", strong, weak, "--method", "soft", "--out", tmp_path / "s.csv")
    weighted = run_ensemble("--preds", strong, weak, "--method", "weighted", "--out", tmp_path / "w.csv")
    assert CLASSES[soft["labels"][0]] == "angry" and CLASSES[weighted["labels"][0]] == "neutral"
    p = [load_preds(strong)["probs"], load_preds(weak)["probs"]]
    np.testing.assert_allclose(weighted["probs"], combine(p, "weighted", [0.9, 0.1]))
    np.testing.assert_allclose(weighted["probs"], 0.9 * p[0] + 0.1 * p[1])


def test_weighted_needs_validation_f1(tmp_path):
    a = write_member(tmp_path / "a.npz", ["x"], probs_of([{"happy": 0.5}]), valid_f1=None)
    with pytest.raises(UserError, match="needs each member's validation F1"):
        run_ensemble("--preds", a, "--method", "weighted", "--out", tmp_path / "s.csv")


def test_candidates_order_and_npz_beside(tmp_path, capsys):
    names = [f"clip_{i}" for i in range(6)]
    probs = np.eye(6) * 0.5 + 0.5 / 6
    a = write_member(tmp_path / "a.npz", names, probs)
    b = write_member(tmp_path / "b.npz", names[::-1], probs[::-1])  # same predictions, other row order
    candidates = tmp_path / "candidates.csv"
    pd.DataFrame({"name": ["test/clip_3.mp4", "clip_0", "clip_5"]}).to_csv(candidates, index=False)
    run_ensemble("--preds", a, b, "--candidates", candidates, "--out", tmp_path / "sub" / "submission.csv")
    sub = pd.read_csv(tmp_path / "sub" / "submission.csv")
    assert list(sub.columns) == ["name", "discrete"]
    assert sub["name"].tolist() == ["clip_3", "clip_0", "clip_5"] and sub["discrete"].tolist() == ["sad", "neutral", "surprise"]
    saved = load_preds(str(tmp_path / "sub" / "submission.npz"))
    assert saved["names"] == sub["name"].tolist()
    np.testing.assert_allclose(saved["probs"], probs[[3, 0, 5]], rtol=1e-6)
    assert "over 3 candidates" in capsys.readouterr().out


@pytest.mark.parametrize("case, message", [
    ("missing", r"lacks 2 of the 4 candidates \(first: c, d\)"),
    ("classes", r"has classes .*worry.* ensemble only predictions over the same class list"),
    ("names", r"prediction files hold different clips: .* lacks 1 of .* and has 0 others"),
    ("duplicate", r"candidates CSV .*: 1 sample names appear more than once \(first: a\)"),
    ("empty", r"candidates CSV .* has a header but no rows"),
])
def test_bad_inputs_are_refused_before_writing(tmp_path, case, message):
    a = write_member(tmp_path / "a.npz", ["a", "b", "c", "d"], probs_of([{"happy": 0.5}] * 4))
    b = write_member(tmp_path / "b.npz", ["a", "b", "c", "d"], probs_of([{"sad": 0.5}] * 4))
    argv = ["--preds", a, b, "--out", tmp_path / "sub.csv"]
    if case == "missing":
        argv[2] = write_member(tmp_path / "b.npz", ["a", "b"], probs_of([{"sad": 0.5}] * 2))
        pd.DataFrame({"name": ["a", "b", "c", "d"]}).to_csv(tmp_path / "cand.csv", index=False)
        argv += ["--candidates", tmp_path / "cand.csv"]
    elif case == "classes":
        argv[2] = write_member(tmp_path / "b.npz", ["a", "b", "c", "d"], probs_of([{"sad": 0.5}] * 4),
                               classes=CLASSES[:4] + ["worry", "surprise"])
    elif case == "names":
        argv[2] = write_member(tmp_path / "b.npz", ["a", "b", "c"], probs_of([{"sad": 0.5}] * 3))
    elif case in ("duplicate", "empty"):
        (tmp_path / "cand.csv").write_text("name\na\nb\na\n" if case == "duplicate" else "name\n")
        argv += ["--candidates", tmp_path / "cand.csv"]
    with pytest.raises(UserError, match=message):
        run_ensemble(*argv)
    assert not (tmp_path / "sub.csv").exists() and not (tmp_path / "sub.npz").exists()


def test_apply_rules_file(tmp_path, capsys):
    names = ["a", "b", "c"]
    member = write_member(tmp_path / "a.npz", names, probs_of([{"worried": 0.45, "sad": 0.40}, {"worried": 0.6, "sad": 0.1},
                                                              {"worried": 0.42, "happy": 0.40}]))
    rules = tmp_path / "rules.yaml"
    rules.write_text("margins:\n  worried: {margin: 0.1, fallback: [sad, surprise, neutral]}\n")
    out = run_ensemble("--preds", member, "--rerank", rules, "--out", tmp_path / "sub.csv")
    assert [CLASSES[i] for i in out["labels"]] == ["sad", "worried", "worried"]
    assert "margin worried changed 1" in capsys.readouterr().out


def fake_run(path, names, labels, probs, f1=0.7):
    """A run dir as train.py leaves it, as far as ensemble.py reads it."""
    os.makedirs(path)
    save_npy(os.path.join(path, "best_valid_results.npy"), {"eval_names": list(names), "eval_emoprobs": probs,
                                                             "eval_emolabels": np.asarray(labels)})
    save_json(os.path.join(path, "summary.json"), {"f1": f1, "classes": CLASSES})
    return str(path)


def worried_biased(rng, labels):
    """Probabilities of a model that says 'worried' for half the sad/neutral clips, by a small margin."""
    n = len(labels)
    logits = rng.normal(0, 1, (n, 6))
    logits[np.arange(n), labels] += 2.0
    confused = np.isin(labels, [0, 3]) & (rng.random(n) < 0.5)
    logits[confused, 4] = logits[confused, labels[confused]] + rng.uniform(0.01, 0.5, confused.sum())
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


@pytest.mark.parametrize("shared", [True, False])
def test_fit_rerank_on_validation_runs(tmp_path, capsys, shared):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, 400)
    runs = []
    for k in range(3):  # shared: one split (same validation clips); else three splits without common clips
        names = [f"v{i}" for i in range(400)] if shared else [f"split{k}_v{i}" for i in range(400)]
        labels = labels if shared else rng.integers(0, 6, 400)
        runs.append(fake_run(tmp_path / f"run{k}", names, labels, worried_biased(rng, labels)))
    test_names = [f"t{i}" for i in range(50)]
    members = [write_member(tmp_path / f"m{k}.npz", test_names, worried_biased(rng, rng.integers(0, 6, 50))) for k in range(3)]
    out = run_ensemble("--preds", *members, "--method", "soft", "--out", tmp_path / "sub.csv",
                       "--fit_rerank", "--valid_preds", *runs, "--rerank_out", tmp_path / "fitted.yaml")
    printed = capsys.readouterr().out
    assert ("common to all 3 members" in printed) == shared
    assert ("pooled (1200 rows from 3 members)" in printed) == (not shared)
    before, after = map(float, printed.split("validation weighted F1 ")[1].split(" (")[0].split(" → "))
    assert after > before
    fitted = yaml.safe_load(open(tmp_path / "fitted.yaml"))
    assert fitted["offsets"].get("worried", 0) < 0 or "worried" in fitted["margins"], fitted
    assert sum(out["changes"].values()) > 0
    # the written rules are the applied ones
    again = run_ensemble("--preds", *members, "--method", "soft", "--rerank", tmp_path / "fitted.yaml", "--out", tmp_path / "again.csv")
    assert (again["labels"] == out["labels"]).all()


def test_fit_rerank_refuses_candidates_and_unlabeled_npz(tmp_path):
    rng = np.random.default_rng(1)
    names = [f"v{i}" for i in range(40)]
    labels = rng.integers(0, 6, 40)
    probs = worried_biased(rng, labels)
    member = write_member(tmp_path / "m.npz", names, probs)
    run = fake_run(tmp_path / "run", names, labels, probs)
    with pytest.raises(UserError, match="40 fitting clips are also candidates"):
        run_ensemble("--preds", member, "--out", tmp_path / "sub.csv", "--fit_rerank", "--valid_preds", run,
                     "--rerank_out", tmp_path / "r.yaml")
    with pytest.raises(UserError, match="give --truth CSV"):
        run_ensemble("--preds", member, "--out", tmp_path / "sub.csv", "--fit_rerank", "--valid_preds", member,
                     "--rerank_out", tmp_path / "r.yaml")
    assert not (tmp_path / "sub.csv").exists() and not (tmp_path / "r.yaml").exists()


def test_class_mismatch_is_one_line(tmp_path):
    a = write_member(tmp_path / "a.npz", ["x"], probs_of([{"happy": 0.5}]))
    b = write_member(tmp_path / "b.npz", ["x"], probs_of([{"happy": 0.5}]), classes=CLASSES[::-1])
    proc = subprocess.run([sys.executable, "ensemble.py", "--preds", a, b, "--out", str(tmp_path / "sub.csv")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "same class list" in lines[0], proc.stderr
    assert not (tmp_path / "sub.csv").exists()


def test_help_shows_every_default(capsys):
    from tests.toolkit.test_help import undocumented_defaults

    assert undocumented_defaults(ensemble.build_parser()) == []
    with pytest.raises(SystemExit):
        ensemble.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: soft)" in text and "(default: 0.001)" in text and "(required)" in text
