"""The packed cache is checked on load: a damaged or edited cache is rebuilt with one note; content edits
that keep a feature file's size and mtime still invalidate it (ctime)."""
import glob
import os
import time

import numpy as np
import pytest

from dataloader.feature_store import Ragged, load_feature, load_features
from tests.conftest import project_registry


def expected_rows(spec, names):
    return np.stack([np.load(os.path.join(spec.folder, n + ".npy")) for n in names])


def cache_file(cache, ext=".npy"):
    (path,) = glob.glob(os.path.join(cache, "*" + ext))
    return path


def built(project, tmp_path, feature="tiny-audio-UTT"):
    spec = project_registry(project).lookup([feature])[0]
    cache = str(tmp_path / "cache")
    load_features([spec], project["names"], cache)
    return spec, cache


def reload_with_note(spec, names, cache, capsys, why, mmap=False):
    """Load again; the cache must be rebuilt with one stderr line naming it and ``why``, and serve the files' values."""
    path = cache_file(cache, ".npz" if spec.frame_level else ".npy")
    capsys.readouterr()
    packed, _ = load_feature(spec, sorted(names), cache, mmap=mmap)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and path in err[0] and why in err[0], err
    again, _ = load_feature(spec, sorted(names), cache, mmap=mmap)  # the rebuilt cache passes its checks
    assert capsys.readouterr().err == ""
    return packed, again


def test_truncated_cache_is_rebuilt(tiny_project, tmp_path, capsys):
    spec, cache = built(tiny_project, tmp_path)
    path = cache_file(cache)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 100)
    names = sorted(tiny_project["names"])
    packed, again = reload_with_note(spec, names, cache, capsys, "truncated")
    np.testing.assert_array_equal(packed, expected_rows(spec, names))
    np.testing.assert_array_equal(again, expected_rows(spec, names))


def test_truncated_cache_is_rebuilt_with_mmap(tiny_project, tmp_path, capsys):
    spec, cache = built(tiny_project, tmp_path)
    path = cache_file(cache)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    names = sorted(tiny_project["names"])
    packed, again = reload_with_note(spec, names, cache, capsys, "truncated", mmap=True)
    assert isinstance(again, np.memmap)
    np.testing.assert_array_equal(again, expected_rows(spec, names))


@pytest.mark.parametrize("edit, why", [("reorder", "checksum does not match"), ("nan", "NaN/inf")])
def test_in_place_edits_are_detected(tiny_project, tmp_path, capsys, edit, why):
    spec, cache = built(tiny_project, tmp_path)
    packed = np.load(cache_file(cache), mmap_mode="r+")
    if edit == "reorder":
        packed[[0, 1]] = packed[[1, 0]]
    else:
        packed[5, 2] = np.nan
    packed.flush()
    del packed
    names = sorted(tiny_project["names"])
    rebuilt, _ = reload_with_note(spec, names, cache, capsys, why)
    np.testing.assert_array_equal(rebuilt, expected_rows(spec, names))


def test_missing_checksum_file_rebuilds(tiny_project, tmp_path, capsys):
    spec, cache = built(tiny_project, tmp_path)
    os.remove(cache_file(cache) + ".sum.json")
    reload_with_note(spec, sorted(tiny_project["names"]), cache, capsys, "checksum file")
    assert os.path.exists(cache_file(cache) + ".sum.json")


def test_frame_cache_with_bad_offsets_is_rebuilt(frame_project, tmp_path, capsys):
    spec, cache = built(frame_project, tmp_path, "tiny-au-FRM")
    path = cache_file(cache, ".npz")
    with np.load(path) as data:
        values, offsets = data["values"], data["offsets"].copy()
    offsets[[3, 4]] = offsets[[4, 3]]  # not monotone any more
    with open(path, "wb") as f:
        np.savez(f, values=values, offsets=offsets)
    names = sorted(frame_project["names"])
    packed, _ = reload_with_note(spec, names, cache, capsys, "offsets")
    assert isinstance(packed, Ragged)
    for i in (0, 3, 4, len(names) - 1):
        np.testing.assert_array_equal(packed[i], np.load(os.path.join(spec.folder, names[i] + ".npy")))


def test_edit_keeping_size_and_mtime_serves_new_data(tiny_project, tmp_path, capsys):
    spec, cache = built(tiny_project, tmp_path)
    names = tiny_project["names"]
    path = os.path.join(spec.folder, names[3] + ".npy")
    before = os.stat(path)
    np.save(path, np.full(spec.dim, 7.0, dtype=np.float32))  # same shape and dtype: same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # what cp -p / rsync -t do
    while os.stat(path).st_ctime_ns == before.st_ctime_ns:  # a coarse clock: wait for the ctime to move
        time.sleep(0.01)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    arrays, rows = load_features([spec], names, cache)
    assert (arrays[spec.name][rows[3]] == 7.0).all()
    assert capsys.readouterr().err == ""  # a new key, not a damaged cache
