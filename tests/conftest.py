"""Shared fixtures: the repository on sys.path and a tiny generated project (features, split, config)."""
import os
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import config  # noqa: E402
from toolkit.io import save_split  # noqa: E402

TINY_FEATURES = {"tiny-video-UTT": ("video", 12), "tiny-audio-UTT": ("audio", 8), "tiny-text-UTT": ("text", 6)}


def make_tiny_project(root, n=120, seed=0, n_valid=30):
    """Write per-sample .npy folders whose class signal is learnable, and a split dict; return paths."""
    rng = np.random.default_rng(seed)
    classes = config.EMO_RULE["MER"]
    names = [f"clip_{i:04d}" for i in range(n)]
    labels = rng.integers(0, len(classes), n)
    folders = {}
    for k, (feat, (modality, dim)) in enumerate(TINY_FEATURES.items()):
        centers = rng.normal(0, 1.5 - 0.4 * k, (len(classes), dim))
        folder = os.path.join(root, "features", feat)
        os.makedirs(folder)
        for name, y in zip(names, labels):
            np.save(os.path.join(folder, name + ".npy"), (centers[y] + rng.normal(0, 1, dim)).astype(np.float32))
        folders[feat] = (modality, dim, folder)
    emos = [classes[y] for y in labels]
    vals = [float(v) for v in rng.normal(0, 2, n)]
    split_dir = os.path.join(root, "train_lst")
    info = lambda sl: {"names": names[sl], "emos": emos[sl], "vals": vals[sl]}  # noqa: E731
    save_split(os.path.join(split_dir, "seed0.npy"), info(slice(n_valid, n)), info(slice(0, n_valid)))
    return {"root": str(root), "names": names, "emos": emos, "vals": vals, "folders": folders, "train_lst": split_dir}


@pytest.fixture
def tiny_project(tmp_path, monkeypatch):
    """A tiny project registered in config.py's feature dicts (restored after the test)."""
    project = make_tiny_project(tmp_path)
    dicts = {"video": {}, "audio": {}, "text": {}}
    for feat, (modality, dim, folder) in project["folders"].items():
        dicts[modality][feat] = [dim, folder]
    monkeypatch.setattr(config, "FEAT_VIDEO_DICT", dicts["video"])
    monkeypatch.setattr(config, "FEAT_AUDIO_DICT", dicts["audio"])
    monkeypatch.setattr(config, "FEAT_TEXT_DICT", dicts["text"])
    monkeypatch.setattr(config, "DEFAULT_FEATURES", list(TINY_FEATURES))
    project["argv"] = ["--train_lst", project["train_lst"], "--cache_dir", str(tmp_path / "cache"),
                       "--run_dir", str(tmp_path / "run"), "--no_progress"]
    return project


FRAME_FEATURE = ("tiny-au-FRM", "video", 5)


def add_frame_feature(project, seed=1, t_range=(3, 30)):
    """Add a frame-level feature folder (T, 5) per clip whose class is in the *time* of a bump, and register it."""
    rng = np.random.default_rng(seed)
    classes = config.EMO_RULE["MER"]
    name, modality, dim = FRAME_FEATURE
    folder = os.path.join(project["root"], "features", name)
    os.makedirs(folder)
    for clip, emo in zip(project["names"], project["emos"]):
        t = int(rng.integers(*t_range))
        apex = (classes.index(emo) + 0.5) / len(classes)
        time = (np.arange(t) + 0.5) / t
        frames = np.exp(-0.5 * ((time - apex) / 0.1) ** 2)[:, None] * np.ones(dim) + rng.normal(0, 0.2, (t, dim))
        np.save(os.path.join(folder, clip + ".npy"), frames.astype(np.float32))
    project["folders"][name] = (modality, dim, folder)
    config.FEAT_VIDEO_DICT[name] = [dim, folder]
    return name


@pytest.fixture
def frame_project(tiny_project):
    """The tiny project plus a registered frame-level feature ``tiny-au-FRM`` (T = 3..29, C = 5)."""
    add_frame_feature(tiny_project)
    return tiny_project


def registered_env(project, tmp_path):
    """Environment for a subprocess that sees ``project``'s features in config.py (through a sitecustomize
    module on PYTHONPATH), as the in-process fixture does with monkeypatch."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    dicts = {"video": {}, "audio": {}, "text": {}}
    for feat, (modality, dim, folder) in project["folders"].items():
        dicts[modality][feat] = [dim, folder]
    lines = ["import config"] + [f"config.FEAT_{modality.upper()}_DICT = {entries!r}" for modality, entries in dicts.items()]
    lines.append(f"config.DEFAULT_FEATURES = {list(project['folders'])!r}")
    (site / "sitecustomize.py").write_text("\n".join(lines) + "\n")
    return {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}"}


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """Tiny random Hugging Face encoders of every kind, saved as checkpoint folders: {kind: path}."""
    from preprocess.make_demo_encoders import build_encoder

    root = tmp_path_factory.mktemp("encoders")
    kinds = ("hubert", "wav2vec2", "wavlm", "data2vec-audio", "whisper", "bert", "roberta", "gpt2", "clip", "dinov2",
             "vit", "videomae")
    return {kind: build_encoder(kind, str(root / kind), hidden=16, layers=2) for kind in kinds}
