"""preprocess/make_demo_data.py: layout, determinism, prior, dims vs config.py, VLM answers, overwrite, errors."""
import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from dataloader.registry import CONFIG_FILE, Registry
from preprocess import make_demo_data as script
from toolkit.io import resolve
from toolkit.tables import MER_CLASSES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "preprocess", "make_demo_data.py")
SMALL = ["--n_labeled", "60", "--n_unlabeled", "30", "--n_test", "20"]


def make(out, *extra):
    return script.main(["--out", str(out), *SMALL, *extra])


def tree_hash(root):
    """Hash of every file's relative path and bytes."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            path = os.path.join(dirpath, f)
            h.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "d"
    make(out)
    return out


def test_layout(demo):
    labels = pd.read_csv(demo / "labels.csv")
    unlabeled = pd.read_csv(demo / "unlabeled.csv")
    test = pd.read_csv(demo / "test.csv")
    assert list(labels.columns) == ["name", "discrete", "valence"]
    assert list(unlabeled.columns) == ["name"] and list(test.columns) == ["name"]
    for stem, part in [("unlabeled", unlabeled), ("test", test)]:
        truth = pd.read_csv(demo / f"{stem}_labels.csv")
        assert list(truth.columns) == ["name", "discrete", "valence"]
        assert list(truth["name"]) == list(part["name"])
    assert (len(labels), len(unlabeled), len(test)) == (60, 30, 20)
    sets = [set(labels["name"]), set(unlabeled["name"]), set(test["name"])]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    everyone = set.union(*sets)
    assert all(re.fullmatch(r"sample_\d{8}", n) for n in everyone)
    assert set(labels["discrete"]) <= set(MER_CLASSES)
    assert labels["valence"].between(-5, 5).all()

    assert sorted(os.listdir(demo / "features")) == sorted([*script.FEATURES["demo"], *script.FRAME_FEATURES["demo"]])
    for feat, (_, channels) in script.FRAME_FEATURES["demo"].items():
        files = os.listdir(demo / "features" / feat)
        assert {f[:-4] for f in files} == everyone
        lengths = set()
        for f in files:
            x = np.load(demo / "features" / feat / f)
            assert x.ndim == 2 and x.shape[1] == channels and x.dtype == np.float32 and np.isfinite(x).all()
            lengths.add(x.shape[0])
        assert min(lengths) >= script.AU_FRAMES[0] and max(lengths) <= script.AU_FRAMES[1] and len(lengths) > 10
    for feat, (_, _, dim, _) in script.FEATURES["demo"].items():
        files = os.listdir(demo / "features" / feat)
        assert {f[:-4] for f in files} == everyone and all(f.endswith(".npy") for f in files)
        x = np.load(demo / "features" / feat / files[0])
        assert x.shape == (dim,) and x.dtype == np.float32 and np.isfinite(x).all()
    answers = os.listdir(demo / "vlm_answers")
    assert {f[:-4] for f in answers} == everyone and all(f.endswith(".txt") for f in answers)
    meta = json.loads((demo / script.MARKER).read_text())
    assert meta["features"] == {**{f: v[2] for f, v in script.FEATURES["demo"].items()},
                                **{f: v[1] for f, v in script.FRAME_FEATURES["demo"].items()}}
    assert not [f for f in os.listdir(demo.parent) if f.startswith(".")]  # no temporary folder left
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(demo).st_mode & 0o777 == 0o777 & ~umask  # not the private mode of a temp dir


def test_same_seed_same_bytes_other_seed_differs(demo, tmp_path):
    make(tmp_path / "again")
    assert tree_hash(tmp_path / "again") == tree_hash(demo)
    make(tmp_path / "other", "--seed", "1")
    assert tree_hash(tmp_path / "other") != tree_hash(demo)


def test_class_prior():
    prior = np.array([script.PRIOR_COUNTS[c] for c in MER_CLASSES])
    assert list(prior) == [871, 822, 689, 383, 462, 146]
    for n in (60, 1500, 7369):
        counts = script.class_counts(n)
        assert counts.sum() == n and np.all(np.abs(counts - n * prior / prior.sum()) < 1)


def test_prior_and_valence_of_generated_labels():
    data = script.generate("demo", seed=0, n_labeled=1500, n_unlabeled=0, n_test=0, vlm=False)
    y = data["y"]
    assert list(np.bincount(y, minlength=6)) == list(script.class_counts(1500))
    classes = list(MER_CLASSES)
    mean = {c: data["valence"][y == k].mean() for k, c in enumerate(classes)}
    assert mean["happy"] > 1 and mean["angry"] < -1 and mean["sad"] < -1 and abs(mean["neutral"]) < 1


def registrations(scale):
    """{name: (modality, dim, level, folder)}: the project's config.py as every script reads it (the demo), or
    the manifest bench_train registers the MER-scale set with (folders relative to the features folder)."""
    if scale == "demo":
        return {name: (s.modality, s.dim, s.level, s.folder) for name, s in Registry.from_config(CONFIG_FILE).features.items()}
    from benchmarks.bench_train import DATA, mer_scale_entries

    assert os.path.normpath(DATA) == os.path.normpath(resolve(script.SCALES[scale]["out"]))
    return {name: (e["modality"], e["dim"], e["level"], resolve(os.path.join(DATA, "features", e["folder"])))
            for name, e in mer_scale_entries().items()}


def test_feature_table_agrees_with_its_registration():
    for scale, table in script.FEATURES.items():
        registered = registrations(scale)
        features_dir = os.path.join(script.SCALES[scale]["out"], "features")
        frames = {name: (modality, None, dim, None) for name, (modality, dim) in script.FRAME_FEATURES[scale].items()}
        for name, (modality, _, dim, _) in {**table, **frames}.items():
            assert name in registered, f"{name} ({scale}) is not registered"
            assert registered[name][:3] == (modality, dim, "frm" if name in frames else "utt")
            assert os.path.normpath(registered[name][3]) == os.path.normpath(resolve(os.path.join(features_dir, name)))


def test_config_leaves_the_mer_scale_names_free():
    """The MER-scale set's real-model names are registered by the benchmark, never by config.py."""
    assert not set(script.FEATURES["mer"]) & set(Registry.from_config(CONFIG_FILE).features)


def test_utterance_features_do_not_depend_on_the_frame_features(monkeypatch):
    """The frame features and the missing-file draw use streams spawned after the utterance features'."""
    full = script.generate("demo", seed=0, n_labeled=60, n_unlabeled=0, n_test=0, vlm=False)
    monkeypatch.setitem(script.FRAME_FEATURES, "demo", {})
    without = script.generate("demo", seed=0, n_labeled=60, n_unlabeled=0, n_test=0, vlm=False, missing_rate=0.3)
    for name in script.FEATURES["demo"]:
        np.testing.assert_array_equal(full["features"][name], without["features"][name])


def test_au_class_is_in_the_order_not_the_mean():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    data = script.generate("demo", seed=0, n_labeled=600, n_unlabeled=0, n_test=0, vlm=False)
    clips, y = data["features"]["demo-au-FRM"], data["y"]
    mean = np.stack([c.mean(0) for c in clips])
    apex = np.stack([((np.arange(len(c))[:, None] + 0.5) / len(c) * c).sum(0) / c.sum(0) for c in clips])  # centre of mass in time
    score = lambda x: cross_val_score(LogisticRegression(max_iter=2000), x, y, cv=3).mean()  # noqa: E731
    assert score(apex) > 0.5 > 0.35 > score(mean)


def test_missing_rate_deletes_whole_modalities_but_never_every_one(tmp_path):
    out = tmp_path / "m"
    make(out, "--missing_rate", "0.3", "--no_vlm")
    names = set(pd.read_csv(out / "labels.csv")["name"]) | set(pd.read_csv(out / "unlabeled.csv")["name"]) | set(pd.read_csv(out / "test.csv")["name"])
    have = {}
    for feat in os.listdir(out / "features"):
        have[feat] = {f[:-4] for f in os.listdir(out / "features" / feat)}
    modality = {**{f: v[0] for f, v in script.FEATURES["demo"].items()}, **{f: v[0] for f, v in script.FRAME_FEATURES["demo"].items()}}
    by_modality = {}
    for feat, clips in have.items():
        by_modality.setdefault(modality[feat], []).append(clips)
    for m, sets in by_modality.items():
        assert all(s == sets[0] for s in sets), f"{m}: the same clips for every feature of a modality"
        assert len(names - sets[0]) == round(0.3 * len(names))
    assert all(any(n in sets[0] for sets in by_modality.values()) for n in names)
    meta = json.loads((out / script.MARKER).read_text())
    assert meta["missing_rate"] == 0.3 and meta["missing_clips"] == {m: round(0.3 * len(names)) for m in by_modality}
    make(tmp_path / "again", "--missing_rate", "0.3", "--no_vlm")
    assert tree_hash(tmp_path / "again") == tree_hash(out)


def test_vlm_answers_are_realistically_messy():
    data = script.generate("demo", seed=0)
    classes, y = list(MER_CLASSES), data["y"]
    labels, broken = [], 0
    for text in data["vlm_answers"]:
        match = re.search(r"\{.*\}", text, flags=re.S)
        try:
            labels.append(json.loads(match.group(0))["label"])
        except (AttributeError, json.JSONDecodeError):
            labels.append(None)
            broken += 1
    n = len(labels)
    assert 0.01 < broken / n < 0.05  # truncated or empty
    assert any(lab in script.OUT_OF_SET for lab in labels)
    assert any(lab in ("Worried", "worry", "surprised") for lab in labels)
    assert any(t.startswith("```json") for t in data["vlm_answers"]) and any("\n```\n" in t for t in data["vlm_answers"])
    canonical = np.array([lab if lab in classes else "" for lab in labels])
    ok = canonical != ""
    accuracy = np.mean(canonical[ok] == np.array(classes)[y][ok])
    assert 0.65 < accuracy < 0.85
    worried = classes.index("worried")
    assert np.sum(canonical == "worried") > 1.2 * np.sum(y[ok] == worried)  # systematic bias


def test_overwrite_replaces_dataset_and_keeps_foreign_files(tmp_path, capsys):
    out = tmp_path / "d"
    make(out)
    (out / "notes.txt").write_text("mine")
    script.main(["--out", str(out), "--n_labeled", "12", "--n_unlabeled", "0", "--n_test", "0", "--no_vlm"])
    printed = capsys.readouterr().out
    assert "replacing" in printed and "features" in printed
    assert len(os.listdir(out / "features" / "demo-face-UTT")) == 12
    assert not (out / "vlm_answers").exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert "wrote" in printed and "neutral" in printed


def test_refuses_folder_it_did_not_make(tmp_path, capsys):
    out = tmp_path / "real"
    (out / "features" / "mine-UTT").mkdir(parents=True)
    with pytest.raises(SystemExit) as err:
        make(out)
    assert err.value.code == 2
    assert "not made by this script" in capsys.readouterr().err
    assert os.listdir(out) == ["features"] and os.listdir(out / "features") == ["mine-UTT"]


def test_bad_size_is_one_line_error_without_traceback(tmp_path):
    out = tmp_path / "d"
    proc = subprocess.run([sys.executable, SCRIPT, "--out", str(out), "--n_labeled", "3"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: --n_labeled")
    assert "Traceback" not in proc.stderr and not out.exists()
