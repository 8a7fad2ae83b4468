"""Labeled sample sets over packed feature tensors, and batches sliced from them on the device."""
import dataclasses

import numpy as np
import torch

from dataloader.feature_store import feature_of, load_features
from toolkit.errors import UserError
from toolkit.io import load_split


@dataclasses.dataclass
class SampleSet:
    """Samples of one split: rows into shared packed feature tensors plus their targets (all on one device)."""

    names: list
    feats: dict  # {feature: (M, C) tensor shared by every set built from the same load}
    rows: torch.Tensor  # (N,) long: row of each sample in the packed tensors
    labels: torch.Tensor  # (N,) long class indices (-1 when unlabeled)
    vals: torch.Tensor  # (N,) float valence, NaN where unknown
    weights: torch.Tensor  # (N,) float per-sample loss weight

    def __len__(self):
        return len(self.names)


def encode_labels(emos, classes, split_path, set_key, names):
    index = {c: i for i, c in enumerate(classes)}
    for name, emo in zip(names, emos):
        if emo not in index:
            raise UserError(
                f"split file {split_path}: sample '{name}' in {set_key} has label {emo!r}, not one of {classes}; "
                f"fix the label CSV or pick the matching --emo_rule"
            )
    return [index[e] for e in emos]


def build_sample_set(info, classes, feats, rows, split_path="<split>", set_key="train_info", pseudo_weight=1.0):
    """A SampleSet from a split-dict section ``info`` (names, emos[, vals, weights, pseudo]).

    Optional per-sample ``weights`` scale the loss; samples flagged in ``pseudo`` (pseudo-labels) are
    further scaled by ``pseudo_weight``. Splits without these keys are the plain format users exchange."""
    names = list(info["names"])
    n = len(names)
    device = next(iter(feats.values())).device
    labels = encode_labels(info["emos"], classes, split_path, set_key, names) if info.get("emos") is not None else [-1] * n
    vals = info.get("vals")
    vals = np.full(n, np.nan) if vals is None else np.asarray(vals, dtype=np.float64)
    weights = np.ones(n) if info.get("weights") is None else np.asarray(info["weights"], dtype=np.float64)
    if info.get("pseudo") is not None:
        weights = np.where(np.asarray(info["pseudo"], dtype=bool), weights * pseudo_weight, weights)
    return SampleSet(
        names=names,
        feats=feats,
        rows=torch.as_tensor(rows, dtype=torch.long, device=device),
        labels=torch.as_tensor(labels, dtype=torch.long, device=device),
        vals=torch.as_tensor(vals, dtype=torch.float32, device=device),
        weights=torch.as_tensor(weights, dtype=torch.float32, device=device),
    )


def check_unique(names, where):
    seen, dups = set(), []
    for name in names:
        if name in seen:
            dups.append(name)
        seen.add(name)
    if dups:
        raise UserError(f"{where}: {len(dups)} sample names appear more than once (first: {', '.join(dups[:5])}); each clip must be listed once")


def load_split_sets(split_path, specs, classes, device, cache_dir=None, experts=None, pseudo_weight=1.0):
    """(train SampleSet, valid SampleSet) of a split dict file, features loaded once onto ``device``.

    ``experts`` (keys from ``expert_names``) adds aliases so repeated experts share one tensor."""
    split = load_split(split_path)
    train_info, valid_info = split["train_info"], split["valid_info"]
    names = list(train_info["names"]) + list(valid_info["names"])
    check_unique(names, f"split file {split_path} (train + valid)")
    # Validate labels before the (possibly slow) feature read.
    encode_labels(train_info["emos"], classes, split_path, "train_info", train_info["names"])
    encode_labels(valid_info["emos"], classes, split_path, "valid_info", valid_info["names"])
    arrays, rows = load_features(specs, names, cache_dir)
    feats = {name: torch.from_numpy(arr).to(device) for name, arr in arrays.items()}
    for key in experts or ():
        feats[key] = feats[feature_of(key)]
    n_train = len(train_info["names"])
    return (
        build_sample_set(train_info, classes, feats, rows[:n_train], split_path, "train_info", pseudo_weight),
        build_sample_set(valid_info, classes, feats, rows[n_train:], split_path, "valid_info"),
    )


class DeviceBatches:
    """Iterates a SampleSet in batches already on its device; shuffling uses its own seeded generator."""

    def __init__(self, samples, batch_size, shuffle=False, seed=0):
        self.samples = samples
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self):
        return (len(self.samples) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        s = self.samples
        order = torch.randperm(len(s), generator=self.generator) if self.shuffle else torch.arange(len(s))
        order = order.to(s.rows.device)
        for start in range(0, len(s), self.batch_size):
            idx = order[start:start + self.batch_size]
            rows = s.rows[idx]
            yield {
                "index": idx,
                "feats": {name: arr.index_select(0, rows) for name, arr in s.feats.items()},
                "labels": s.labels[idx],
                "vals": s.vals[idx],
                "weights": s.weights[idx],
            }
