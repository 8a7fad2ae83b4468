"""Shared fixtures: the repository on sys.path and a tiny generated project (features, split, config)."""
import os
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from dataloader.registry import CONFIG_VARIABLE  # noqa: E402
from toolkit.io import save_split  # noqa: E402
from toolkit.tables import MER_CLASSES  # noqa: E402

TINY_FEATURES = {"tiny-video-UTT": ("video", 12), "tiny-audio-UTT": ("audio", 8), "tiny-text-UTT": ("text", 6)}


def make_tiny_project(root, n=120, seed=0, n_valid=30):
    """Write per-sample .npy folders whose class signal is learnable, and a split dict; return paths."""
    rng = np.random.default_rng(seed)
    classes = list(MER_CLASSES)
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


def write_project_config(project, extra=None, default_features=None):
    """Write the project's own config.py (its feature folders; ``extra`` {name: [modality, entry]} besides) and
    return its path. Every value goes through repr: the file is data for the registry."""
    dicts = {"video": {}, "audio": {}, "text": {}}
    for feat, (modality, dim, folder) in project["folders"].items():
        dicts[modality][feat] = [dim, folder]
    for feat, (modality, entry) in (extra or {}).items():
        dicts[modality][feat] = entry
    features = default_features or project.get("default_features") or list(TINY_FEATURES)
    lines = [f"EMO_RULE = {{'MER': {list(MER_CLASSES)!r}}}"]
    lines += [f"FEAT_{modality.upper()}_DICT = {entries!r}" for modality, entries in dicts.items()]
    lines.append(f"DEFAULT_FEATURES = {list(features)!r}")
    path = os.path.join(project["root"], "config.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    project["config"] = path
    return path


def project_registry(project):
    from dataloader.registry import Registry

    return Registry.from_config(project["config"])


@pytest.fixture
def tiny_project(tmp_path, monkeypatch):
    """A tiny project with its own config.py, which every script reads ($MER_CONFIG; restored after the test)."""
    project = make_tiny_project(tmp_path)
    monkeypatch.setenv(CONFIG_VARIABLE, write_project_config(project))
    project["argv"] = ["--train_lst", project["train_lst"], "--cache_dir", str(tmp_path / "cache"),
                       "--run_dir", str(tmp_path / "run"), "--no_progress"]
    return project


FRAME_FEATURE = ("tiny-au-FRM", "video", 5)


def add_frame_feature(project, seed=1, t_range=(3, 30)):
    """Add a frame-level feature folder (T, 5) per clip whose class is in the *time* of a bump, and register it."""
    rng = np.random.default_rng(seed)
    classes = list(MER_CLASSES)
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
    if "config" in project:
        write_project_config(project)
    return name


@pytest.fixture
def frame_project(tiny_project):
    """The tiny project plus a registered frame-level feature ``tiny-au-FRM`` (T = 3..29, C = 5)."""
    add_frame_feature(tiny_project)
    return tiny_project


def registered_env(project, tmp_path):
    """Environment for a subprocess that reads ``project``'s own config.py (all its features as defaults)."""
    path = write_project_config(project, default_features=list(project["folders"]))
    return {**os.environ, "PYTHONPATH": REPO, CONFIG_VARIABLE: path}


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """Tiny random Hugging Face encoders of every kind, saved as checkpoint folders: {kind: path}."""
    from preprocess.make_demo_encoders import build_encoder

    root = tmp_path_factory.mktemp("encoders")
    kinds = ("hubert", "wav2vec2", "wavlm", "data2vec-audio", "whisper", "bert", "roberta", "gpt2", "clip", "dinov2",
             "vit", "videomae", "qwen2-audio", "internvl")
    return {kind: build_encoder(kind, str(root / kind), hidden=16, layers=2) for kind in kinds}
