"""Frame-level features: config entries, ragged packing + cache, padded/sampled batches, missing files."""
import os

import numpy as np
import pytest
import torch

from dataloader import DeviceBatches, FrameTensor, Ragged, kinds
from dataloader.batches import load_split_sets
from dataloader.feature_store import load_features, load_store
from tests.conftest import project_registry, write_project_config
from toolkit.errors import UserError
from toolkit.tables import MER_CLASSES

CLASSES = list(MER_CLASSES)


def lookup(project, names, extra=None):
    """FeatureSpecs of ``names`` from the project's config.py, rewritten with ``extra`` entries."""
    if extra:
        write_project_config(project, extra=extra)
    return project_registry(project).lookup(names)


def test_level_from_suffix_or_third_field(tiny_project):
    extra = {"of-AU-FRM": ["video", [35, "/x"]], "frames": ["video", [8, "/x", "frm"]],
             "of-sel": ["video", [17, "/x", {"level": "frm", "columns": "-35:-18"}]],
             "of-mean": ["video", [35, "/x", {"columns": "-35:", "pool": "mean"}]]}
    specs = {s.name: s for s in lookup(tiny_project, ["of-AU-FRM", "frames", "of-sel", "of-mean", "tiny-video-UTT"], extra)}
    assert [specs[n].level for n in specs] == ["frm", "frm", "frm", "utt", "utt"]
    assert specs["of-sel"].columns == "-35:-18" and specs["of-mean"].pool == "mean"
    with pytest.raises(UserError, match=r"level 'clip' must be one of utt, frm"):
        lookup(tiny_project, ["bad"], {"bad": ["video", [8, "/x", {"level": "clip"}]]})
    with pytest.raises(UserError, match=r"columns 'last35' is not a slice"):
        lookup(tiny_project, ["bad"], {"bad": ["video", [8, "/x", {"columns": "last35"}]]})


def test_ragged_packing_round_trip_and_cache(frame_project, tmp_path, monkeypatch):
    spec = lookup(frame_project, ["tiny-au-FRM"])[0]
    names = frame_project["names"][::-1]
    cache = str(tmp_path / "cache")
    arrays, rows = load_features([spec], names, cache)
    ragged = arrays["tiny-au-FRM"]
    assert isinstance(ragged, Ragged) and ragged.values.dtype == np.float32 and ragged.offsets[0] == 0
    assert ragged.offsets[-1] == len(ragged.values) and len(ragged) == len(names)
    for i in (0, 5, len(names) - 1):
        np.testing.assert_array_equal(ragged[rows[i]], np.load(os.path.join(spec.folder, names[i] + ".npy")))
    assert [f for f in os.listdir(cache) if f.endswith(".npz")]

    def no_reads(*_):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(kinds.FrameKind, "pack", no_reads)
    again, _ = load_features([spec], names, cache)
    np.testing.assert_array_equal(again["tiny-au-FRM"].values, ragged.values)
    np.testing.assert_array_equal(again["tiny-au-FRM"].offsets, ragged.offsets)


def test_column_selection_and_mean_pool(frame_project):
    folder = frame_project["folders"]["tiny-au-FRM"][2]
    extra = {"last2-FRM": ["video", [2, folder, {"columns": "-2:"}]], "au-mean": ["video", [5, folder, {"pool": "mean"}]]}
    names = frame_project["names"][:10]
    arrays, rows = load_features(lookup(frame_project, ["last2-FRM", "au-mean"], extra), names)
    raw = np.load(os.path.join(folder, names[3] + ".npy"))
    np.testing.assert_array_equal(arrays["last2-FRM"][rows[3]], raw[:, -2:])
    np.testing.assert_allclose(arrays["au-mean"][rows[3]], raw.mean(0), rtol=1e-6)


def test_padding_sampling_and_mask():
    lengths = [3, 10, 0, 7]
    values = torch.arange(sum(lengths), dtype=torch.float32).unsqueeze(1).repeat(1, 2)
    offsets = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.long)
    frames = FrameTensor(values, offsets)
    x, valid = frames.gather(torch.tensor([0, 3]), max_frames=8)
    assert x.shape == (2, 7, 2) and valid.sum(1).tolist() == [3, 7]  # padded to the batch's longest clip
    assert x[0, :3, 0].tolist() == [0, 1, 2] and (x[0, 3:] == 0).all()
    x, valid = frames.gather(torch.tensor([1, 2]), max_frames=4)  # T = 10 sampled down to 4; T = 0 all padding
    assert x.shape == (2, 4, 2) and valid[0].all() and not valid[1].any()
    assert x[0, :, 0].tolist() == [3 + j * 10 // 4 for j in range(4)]  # floor(j * T / L)
    # a clip's frames do not depend on its batch
    alone, _ = frames.gather(torch.tensor([0]), max_frames=8)
    together, _ = frames.gather(torch.tensor([1, 0]), max_frames=8)
    assert torch.equal(alone[0], together[1, :3])
    rows = frames.frame_rows(torch.tensor([3, 0]))
    assert rows.tolist() == [13, 14, 15, 16, 17, 18, 19, 0, 1, 2]


def test_batches_carry_frames(frame_project):
    specs = lookup(frame_project, ["tiny-audio-UTT", "tiny-au-FRM"])
    train, valid = load_split_sets(os.path.join(frame_project["train_lst"], "seed0.npy"), specs, CLASSES, torch.device("cpu"))
    assert train.present is None
    batch = next(iter(DeviceBatches(valid, 8, max_frames=6)))
    x, mask = batch["feats"]["tiny-au-FRM"]
    assert batch["feats"]["tiny-audio-UTT"].shape == (8, 8) and x.shape[0] == 8 and x.shape[1] <= 6 and x.shape[2] == 5
    assert mask.any(1).all() and batch["present"] is None


@pytest.mark.parametrize("bad, message", [
    (np.zeros(5, np.float32), r"clip_0009.npy has shape \(5,\), but frame-level feature 'tiny-au-FRM' needs \(T, C\)"),
    (np.zeros((4, 3), np.float32), r"clip_0009.npy has shape \(4, 3\), expected \(T, 5\)"),
    (np.zeros((0, 5), np.float32), r"clip_0009.npy has 0 frames .*--allow_missing"),
    (np.full((4, 5), np.inf, np.float32), r"1 files hold NaN/inf values \(first: .*clip_0009.npy\)"),
])
def test_bad_frame_files_are_one_line_errors(frame_project, bad, message):
    spec = lookup(frame_project, ["tiny-au-FRM"])[0]
    np.save(os.path.join(spec.folder, "clip_0009.npy"), bad)
    with pytest.raises(UserError, match=message) as err:
        load_features([spec], frame_project["names"])
    assert "\n" not in str(err.value)


def test_missing_files_need_allow_missing(frame_project, tmp_path):
    specs = lookup(frame_project, ["tiny-audio-UTT", "tiny-au-FRM"])
    gone = {"tiny-audio-UTT": ["clip_0000", "clip_0040"], "tiny-au-FRM": ["clip_0001", "clip_0041"]}
    for feat, clips in gone.items():
        for clip in clips:
            os.remove(os.path.join(frame_project["folders"][feat][2], clip + ".npy"))
    names = frame_project["names"]
    with pytest.raises(UserError, match=r"2 of 120 samples have no .npy.*--allow_missing"):
        load_store(specs, names)
    store = load_store(specs, names, str(tmp_path / "cache"), allow_missing=True)
    assert store.missing_counts() == {"tiny-audio-UTT": 2, "tiny-au-FRM": 2}
    i = names.index("clip_0000")
    assert not store.present["tiny-audio-UTT"][store.rows[i]] and (store.arrays["tiny-audio-UTT"][store.rows[i]] == 0).all()
    j = names.index("clip_0001")
    assert len(store.arrays["tiny-au-FRM"][store.rows[j]]) == 0
    # the split: clip_0040, clip_0041 are training clips, clip_0000/0001 validation clips (first 30)
    train, valid = load_split_sets(os.path.join(frame_project["train_lst"], "seed0.npy"), specs, CLASSES,
                                   torch.device("cpu"), allow_missing=True)
    assert train.missing_counts() == {"tiny-audio-UTT": 1, "tiny-au-FRM": 1}
    assert valid.missing_counts() == {"tiny-audio-UTT": 1, "tiny-au-FRM": 1}
    batch = next(iter(DeviceBatches(valid, 4)))
    assert batch["present"]["tiny-audio-UTT"].tolist() == [False, True, True, True]
    assert batch["present"]["tiny-au-FRM"].tolist() == [True, False, True, True]


def test_clip_missing_every_feature_is_named(frame_project):
    specs = lookup(frame_project, ["tiny-audio-UTT", "tiny-au-FRM"])
    for feat in ("tiny-audio-UTT", "tiny-au-FRM"):
        os.remove(os.path.join(frame_project["folders"][feat][2], "clip_0007.npy"))
    with pytest.raises(UserError, match=r"1 clips have no file for any of the features tiny-audio-UTT, tiny-au-FRM \(first: clip_0007\)"):
        load_store(specs, frame_project["names"], allow_missing=True)
