"""Labeled sample sets over packed feature tensors, and batches sliced from them on the device.

A batch is ``{"index", "feats", "present", "labels", "vals", "weights"}``, plus ``"targets"`` (B, K) class
probabilities when the split holds soft targets (``probs``, see ``soft_targets``). ``feats[name]`` is what the feature's
kind gathers (dataloader/kinds.py): a (B, C) tensor for an utterance feature and
``Frames(x (B, L, C), valid (B, L) bool)`` for a frame feature, padded to the
batch's longest clip (at most ``max_frames``; longer clips are sampled uniformly). ``present`` is None when
every clip has every feature, else ``{name: (B,) bool}``.
"""
import dataclasses
import sys

import numpy as np
import torch

from dataloader.feature_store import feature_of, featureless, load_store
from dataloader.kinds import kind_of_packed
from dataloader.packed import Frames, FrameTensor, MappedFeature  # noqa: F401 - re-exported
from toolkit.errors import UserError
from toolkit.io import TRAIN_KEY, VALID_KEY, load_split
from toolkit.tables import check_unique
from toolkit.tables import encode_labels as encode_class_labels


@dataclasses.dataclass
class SampleSet:
    """Samples of one split: rows into shared packed feature tensors plus their targets (all on one device)."""

    names: list
    feats: dict  # {feature: (M, C) tensor shared by every set built from the same load}
    rows: torch.Tensor  # (N,) long: row of each sample in the packed tensors
    labels: torch.Tensor  # (N,) long class indices (-1 when unlabeled)
    vals: torch.Tensor  # (N,) float valence, NaN where unknown
    weights: torch.Tensor  # (N,) float per-sample loss weight
    present: dict = None  # {feature: (M,) bool tensor} when some clips lack some features, else None
    kinds: dict = None  # {feature: FeatureKind}; None: each found from its packed tensor (``kind_of_packed``)
    targets: torch.Tensor = None  # (N, K) float target distributions when the split has ``probs``, else None

    def __len__(self):
        return len(self.names)

    def memory_note(self):
        """What the packed features take: ``clips × dims × bytes`` (frame features: all their frames), e.g. for the log."""
        tensors = {id(t): (name, t) for name, t in self.feats.items()}.values()  # repeated experts share one
        utt = [(name, t) for name, t in tensors if not self.kind(name).frames]
        frm = [t.values for name, t in tensors if self.kind(name).frames]
        itemsize = {t.array.dtype.itemsize if isinstance(t, MappedFeature) else t.element_size() for _, t in utt} or {4}
        clips = utt[0][1].shape[0] if utt else 0
        dims = sum(t.shape[1] for _, t in utt)
        total = clips * dims * max(itemsize) + sum(v.numel() * v.element_size() for v in frm)
        frames = f" + {sum(v.shape[0] for v in frm)} frames × {sum(v.shape[1] for v in frm)} dims" if frm else ""
        mapped = any(isinstance(t, MappedFeature) for _, t in utt)
        return (f"{clips} clips × {dims} dims × {max(itemsize)} bytes{frames} = {total / 2**20:.1f} MB"
                f"{' memory-mapped from the cache' if mapped else ''}")

    def kind(self, name):
        """The FeatureKind of feature (or expert key) ``name``."""
        return self.kinds[name] if self.kinds else kind_of_packed(self.feats[name])

    def missing_counts(self):
        """{feature: clips of this set without its file} (all zeros when nothing is missing)."""
        if self.present is None:
            return {name: 0 for name in self.feats}
        return {name: int((~p.index_select(0, self.rows)).sum()) for name, p in self.present.items()}


def select(feature, rows, max_frames, kind=None):
    """Rows of one packed feature as float32 on its device, gathered as its kind says: (B, C) for a (M, C)
    tensor or MappedFeature, Frames for a FrameTensor (float16 features are converted after the gather).
    ``kind`` defaults to the kind whose packed form ``feature`` is."""
    return (kind or kind_of_packed(feature)).gather(feature, rows, max_frames)


def to_tensor(array, device, kind=None):
    """A packed numpy feature (array, memory map or Ragged) on ``device`` (tensor, MappedFeature or FrameTensor)."""
    return (kind or kind_of_packed(array)).to_device(array, device)


def encode_labels(emos, classes, split_path, set_key, names):
    return encode_class_labels(emos, classes, f"split file {split_path}: {set_key}", names).tolist()


def soft_targets(probs, labels, n_classes, split_path, set_key, names):
    """(N, K) target distributions: a split's ``probs`` row where it has one, the one-hot label elsewhere.

    ``probs`` (optional in a split section, aligned with ``names``) holds a list of K class probabilities
    for soft pseudo-labels and None for the other rows; every list is checked here (finite, >= 0, sums
    to 1, one value per class), so a bad file stops before training with the sample named."""
    if not isinstance(probs, (list, tuple, np.ndarray)):
        raise UserError(f"split file {split_path}: '{set_key}' field 'probs' is a {type(probs).__name__}, not a list; "
                        "rewrite it with pseudo_label.py --soft")
    if len(probs) != len(names):
        raise UserError(f"split file {split_path}: '{set_key}' has {len(names)} names but {len(probs)} probs; "
                        "rewrite it with pseudo_label.py --soft")
    targets = np.eye(n_classes)[np.maximum(labels, 0)]
    for i, p in enumerate(probs):
        if p is None:
            continue
        where = f"split file {split_path}: '{set_key}' sample {names[i]}"
        try:
            row = np.asarray(p, dtype=np.float64)
        except (TypeError, ValueError):
            raise UserError(f"{where}: probs must be a list of {n_classes} numbers or None") from None
        if row.shape != (n_classes,):
            raise UserError(f"{where}: probs has {row.size} values, expected {n_classes} (one per class); "
                            "rewrite it with pseudo_label.py --soft")
        if not np.isfinite(row).all() or (row < 0).any() or abs(row.sum() - 1) > 1e-3:
            raise UserError(f"{where}: probs must be finite, >= 0 and sum to 1 (got sum {row.sum():.4g}); "
                            "rewrite it with pseudo_label.py --soft")
        targets[i] = row / row.sum()
    return targets


def build_sample_set(info, classes, feats, rows, split_path="<split>", set_key=TRAIN_KEY, pseudo_weight=1.0, present=None,
                     kinds=None):
    """A SampleSet from a split-dict section ``info`` (names, emos[, vals, weights, pseudo]).

    Optional per-sample ``weights`` scale the loss; samples flagged in ``pseudo`` (pseudo-labels) are
    further scaled by ``pseudo_weight``; optional ``probs`` are soft targets (``soft_targets``). Splits
    without these keys are the plain format users exchange."""
    names = list(info["names"])
    n = len(names)
    device = next(iter(feats.values())).device
    rows = torch.as_tensor(rows, dtype=torch.long, device=device)
    labels = encode_labels(info["emos"], classes, split_path, set_key, names) if info.get("emos") is not None else [-1] * n
    vals = info.get("vals")
    vals = np.full(n, np.nan) if vals is None else np.asarray(vals, dtype=np.float64)
    weights = np.ones(n) if info.get("weights") is None else np.asarray(info["weights"], dtype=np.float64)
    if info.get("pseudo") is not None:
        weights = np.where(np.asarray(info["pseudo"], dtype=bool), weights * pseudo_weight, weights)
    targets = None
    if info.get("probs") is not None:
        targets = soft_targets(info["probs"], np.asarray(labels), len(classes), split_path, set_key, names)
        targets = torch.as_tensor(targets, dtype=torch.float32, device=device)
    return SampleSet(
        names=names,
        feats=feats,
        rows=rows,
        labels=torch.as_tensor(labels, dtype=torch.long, device=device),
        vals=torch.as_tensor(vals, dtype=torch.float32, device=device),
        weights=torch.as_tensor(weights, dtype=torch.float32, device=device),
        present=present,
        kinds=kinds,
        targets=targets,
    )


def without_clips(info, dropped, split_path, set_key):
    """A split section without the clips in ``dropped`` (every per-clip column cut alike), with a note."""
    keep = [i for i, name in enumerate(info["names"]) if name not in dropped]
    n = len(info["names"])
    if len(keep) < n:
        shown = ", ".join([name for name in info["names"] if name in dropped][:3])
        which = "training" if set_key == TRAIN_KEY else "validation"
        print(f"note: {split_path}: {n - len(keep)} of {n} {which} clips have no file for any of the run's features "
              f"and are left out (first: {shown}); the {which} figures are over the other {len(keep)}",
              file=sys.stderr, flush=True)
    if not keep:
        raise UserError(f"split file {split_path}: no {set_key.split('_')[0]} clip has a file for any of the run's features; "
                        "extract them or choose other features")
    return {key: [value[i] for i in keep] if is_per_clip(value, n) else value for key, value in info.items()}


def is_per_clip(value, n):
    return value is not None and not isinstance(value, (str, bytes, dict)) and hasattr(value, "__len__") and len(value) == n


def load_split_sets(split_path, specs, classes, device, cache_dir=None, experts=None, pseudo_weight=1.0, allow_missing=False,
                    cache_dtype="float32", mmap=False):
    """(train SampleSet, valid SampleSet) of a split dict file, features loaded once onto ``device``
    (stored as ``cache_dtype``; with ``mmap`` utterance features stay memory-mapped, see ``MappedFeature``).

    ``experts`` (keys from ``expert_names``) adds aliases so repeated experts share one tensor.
    ``allow_missing``: clips may lack some feature files (see ``load_store``); the sets then carry a
    presence mask, and a feature that no training clip has is a UserError. A clip with no file for any of
    the features has nothing to learn or predict from: it is left out of its set, with a note that counts them
    (a single-feature run of the sweep on a feature that some clips lack is trained and scored on the rest)."""
    split = load_split(split_path)
    train_info, valid_info = split[TRAIN_KEY], split[VALID_KEY]
    names = list(train_info["names"]) + list(valid_info["names"])
    check_unique(names, f"split file {split_path} (train + valid)")
    # Validate labels before the (possibly slow) feature read.
    encode_labels(train_info["emos"], classes, split_path, TRAIN_KEY, train_info["names"])
    encode_labels(valid_info["emos"], classes, split_path, VALID_KEY, valid_info["names"])
    for key, info in ((TRAIN_KEY, train_info), (VALID_KEY, valid_info)):
        if info.get("probs") is not None:
            labels = encode_labels(info["emos"], classes, split_path, key, info["names"])
            soft_targets(info["probs"], np.asarray(labels), len(classes), split_path, key, info["names"])
    store = load_store(specs, names, cache_dir, allow_missing, cache_dtype, mmap, keep_featureless=True)
    dropped = set(featureless(store)) if allow_missing else set()
    if dropped:
        train_info, valid_info = (without_clips(info, dropped, split_path, key) for key, info in
                                  ((TRAIN_KEY, train_info), (VALID_KEY, valid_info)))
        store = dataclasses.replace(store, rows=store.rows[[i for i, name in enumerate(names) if name not in dropped]])
    rows = store.rows
    kinds = {spec.name: spec.kind for spec in specs}
    feats = {name: kinds[name].to_device(arr, device) for name, arr in store.arrays.items()}
    n_train = len(train_info["names"])
    present = None
    if any(not p.all() for p in store.present.values()):
        counts = store.missing_counts(rows[:n_train])
        empty = [name for name, c in counts.items() if c == n_train]
        if empty:
            raise UserError(f"split file {split_path}: no training clip has a file for feature '{empty[0]}'; "
                            "extract it or leave it out of --feat")
        present = {name: torch.from_numpy(p).to(device) for name, p in store.present.items()}
    for key in experts or ():
        feats[key] = feats[feature_of(key)]
        kinds[key] = kinds[feature_of(key)]
        if present is not None:
            present[key] = present[feature_of(key)]
    return (
        build_sample_set(train_info, classes, feats, rows[:n_train], split_path, TRAIN_KEY, pseudo_weight, present, kinds),
        build_sample_set(valid_info, classes, feats, rows[n_train:], split_path, VALID_KEY, present=present, kinds=kinds),
    )


class DeviceBatches:
    """Iterates a SampleSet in batches already on its device; shuffling uses its own seeded generator.

    ``shard`` (a callable, e.g. ``toolkit.distributed.Dist.shard``: global batch size → slice) keeps this
    process's part of every global batch of ``batch_size``; every process draws the same permutation, so the
    parts are disjoint and together they are the single-process batch. ``batch["global_size"]`` is the
    whole batch's size and ``batch["offset"]`` where this part starts in it (for ``models.noise``)."""

    def __init__(self, samples, batch_size, shuffle=False, seed=0, max_frames=64, shard=None):
        self.samples = samples
        self.batch_size = batch_size
        self.max_frames = max_frames
        self.shuffle = shuffle
        self.shard = shard or (lambda size: slice(0, size))
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self):
        return (len(self.samples) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        s = self.samples
        order = torch.randperm(len(s), generator=self.generator) if self.shuffle else torch.arange(len(s))
        order = order.to(s.rows.device)
        # per-sample columns in epoch order once per epoch: each batch then takes slices (views)
        rows, labels, vals, weights = s.rows[order], s.labels[order], s.vals[order], s.weights[order]
        targets = None if s.targets is None else s.targets[order]
        for start in range(0, len(s), self.batch_size):
            size = min(self.batch_size, len(s) - start)
            part = self.shard(size)
            mine = slice(start + part.start, start + part.stop)
            batch_rows = rows[mine]
            batch = {
                "index": order[mine],
                "global_size": size,
                "offset": part.start,
                "feats": {name: s.kind(name).gather(arr, batch_rows, self.max_frames) for name, arr in s.feats.items()},
                "present": None if s.present is None else {name: p.index_select(0, batch_rows) for name, p in s.present.items()},
                "labels": labels[mine],
                "vals": vals[mine],
                "weights": weights[mine],
            }
            if targets is not None:
                batch["targets"] = targets[mine]
            yield batch
