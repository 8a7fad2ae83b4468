import os

import numpy as np
import pytest

from dataloader import kinds
from dataloader.feature_store import load_features
from dataloader.registry import Registry
from tests.conftest import project_registry
from toolkit.errors import UserError


def specs_of(project):
    return project_registry(project).lookup(list(project["folders"]))


def lookup(project, names):
    return project_registry(project).lookup(names)


def test_loads_every_file_once_in_one_array(tiny_project, tmp_path):
    specs = specs_of(tiny_project)
    names = tiny_project["names"][::-1]
    arrays, rows = load_features(specs, names, str(tmp_path / "cache"))
    for spec in specs:
        assert arrays[spec.name].dtype == np.float32 and arrays[spec.name].flags["C_CONTIGUOUS"]
        for i in (0, 17, len(names) - 1):
            expected = np.load(os.path.join(spec.folder, names[i] + ".npy"))
            np.testing.assert_array_equal(arrays[spec.name][rows[i]], expected)


def test_second_load_uses_the_cache_and_edits_invalidate_it(tiny_project, tmp_path, monkeypatch):
    specs = specs_of(tiny_project)
    names = tiny_project["names"]
    cache = str(tmp_path / "cache")
    first, _ = load_features(specs, names, cache)
    arrays = sorted(f for f in os.listdir(cache) if f.endswith(".npy"))
    assert len(arrays) == len(specs)  # one packed array per feature, each with its checksum sidecar
    assert sorted(os.listdir(cache)) == sorted(arrays + [f + ".sum.json" for f in arrays])

    def no_reads(*_):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(kinds.UtteranceKind, "pack", no_reads)
    second, _ = load_features(specs, list(reversed(names)), cache)  # same set, other order: same cache
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    monkeypatch.undo()

    spec = specs[0]
    path = os.path.join(spec.folder, names[3] + ".npy")
    np.save(path, np.full(spec.dim, 7.0, dtype=np.float32))
    os.utime(path, ns=(1, 1))
    third, rows = load_features([spec], names, cache)
    assert (third[spec.name][rows[3]] == 7.0).all()


def test_unknown_feature_lists_known_ones(tiny_project):
    with pytest.raises(UserError, match=r"unknown feature 'nope'.*known: tiny-audio-UTT"):
        lookup(tiny_project, ["nope"])


def test_unknown_feature_suggests_the_closest_and_shortens_the_list(tiny_project):
    folders = {name: folder for name, (_, _, folder) in tiny_project["folders"].items()}
    folder = folders["tiny-audio-UTT"]
    registry = Registry.from_dicts(
        video={"tiny-video-UTT": [12, folders["tiny-video-UTT"]]}, text={"tiny-text-UTT": [6, folders["tiny-text-UTT"]]},
        audio={"ha-hubert-UTT": [8, folder], **{f"other-{i:02d}-UTT": [8, folder] for i in range(30)}})
    with pytest.raises(UserError) as err:
        registry.lookup(["hv-hubert-UTT"])
    message = str(err.value)
    assert message.startswith("unknown feature 'hv-hubert-UTT' (did you mean 'ha-hubert-UTT'?)")
    known = message.split("known: ")[1]
    assert known.endswith(" and 13 more") and known.count(", ") == 19  # 20 shown of 33 (31 here, video and text)
    with pytest.raises(UserError) as err:
        registry.lookup(["zzzz"])
    assert "did you mean" not in str(err.value)


def test_feature_with_none_of_the_clips_points_to_another_data_set(tiny_project):
    spec = lookup(tiny_project, ["tiny-audio-UTT"])[0]
    with pytest.raises(UserError) as err:
        load_features([spec], ["other_0001", "other_0002"])
    message = str(err.value)
    assert "holds none of the 2 clips" in message and "another data set" in message and "--feat" in message
    assert "--allow_missing" not in message


def test_missing_folder_is_named(tiny_project):
    registry = Registry.from_dicts(video={"tiny-video-UTT": [12, "/no/such/folder"]})
    with pytest.raises(UserError, match="feature folder /no/such/folder for 'tiny-video-UTT' does not exist"):
        load_features(registry.lookup(["tiny-video-UTT"]), tiny_project["names"])


def test_missing_samples_are_counted_and_named(tiny_project):
    spec = lookup(tiny_project, ["tiny-audio-UTT"])[0]
    for name in tiny_project["names"][:7]:
        os.remove(os.path.join(spec.folder, name + ".npy"))
    with pytest.raises(UserError, match=r"7 of 120 samples have no .npy .*first: clip_0000, clip_0001"):
        load_features([spec], tiny_project["names"])


@pytest.mark.parametrize("bad, message", [
    (np.zeros(5, np.float32), r"clip_0009.npy has shape \(5,\), expected \(8,\)"),
    (np.full(8, np.nan, np.float32), r"1 files hold NaN/inf .*clip_0009.npy"),
])
def test_bad_files_are_named(tiny_project, bad, message):
    spec = lookup(tiny_project, ["tiny-audio-UTT"])[0]
    np.save(os.path.join(spec.folder, "clip_0009.npy"), bad)
    with pytest.raises(UserError, match=message):
        load_features([spec], tiny_project["names"])


def test_row_vector_files_are_squeezed(tiny_project):
    spec = lookup(tiny_project, ["tiny-audio-UTT"])[0]
    np.save(os.path.join(spec.folder, "clip_0002.npy"), np.ones((1, 8), np.float32))
    arrays, rows = load_features([spec], tiny_project["names"])
    assert (arrays[spec.name][rows[2]] == 1).all()


@pytest.mark.skipif(not hasattr(os, "preadv"), reason="the fast reader needs os.preadv")
@pytest.mark.parametrize("dtype", ["<f4", "<f8", ">f4"])
def test_fast_reader_reads_plain_files_and_refuses_others(tmp_path, dtype):
    from dataloader.feature_store import FeatureSpec
    from dataloader.npyfile import raw_reader

    values = np.arange(6, dtype=dtype)
    np.save(tmp_path / "a.npy", values)
    np.save(tmp_path / "b.npy", values[:5])  # another shape: another header
    np.save(tmp_path / "c.npy", values.astype("<f2"))
    (tmp_path / "d.npy").write_bytes((tmp_path / "a.npy").read_bytes() + b"\0")  # trailing byte
    read = raw_reader(FeatureSpec("f", 6, str(tmp_path), "video"), str(tmp_path / "a.npy"))
    assert read is not None, "a plain (dim,) file must take the fast path"
    row = np.zeros(6, np.float32)
    assert read(str(tmp_path / "a.npy"), row) and row.tolist() == values.astype(np.float32).tolist()
    for other in ("b", "c", "d", "missing"):
        assert not read(str(tmp_path / f"{other}.npy"), np.zeros(6, np.float32))


@pytest.mark.parametrize("dtype", ["<c8", "<U3", "|S3"])
def test_fast_reader_is_never_built_for_non_real_files(tmp_path, dtype):
    from dataloader.feature_store import FeatureSpec
    from dataloader.npyfile import raw_reader

    np.save(tmp_path / "a.npy", np.zeros(6, dtype=dtype))
    assert raw_reader(FeatureSpec("f", 6, str(tmp_path), "video"), str(tmp_path / "a.npy")) is None
