"""make_demo_data.py --structure: the default output is pinned byte for byte; alt differs in structure."""
import hashlib
import json
import os

import numpy as np
import pandas as pd
import pytest

from preprocess import make_demo_data as script
from tests.bad_inputs.helpers import run_main
from toolkit.tables import MER_CLASSES

TINY = ["--n_labeled", "30", "--n_unlabeled", "6", "--n_test", "6"]
# The default output with TINY sizes, pinned before --structure existed: the exact hash of every file that is not
# a float array (labels, answers, metadata), and per feature the file count and the sum of absolute values. Float
# arrays are compared to a tolerance, since numpy's vector kernels differ in the last bit between CPUs.
DEFAULT_TINY_TEXT_HASH = "69408b5df7a3a8e69503db3752b2f8fa7831e158ce5e35d238f84f77babd9d00"
DEFAULT_TINY_ABS_SUMS = {
    "demo-au-FRM": 36657.0147, "demo-clip-UTT": 18161.5486, "demo-face-UTT": 4720.34, "demo-hubert-UTT": 27858.321,
    "demo-internvl-UTT": 36572.3828, "demo-macbert-UTT": 2301.0211, "demo-roberta-UTT": 27560.8036,
    "demo-wav2vec2-UTT": 9213.616,
}


def tree_hash(root, arrays=True):
    """Hash of every file's relative path (with '/') and bytes, in sorted order (without .npy files if not arrays)."""
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            if not arrays and f.endswith(".npy"):
                continue
            path = os.path.join(dirpath, f)
            h.update(os.path.relpath(path, root).replace(os.sep, "/").encode() + b"\0")
            with open(path, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


def abs_sums(root):
    """{feature: sum of |x| over its files} of a demo tree."""
    features = os.path.join(root, "features")
    return {feat: sum(float(np.abs(np.load(os.path.join(features, feat, f)).astype(np.float64)).sum())
                      for f in sorted(os.listdir(os.path.join(features, feat)))) for feat in sorted(os.listdir(features))}


def test_default_output_is_the_same_as_before(tmp_path):
    script.main(["--out", str(tmp_path / "a"), *TINY])
    script.main(["--out", str(tmp_path / "b"), *TINY, "--structure", "default"])
    assert tree_hash(tmp_path / "a") == tree_hash(tmp_path / "b")
    assert tree_hash(tmp_path / "a", arrays=False) == DEFAULT_TINY_TEXT_HASH
    sums = abs_sums(tmp_path / "a")
    assert sums.keys() == DEFAULT_TINY_ABS_SUMS.keys()
    for feat, expected in DEFAULT_TINY_ABS_SUMS.items():
        assert sums[feat] == pytest.approx(expected, rel=1e-6), feat


def test_alt_structure_layout_prior_and_features(tmp_path):
    out = tmp_path / "alt"
    script.main(["--out", str(out), "--structure", "alt", "--n_labeled", "600", "--n_unlabeled", "0", "--n_test", "0"])
    labels = pd.read_csv(out / "labels.csv")
    assert list(labels.columns) == ["name", "discrete", "valence"]
    assert labels["name"].str.startswith("alt_").all()
    counts = labels["discrete"].value_counts()
    assert counts["surprise"] > counts["worried"] > counts["neutral"]  # reversed MER prior
    meta = json.loads((out / "DEMO_DATA.json").read_text())
    assert meta["structure"] == "alt" and meta["vlm_answers"] is False
    specs = script.STRUCTURES["alt"]["features"]
    assert sorted(os.listdir(out / "features")) == sorted(specs)
    assert len(specs) < len(script.FEATURES["demo"])
    for feat, (_, _, dim, _) in specs.items():
        files = sorted(os.listdir(out / "features" / feat))
        assert len(files) == 600
        x = np.load(out / "features" / feat / files[0])
        assert x.shape == (dim,) and x.dtype == np.float32 and np.isfinite(x).all()
    assert not (out / "vlm_answers").exists()
    assert set(labels["discrete"]) == set(MER_CLASSES)


def test_shared_noise_correlates_the_features_perception_noise():
    """alt passes a common noise to every feature: two features' perception noise correlate by c**2."""
    rng = np.random.default_rng(0)
    z, speaker = rng.normal(size=(4000, script.LATENT_DIM)), rng.integers(0, script.N_SPEAKERS, 4000)
    c = script.STRUCTURES["alt"]["shared_noise"]
    common = rng.standard_normal(z.shape)

    def unit_corr(shared):
        _, ua = script.observe(np.random.default_rng(1), "text", 8, 1.0, z, speaker, shared=shared)
        _, ub = script.observe(np.random.default_rng(2), "text", 8, 1.0, z, speaker, shared=shared)
        return np.corrcoef(ua[:, 0], ub[:, 0])[0, 1]

    assert abs(unit_corr((c, common)) - c**2) < 0.05
    assert abs(unit_corr(None)) < 0.05


def test_unknown_structure_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run_main(script.main, ["--out", str(tmp_path / "x"), "--structure", "weird"], capsys)
    assert code == 2 and "--structure" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()
