import json
import os
import subprocess
import sys

import numpy as np

from dataloader.registry import Registry
import pytest

import pseudo_label
import train
from tests.conftest import REPO
from toolkit.errors import UserError
from toolkit.io import load_split, save_split
from inference.predictor import load_run, predict


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
    model_pred = predict(model, meta, pool, "cpu", Registry.from_config())["probs"].argmax(1)
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


def test_soft_writes_mean_probabilities_that_load_back_and_train(semi):
    report = run_pl(semi, "--soft")
    split = load_split(os.path.join(semi["train_lst"], "small_pl.npy"))
    train_info = split["train_info"]
    probs = train_info["probs"]
    assert len(probs) == len(train_info["names"]) and probs[:50] == [None] * 50
    soft = np.array(probs[50:])
    assert soft.shape == (report["kept"], 6) and np.allclose(soft.sum(1), 1.0, atol=1e-6) and (soft >= 0).all()
    assert all(isinstance(x, float) for row in probs[50:] for x in row)  # plain lists of floats
    # the stored distribution is the run's prediction, and its label is the argmax
    model, meta = load_run(semi["run"], "cpu")
    predicted = predict(model, meta, train_info["names"][50:], "cpu", Registry.from_config())["probs"]
    assert np.allclose(soft, predicted, atol=1e-5)
    assert [semi["classes"][i] for i in soft.argmax(1)] == train_info["emos"][50:]
    sharp = run_pl(semi, "--soft", "--soft_temperature", "0.5", "--overwrite")
    sharp_probs = np.array(load_split(os.path.join(semi["train_lst"], "small_pl.npy"))["train_info"]["probs"][50:])
    assert sharp["kept"] == report["kept"] and (sharp_probs.max(1) > soft.max(1) - 1e-9).all()
    expected = soft ** 2 / (soft ** 2).sum(1, keepdims=True)
    assert np.allclose(sharp_probs, expected, atol=1e-6)
    summary = train.run(train.parse_args(semi["argv"] + ["--dataset", "small_pl", "--epochs", "2", "--no_plots",
                                                         "--run_dir", str(semi["tmp"] / "stage2_soft")]))
    assert summary["n_train"] == 50 + report["kept"]


def test_balance_equal_caps_each_class_at_the_rarest_count():
    label = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 5])
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.95, 0.9, 0.3, 0.4, 0.2])
    keep = np.ones(10, dtype=bool)
    keep[3] = False  # not a candidate
    equal = pseudo_label.balance_classes(keep, label, conf, 6, "equal")
    assert np.flatnonzero(equal).tolist() == [0, 5, 6, 9]  # one per present class (the rarest, class 5, has 1), most confident
    wide = pseudo_label.balance_classes(keep & (label != 5), label, conf, 6, "equal")
    assert np.flatnonzero(wide).tolist() == [0, 1, 4, 5, 6, 8]  # rarest is now 2 (class 1)
    assert pseudo_label.balance_classes(keep, label, conf, 6, "none") is keep


def test_balance_prior_follows_the_labeled_class_proportions():
    label = np.repeat([0, 1, 2], [10, 10, 2])
    conf = np.linspace(1, 0, 22)
    keep = np.ones(22, dtype=bool)
    kept = pseudo_label.balance_classes(keep, label, conf, 3, "prior", prior=[4, 2, 1])
    assert np.bincount(label[kept], minlength=3).tolist() == [8, 4, 2]  # class 2 (2 clips, share 1/7) sets the scale
    assert kept[:8].all() and not kept[8:10].any()  # most confident first


def test_balance_on_a_real_pool_and_in_the_report(semi):
    everything = run_pl(semi)
    equal = run_pl(semi, "--balance", "equal", "--overwrite")
    counts = [n for n in everything["kept_per_class"].values() if n]
    assert set(n for n in equal["kept_per_class"].values() if n) <= {min(counts)}
    assert equal["settings"]["balance"] == "equal" and equal["kept"] <= everything["kept"]


def test_a_second_round_relabels_from_the_labeled_split(semi):
    run_pl(semi)
    stage2 = str(semi["tmp"] / "stage2")
    train.run(train.parse_args(semi["argv"] + ["--dataset", "small_pl", "--epochs", "2", "--save_model", "--no_plots", "--run_dir", stage2]))
    def round2(dataset):
        argv = pl_argv(semi)
        argv[argv.index("--runs") + 1], argv[argv.index("--dataset") + 1] = stage2, dataset
        argv[argv.index("--out_dataset") + 1] = "small_pl2"
        return pseudo_label.run(pseudo_label.build_parser().parse_args(argv))

    with pytest.raises(UserError, match="small_pl.npy already holds .* pseudo-labeled clips; pass the labeled split"):
        round2("small_pl")
    report = round2("small")
    split = load_split(os.path.join(semi["train_lst"], "small_pl2.npy"))
    assert split["train_info"]["pseudo"] == [False] * 50 + [True] * report["kept"]
