"""Feature store: read every requested ``<folder>/<sample>.npy`` once, validate it, pack it into one
contiguous float32 array per feature and cache that array on disk.

The cache key covers the feature folder, the *set* of requested samples and each file's size and mtime,
so the five seed splits of one label file share one cache and any edited file invalidates it.
"""
import concurrent.futures
import dataclasses
import hashlib
import os

import numpy as np

import config
from toolkit.errors import UserError
from toolkit.io import atomic_path, resolve

MODALITY_DICTS = {"video": "FEAT_VIDEO_DICT", "audio": "FEAT_AUDIO_DICT", "text": "FEAT_TEXT_DICT"}
READ_THREADS = 8


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    name: str
    dim: int
    folder: str
    modality: str


def feature_registry():
    """All features of config.py: {name: FeatureSpec}."""
    registry = {}
    for modality, dict_name in MODALITY_DICTS.items():
        for name, entry in getattr(config, dict_name).items():
            if not (isinstance(entry, (list, tuple)) and len(entry) >= 2 and int(entry[0]) > 0):
                raise UserError(f"config.py {dict_name}['{name}'] must be [dim, feature folder], got {entry!r}")
            if name in registry:
                raise UserError(f"config.py: feature '{name}' is in two dicts ({registry[name].modality}, {modality}); keep one")
            registry[name] = FeatureSpec(name, int(entry[0]), resolve(entry[1]), modality)
    return registry


def lookup_features(names):
    """FeatureSpecs for ``names``; an unknown name is a UserError listing the known ones."""
    registry = feature_registry()
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise UserError(
            f"unknown feature {unknown[0]!r}: add it to a FEAT_*_DICT in config.py "
            f"(python preprocess/check_feat_dim.py --emit-config prints entries); known: {', '.join(sorted(registry))}"
        )
    if len(set(names)) != len(names):
        raise UserError(f"feature list {list(names)} names a feature twice; list each once")
    return [registry[n] for n in names]


REPEAT_SEPARATOR = "#"


def expert_names(feature_names, repeat=1):
    """Expert keys: each feature once, or ``repeat`` copies named ``feat``, ``feat#2``, ``feat#3``, ...

    Repeated copies feed one feature to several branches, as unimodal baselines do for a fair comparison
    with a three-branch (trimodal) model."""
    return [name if r == 0 else f"{name}{REPEAT_SEPARATOR}{r + 1}" for name in feature_names for r in range(repeat)]


def feature_of(expert_name):
    """The feature an expert key reads (``feat#2`` → ``feat``)."""
    return expert_name.split(REPEAT_SEPARATOR)[0]


def _file_listing(spec, names):
    """Paths of the requested samples' files plus a fingerprint of their sizes and mtimes."""
    if not os.path.isdir(spec.folder):
        raise UserError(f"feature folder {spec.folder} for '{spec.name}' does not exist; fix its path in config.py")
    paths, missing, digest = [], [], hashlib.sha1()
    digest.update(os.path.abspath(spec.folder).encode())
    digest.update(str(spec.dim).encode())
    for name in names:
        path = os.path.join(spec.folder, name + ".npy")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            missing.append(name)
            continue
        paths.append(path)
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    if missing:
        shown = ", ".join(missing[:5])
        raise UserError(
            f"feature '{spec.name}': {len(missing)} of {len(names)} samples have no .npy in {spec.folder} "
            f"(first: {shown}); extract the feature for them or remove them from the split"
        )
    return paths, digest.hexdigest()[:16]


def _read_one(path, dim):
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise UserError(f"cannot read {path} ({exc.__class__.__name__}: {exc}); re-extract this file") from None
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.shape != (dim,):
        raise UserError(f"{path} has shape {arr.shape}, expected ({dim},) as config.py says; fix the dim in config.py or re-extract")
    return arr


def _read_all(spec, paths):
    packed = np.empty((len(paths), spec.dim), dtype=np.float32)

    def fill(i):
        packed[i] = _read_one(paths[i], spec.dim)

    with concurrent.futures.ThreadPoolExecutor(READ_THREADS) as pool:
        for _ in pool.map(fill, range(len(paths)), chunksize=64):
            pass
    bad_rows = np.flatnonzero(~np.isfinite(packed).all(axis=1))
    if len(bad_rows):
        shown = ", ".join(paths[i] for i in bad_rows[:3])
        raise UserError(f"feature '{spec.name}': {len(bad_rows)} files hold NaN/inf values (first: {shown}); re-extract them")
    return packed


def load_feature(spec, samples, cache_dir=None):
    """Packed (len(samples), dim) float32 array of feature ``spec``; ``samples`` must be sorted and unique."""
    paths, key = _file_listing(spec, samples)
    cache_file = os.path.join(cache_dir, f"{spec.name}-{len(samples)}-{key}.npy") if cache_dir else None
    if cache_file and os.path.exists(cache_file):
        return np.load(cache_file)
    packed = _read_all(spec, paths)
    if cache_file:
        with atomic_path(cache_file) as tmp:
            np.save(tmp, packed)
    return packed


def load_features(specs, names, cache_dir=None):
    """Load every feature for ``names`` without copying rows into per-split arrays.

    Returns ``({feature: (M, dim) array over the M unique names, sorted}, rows)`` where ``rows[i]`` is the
    row of ``names[i]``; train and valid sets index the same packed arrays.
    """
    samples = sorted(set(names))
    row = {name: i for i, name in enumerate(samples)}
    rows = np.fromiter((row[n] for n in names), dtype=np.int64, count=len(names))
    return {spec.name: load_feature(spec, samples, cache_dir) for spec in specs}, rows
