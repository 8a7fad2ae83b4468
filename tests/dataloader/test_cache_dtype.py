"""float16 packed features and the memory-mapped cache: same batches (float32 on the device), half the bytes."""
import os

import numpy as np
import pytest
import torch

import train as train_script
from dataloader import DeviceBatches
from dataloader.batches import MappedFeature, load_split_sets
from tests.conftest import project_registry
from toolkit.errors import UserError
from toolkit.tables import MER_CLASSES

CLASSES = list(MER_CLASSES)


def load(project, features=None, **kwargs):
    specs = project_registry(project).lookup(features or list(project["folders"]))
    return load_split_sets(os.path.join(project["train_lst"], "seed0.npy"), specs, CLASSES, torch.device("cpu"), **kwargs)


def first_batch(sample_set):
    return next(iter(DeviceBatches(sample_set, 16, shuffle=True, seed=3)))


@pytest.mark.parametrize("mmap", [False, True])
def test_float16_and_mmap_give_float32_batches_of_the_same_values(tiny_project, tmp_path, mmap):
    cache = str(tmp_path / "cache")
    ref, _ = load(tiny_project, cache_dir=cache)
    half, _ = load(tiny_project, cache_dir=cache, cache_dtype="float16", mmap=mmap)
    again, _ = load(tiny_project, cache_dir=cache, cache_dtype="float16", mmap=mmap)  # from the float16 cache
    name = "tiny-video-UTT"
    assert isinstance(half.feats[name], MappedFeature) == mmap
    a, b, c = (first_batch(s)["feats"][name] for s in (ref, half, again))
    assert b.dtype == torch.float32 and torch.equal(b, c)
    torch.testing.assert_close(a, b, atol=1e-2, rtol=1e-3)  # float16 rounding
    assert "× 2 bytes" in half.memory_note() and "× 4 bytes" in ref.memory_note()
    assert ("memory-mapped" in half.memory_note()) == mmap
    assert len([f for f in os.listdir(cache) if f.endswith("-float16.npy")]) == 3  # float32 caches are kept apart


def test_mmap_batches_equal_in_memory_batches(tiny_project, tmp_path):
    cache = str(tmp_path / "cache")
    mem, _ = load(tiny_project, cache_dir=cache)
    mapped, _ = load(tiny_project, cache_dir=cache, mmap=True)
    for x, y in zip(DeviceBatches(mem, 32, shuffle=True), DeviceBatches(mapped, 32, shuffle=True)):
        assert all(torch.equal(x["feats"][k], y["feats"][k]) for k in x["feats"])


def test_frame_features_in_float16(frame_project, tmp_path):
    train, _ = load(frame_project, ["tiny-au-FRM"], cache_dir=str(tmp_path / "c"), cache_dtype="float16", mmap=True)
    frames = first_batch(train)["feats"]["tiny-au-FRM"]
    assert frames.x.dtype == torch.float32 and frames.valid.any()


def test_bad_cache_options_are_user_errors(tiny_project, tmp_path):
    with pytest.raises(UserError, match="--mmap .* --cache_dir"):
        load(tiny_project, mmap=True)
    big = os.path.join(tiny_project["folders"]["tiny-text-UTT"][2], tiny_project["names"][0] + ".npy")
    np.save(big, np.full(6, 1e6, np.float32))
    with pytest.raises(UserError, match="float16's range"):
        load(tiny_project, cache_dtype="float16")


def test_train_with_float16_mmap_prints_memory_and_matches_float32(tiny_project, tmp_path, capsys):
    common = tiny_project["argv"] + ["--epochs", "2", "--no_plots"]
    full = train_script.run(train_script.parse_args(common + ["--run_dir", str(tmp_path / "a")]))
    half = train_script.run(train_script.parse_args(common + ["--run_dir", str(tmp_path / "b"), "--cache_dtype", "float16", "--mmap"]))
    out = capsys.readouterr().out
    assert "features: 120 clips × 26 dims × 4 bytes" in out and "120 clips × 26 dims × 2 bytes" in out
    assert abs(full["loss"] - half["loss"]) < 0.05
