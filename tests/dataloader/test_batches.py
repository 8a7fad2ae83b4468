import os

import numpy as np
import pytest
import torch

from dataloader import DeviceBatches
from dataloader.batches import load_split_sets
from tests.conftest import project_registry
from toolkit.errors import UserError
from toolkit.io import TRAIN_KEY, VALID_KEY, save_npy, save_split
from toolkit.tables import MER_CLASSES

CLASSES = list(MER_CLASSES)


def load(project, path=None):
    path = path or os.path.join(project["train_lst"], "seed0.npy")
    return load_split_sets(path, project_registry(project).lookup(list(project["folders"])), CLASSES, torch.device("cpu"))


def test_sets_share_one_packed_array_and_batches_cover_each_sample_once(tiny_project):
    train, valid = load(tiny_project)
    assert len(train) == 90 and len(valid) == 30
    assert all(train.feats[k] is valid.feats[k] for k in train.feats)
    seen = torch.cat([b["index"] for b in DeviceBatches(train, 16, shuffle=True, seed=1)])
    assert sorted(seen.tolist()) == list(range(90))
    batch = next(iter(DeviceBatches(valid, 8)))
    np.testing.assert_array_equal(
        batch["feats"]["tiny-audio-UTT"][0].numpy(),
        np.load(os.path.join(tiny_project["folders"]["tiny-audio-UTT"][2], valid.names[0] + ".npy")),
    )
    assert batch["labels"][0].item() == CLASSES.index(tiny_project["emos"][0])


def test_shuffle_is_seeded():
    order = lambda seed: [b["index"].tolist() for b in DeviceBatches(_fake_set(20), 5, True, seed)]  # noqa: E731
    assert order(3) == order(3) and order(3) != order(4)


def _fake_set(n):
    from dataloader import SampleSet

    return SampleSet(names=[str(i) for i in range(n)], feats={"f": torch.zeros(n, 2)}, rows=torch.arange(n),
                     labels=torch.zeros(n, dtype=torch.long), vals=torch.zeros(n), weights=torch.ones(n))


def _write(project, train, valid, name="bad.npy"):
    path = os.path.join(project["train_lst"], name)
    save_split(path, train, valid)
    return path


def test_label_outside_classes(tiny_project):
    p = tiny_project
    path = _write(p, {"names": p["names"][:5], "emos": ["happy", "joy", "sad", "sad", "sad"]},
                  {"names": p["names"][5:8], "emos": ["sad"] * 3})
    with pytest.raises(UserError, match=rf"{TRAIN_KEY}: 1 labels are not one of .*'joy'; first sample 'clip_0001'"):
        load(p, path)


def test_duplicate_names(tiny_project):
    p = tiny_project
    path = _write(p, {"names": p["names"][:5], "emos": ["sad"] * 5}, {"names": p["names"][4:6], "emos": ["sad"] * 2})
    with pytest.raises(UserError, match=r"1 sample names appear more than once \(first: clip_0004\)"):
        load(p, path)


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    ([1, 2, 3], "must be a dict with keys"),
    ({TRAIN_KEY: {"names": [], "emos": []}, VALID_KEY: {"names": ["clip_0000"], "emos": ["sad"]}}, f"'{TRAIN_KEY}' is empty"),
    ({TRAIN_KEY: {"names": ["clip_0000"]}, VALID_KEY: {"names": ["clip_0001"], "emos": ["sad"]}}, "must be a dict with lists"),
])
def test_bad_split_files(tiny_project, content, message):
    path = os.path.join(tiny_project["train_lst"], "broken.npy")
    if content is not None:
        save_npy(path, np.array(content, dtype=object) if isinstance(content, list) else content)
    with pytest.raises(UserError, match=message):
        load(tiny_project, path)


def test_pseudo_flags_scale_weights_and_never_enter_validation(tiny_project):
    p = tiny_project
    path = _write(p, {"names": p["names"][:4], "emos": ["sad"] * 4, "pseudo": [False, True, True, False],
                      "weights": [1.0, 1.0, 0.5, 2.0]}, {"names": p["names"][4:6], "emos": ["sad"] * 2})
    specs = project_registry(p).lookup(list(p["folders"]))
    train, _ = load_split_sets(path, specs, CLASSES, torch.device("cpu"), pseudo_weight=0.3)
    assert torch.allclose(train.weights, torch.tensor([1.0, 0.3, 0.15, 2.0]))
    bad = _write(p, {"names": p["names"][:2], "emos": ["sad"] * 2},
                 {"names": p["names"][4:6], "emos": ["sad"] * 2, "pseudo": [True, False]}, "bad2.npy")
    with pytest.raises(UserError, match=f"{VALID_KEY} holds pseudo-labeled samples"):
        load(p, bad)


def test_soft_targets_are_one_hot_where_a_row_has_no_probs_and_follow_the_batch_order(tiny_project):
    p = tiny_project
    soft = [0.5, 0.0, 0.0, 0.5, 0.0, 0.0]
    path = _write(p, {"names": p["names"][:4], "emos": ["sad", "neutral", "angry", "happy"], "pseudo": [False, True, True, False],
                      "probs": [None, soft, [0, 0, 1.0, 0, 0, 0], None]}, {"names": p["names"][4:6], "emos": ["sad"] * 2})
    train, valid = load(p, path)
    assert valid.targets is None
    expected = torch.tensor([np.eye(6)[CLASSES.index("sad")].tolist(), soft, np.eye(6)[2].tolist(), np.eye(6)[CLASSES.index("happy")].tolist()])
    assert torch.allclose(train.targets, expected.float())
    batches = list(DeviceBatches(train, 3, shuffle=True, seed=5))
    assert all(torch.equal(b["targets"], expected.float()[b["index"]]) for b in batches)
    assert "targets" not in next(iter(DeviceBatches(valid, 2)))
