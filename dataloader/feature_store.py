"""Feature store: read every requested ``<folder>/<sample>.npy`` once, validate it, pack it into one
contiguous float32 (or float16) array per feature and cache that array on disk (memory-mapped on request).

Utterance-level features (``(C,)`` per clip) pack into one ``(M, C)`` array. Frame-level features
(``(T, C)`` per clip, T varying; folder names ending in ``-FRM``) pack *ragged*: all frames of all clips in
one ``(sum T, C)`` array plus ``offsets`` (M + 1), so clip ``i`` is ``values[offsets[i]:offsets[i + 1]]``.

The cache key covers the feature folder, the *set* of requested samples and each file's size and mtime,
so the five seed splits of one label file share one cache and any edited file invalidates it.

With ``allow_missing`` a clip may lack a feature's file: its utterance row is zeros (frames: T = 0) and
``present[feature][row]`` is False, so the model can mask that expert for that clip.
"""
import concurrent.futures
import dataclasses
import hashlib
import os
import re
import threading

import numpy as np

import config
from toolkit.errors import UserError
from toolkit.io import atomic_path, resolve

MODALITY_DICTS = {"video": "FEAT_VIDEO_DICT", "audio": "FEAT_AUDIO_DICT", "text": "FEAT_TEXT_DICT"}
READ_THREADS = 2  # file reads release the GIL; more threads than cores measured slower
LEVELS = ("utt", "frm")
FRAME_SUFFIX = "-FRM"
ENTRY_HELP = ('[dim, folder] or [dim, folder, "frm"] or [dim, folder, {"level": "utt"|"frm", "columns": "-35:", '
              '"pool": "mean"}]')


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One registered feature. ``dim`` is C after column selection.

    level: "utt" (one vector per clip) or "frm" (a (T, C) sequence per clip);
    columns: optional column selection applied to every file's last axis, a slice text like "-35:" (the
    last 35 columns of an OpenFace row) or a list of column indices;
    pool: "mean" reads (T, C) frame files but keeps their mean over T as an utterance vector (level "utt").
    """

    name: str
    dim: int
    folder: str
    modality: str
    level: str = "utt"
    columns: object = None
    pool: str = None

    @property
    def frame_level(self):
        return self.level == "frm"

    @property
    def reads_frames(self):
        return self.level == "frm" or self.pool == "mean"


def parse_columns(columns, where):
    """A column selection from config (``"-35:"``, ``"0:17"``, ``[0, 3, 5]``) → slice or index array."""
    if columns is None:
        return None
    if isinstance(columns, str):
        match = re.fullmatch(r"\s*(-?\d*)\s*:\s*(-?\d*)\s*", columns)
        if not match:
            raise UserError(f"{where}: columns {columns!r} is not a slice like '-35:' or '0:17'; fix it in config.py")
        lo, hi = (int(v) if v else None for v in match.groups())
        return slice(lo, hi)
    if isinstance(columns, (list, tuple)) and columns and all(isinstance(c, int) for c in columns):
        return np.asarray(columns, dtype=np.int64)
    raise UserError(f"{where}: columns must be a slice text like '-35:' or a list of column indices, got {columns!r}")


def parse_entry(name, entry, modality, dict_name):
    """A FeatureSpec from one config.py entry (see ENTRY_HELP)."""
    where = f"config.py {dict_name}['{name}']"
    if not (isinstance(entry, (list, tuple)) and len(entry) in (2, 3) and int(entry[0]) > 0):
        raise UserError(f"{where} must be {ENTRY_HELP}, got {entry!r}")
    options = entry[2] if len(entry) == 3 else {}
    if isinstance(options, str):
        options = {"level": options}
    if not isinstance(options, dict) or set(options) - {"level", "columns", "pool"}:
        raise UserError(f"{where}: the third field must be \"utt\", \"frm\" or a dict with keys level, columns, pool; got {options!r}")
    level = str(options.get("level") or ("frm" if name.upper().endswith(FRAME_SUFFIX) else "utt")).lower()
    if level not in LEVELS:
        raise UserError(f"{where}: level {level!r} must be one of {', '.join(LEVELS)}")
    pool = options.get("pool")
    if pool not in (None, "mean") or (pool and level != "utt"):
        raise UserError(f"{where}: pool may only be \"mean\" (frame files pooled into an utterance vector, level \"utt\"); got {pool!r}")
    columns = options.get("columns")
    parse_columns(columns, where)  # validate now, apply at read time
    if isinstance(columns, list):
        columns = tuple(columns)  # hashable spec
    return FeatureSpec(name, int(entry[0]), resolve(entry[1]), modality, level, columns, pool)


def feature_registry():
    """All features of config.py: {name: FeatureSpec}."""
    registry = {}
    for modality, dict_name in MODALITY_DICTS.items():
        for name, entry in getattr(config, dict_name).items():
            if name in registry:
                raise UserError(f"config.py: feature '{name}' is in two dicts ({registry[name].modality}, {modality}); keep one")
            registry[name] = parse_entry(name, entry, modality, dict_name)
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


@dataclasses.dataclass
class Ragged:
    """Frames of M clips packed end to end: clip ``i`` is ``values[offsets[i]:offsets[i + 1]]`` (T may be 0 only
    for a clip whose file is missing)."""

    values: np.ndarray  # (sum T, C) float32
    offsets: np.ndarray  # (M + 1,) int64

    def __len__(self):
        return len(self.offsets) - 1

    @property
    def lengths(self):
        return np.diff(self.offsets)

    def __getitem__(self, i):
        return self.values[self.offsets[i]:self.offsets[i + 1]]


def require_folder(spec):
    """A missing feature folder is a UserError naming it and the config.py entry to fix."""
    if not os.path.isdir(spec.folder):
        raise UserError(f"feature folder {spec.folder} for '{spec.name}' does not exist; fix its path in config.py")


def _file_listing(spec, names, allow_missing=False):
    """Paths of the requested samples' files (None where missing), presence mask and a fingerprint of their
    sizes and mtimes."""
    require_folder(spec)
    paths, missing, digest = [], [], hashlib.sha1()
    digest.update(os.path.abspath(spec.folder).encode())
    digest.update(str(spec.dim).encode())
    if spec.level != "utt" or spec.columns is not None or spec.pool is not None:  # plain features keep their old keys
        digest.update(f"level={spec.level};columns={spec.columns};pool={spec.pool}".encode())
    for name in names:
        path = os.path.join(spec.folder, name + ".npy")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            missing.append(name)
            paths.append(None)
            digest.update(f"{name}\0-\n".encode())
            continue
        paths.append(path)
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    if missing and not allow_missing:
        shown = ", ".join(missing[:5])
        raise UserError(
            f"feature '{spec.name}': {len(missing)} of {len(names)} samples have no .npy in {spec.folder} "
            f"(first: {shown}); extract the feature for them, remove them from the split or train with --allow_missing"
        )
    present = np.fromiter((p is not None for p in paths), dtype=bool, count=len(paths))
    return paths, present, digest.hexdigest()[:16]


def _load_npy(path):
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise UserError(f"cannot read {path} ({exc.__class__.__name__}: {exc}); re-extract this file") from None


def _select(arr, spec, path):
    if spec.columns is None:
        return arr
    try:
        return arr[..., parse_columns(list(spec.columns) if isinstance(spec.columns, tuple) else spec.columns, spec.name)]
    except IndexError:
        raise UserError(f"{path} has shape {arr.shape}: columns {spec.columns!r} of '{spec.name}' are out of range; "
                        "fix the columns in config.py") from None


def _read_one(path, spec):
    """One utterance vector (C,) of ``spec`` (frame files are mean-pooled when spec.pool == 'mean')."""
    if spec.pool == "mean":
        return _read_frames(path, spec).mean(axis=0)
    arr = _load_npy(path)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    arr = _select(arr, spec, path)
    if arr.shape != (spec.dim,):
        raise UserError(f"{path} has shape {arr.shape}, expected ({spec.dim},) as config.py says; fix the dim in config.py or re-extract")
    return arr


def _read_frames(path, spec):
    """One clip's (T, C) frames after column selection; 1-D files, wrong C and T = 0 are UserErrors."""
    arr = _load_npy(path)
    if arr.ndim != 2:
        raise UserError(f"{path} has shape {arr.shape}, but frame-level feature '{spec.name}' needs (T, C) per clip; "
                        "re-extract it as frames, or register the folder as utterance level (third field \"utt\") in config.py")
    if arr.shape[0] == 0:
        raise UserError(f"{path} has 0 frames (shape {arr.shape}); re-extract it, or delete it and train with --allow_missing")
    arr = _select(arr, spec, path)
    if arr.shape[1] != spec.dim:
        raise UserError(f"{path} has shape {arr.shape}, expected (T, {spec.dim}) as config.py says "
                        "(after its column selection); fix the dim or columns in config.py or re-extract")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _check_finite(spec, values, owner_paths):
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad):
        files = list(dict.fromkeys(owner_paths(i) for i in bad))
        raise UserError(f"feature '{spec.name}': {len(files)} files hold NaN/inf values (first: {', '.join(files[:3])}); re-extract them")


def _in_threads(fill, n):
    """Call fill(i) for i < n from READ_THREADS threads, one contiguous block of indices per task
    (file reads release the GIL; one future per file would cost more than the read)."""
    step = max(1, -(-n // (READ_THREADS * 4)))

    def block(start):
        for i in range(start, min(n, start + step)):
            fill(i)

    with concurrent.futures.ThreadPoolExecutor(READ_THREADS) as pool:
        list(pool.map(block, range(0, n, step)))


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _npy_header(path):
    """(header bytes, shape, fortran order, dtype) of a .npy file, or None when it cannot be parsed here."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            shape, fortran, dtype = _HEADER_READERS[version](f)
            size = f.tell()
            f.seek(0)
            return f.read(size), shape, fortran, dtype
    except Exception:  # noqa: BLE001 - np.load reports the problem with its own message
        return None


def _raw_reader(spec, first_path):
    """``read(path, row) -> bool``: fill ``row`` (a (dim,) float32 array) straight from a .npy file whose
    header is byte-identical to the first file's, with one ``preadv`` system call (float32 files are read
    into the row without a copy). A file with another header, size or an unreadable one returns False and
    the caller falls back to ``np.load`` with its full checks and messages. Returns None (no fast path)
    for column selections, pooled frames or a first file that is not a plain (dim,) array.

    A cold start reads tens of thousands of small files: this path costs a few microseconds per file,
    several times less than ``np.load``."""
    if first_path is None or spec.pool == "mean" or spec.columns is not None or not hasattr(os, "preadv"):
        return None
    parsed = _npy_header(first_path)
    if parsed is None:
        return None
    header, shape, fortran, dtype = parsed
    if shape != (spec.dim,) or fortran or dtype.hasobject:
        return None
    direct = dtype == np.dtype("<f4")
    local = threading.local()  # per-thread buffers: the header, a probe byte past the end, the data if converted

    def read(path, row):
        if not hasattr(local, "header"):
            local.header, local.probe = bytearray(len(header)), bytearray(1)
            local.data = None if direct else np.empty(spec.dim, dtype)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            target = row if direct else local.data
            n = os.preadv(fd, [local.header, target, local.probe], 0)
        except OSError:
            return False
        finally:
            os.close(fd)
        if n != len(header) + target.nbytes or local.header != header:
            return False
        if not direct:
            row[:] = local.data
        return True

    return read


def _read_all(spec, paths):
    """(M, dim) float32; rows of missing files (path None) stay zero."""
    packed = np.zeros((len(paths), spec.dim), dtype=np.float32)
    fast = _raw_reader(spec, next((p for p in paths if p is not None), None))

    def fill(i):
        if paths[i] is not None and not (fast and fast(paths[i], packed[i])):
            packed[i] = _read_one(paths[i], spec)

    _in_threads(fill, len(paths))
    _check_finite(spec, packed, lambda i: paths[i])
    return packed


def _read_all_frames(spec, paths):
    """Ragged frames of every clip; missing files (path None) get T = 0."""
    clips = [None] * len(paths)

    def fill(i):
        if paths[i] is not None:
            clips[i] = _read_frames(paths[i], spec)

    _in_threads(fill, len(paths))
    lengths = np.array([0 if c is None else len(c) for c in clips], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    present = [c for c in clips if c is not None]
    values = np.concatenate(present) if present else np.zeros((0, spec.dim), np.float32)
    ragged = Ragged(np.ascontiguousarray(values, dtype=np.float32), offsets)
    _check_finite(spec, ragged.values, lambda j: paths[int(np.searchsorted(offsets, j, side="right")) - 1])
    return ragged


CACHE_DTYPES = ("float32", "float16")


def _as_dtype(spec, packed, dtype):
    """``packed`` (array or Ragged) stored as ``dtype``; values beyond float16's range are a UserError."""
    if dtype == "float32":
        return packed
    values = packed.values if isinstance(packed, Ragged) else packed
    with np.errstate(over="ignore"):
        half = values.astype(np.float16)
    if not np.isfinite(half).all():
        raise UserError(f"feature '{spec.name}' has values beyond float16's range (|x| > 65504); use --cache_dtype float32")
    return Ragged(half, packed.offsets) if isinstance(packed, Ragged) else half


def load_feature(spec, samples, cache_dir=None, allow_missing=False, dtype="float32", mmap=False):
    """Packed feature ``spec`` of ``samples`` (sorted, unique) and its presence mask (M,) bool.

    Utterance level: a (M, dim) array. Frame level: a ``Ragged`` (values, offsets). ``dtype`` float16 halves
    the memory (and the cache file); ``mmap`` returns an utterance feature memory-mapped from its cache file
    (read-only; rows are paged in when batches gather them), frame features are loaded whole."""
    if dtype not in CACHE_DTYPES:
        raise UserError(f"--cache_dtype {dtype!r}: use one of {', '.join(CACHE_DTYPES)}")
    if mmap and not cache_dir:
        raise UserError("--mmap reads features from the packed cache; give a --cache_dir (not 'none')")
    paths, present, key = _file_listing(spec, samples, allow_missing)
    ext = ".npz" if spec.frame_level else ".npy"
    suffix = "" if dtype == "float32" else f"-{dtype}"  # float32 caches keep their old names
    cache_file = os.path.join(cache_dir, f"{spec.name}-{len(samples)}-{key}{suffix}{ext}") if cache_dir else None
    if not (cache_file and os.path.exists(cache_file)):
        packed = _as_dtype(spec, _read_all_frames(spec, paths) if spec.frame_level else _read_all(spec, paths), dtype)
        if not cache_file:
            return packed, present
        with atomic_path(cache_file) as tmp:
            with open(tmp, "wb") as f:
                if spec.frame_level:
                    np.savez(f, values=packed.values, offsets=packed.offsets)
                else:
                    np.save(f, packed)
        if not mmap:
            return packed, present
    if spec.frame_level:
        with np.load(cache_file) as data:
            return Ragged(data["values"], data["offsets"]), present
    return np.load(cache_file, mmap_mode="r" if mmap else None), present


@dataclasses.dataclass
class Store:
    """Features of a list of names: packed per feature over the M unique names (sorted), and each name's row."""

    arrays: dict  # {feature: (M, dim) array or Ragged}
    rows: np.ndarray  # (N,) int64: row of names[i]
    present: dict  # {feature: (M,) bool}; all True unless loaded with allow_missing
    samples: list  # the M unique names, in row order

    def missing_counts(self, rows=None):
        """{feature: number of clips (of ``rows``, default all requested names) that lack its file}."""
        rows = self.rows if rows is None else rows
        return {name: int((~p[rows]).sum()) for name, p in self.present.items()}


def load_store(specs, names, cache_dir=None, allow_missing=False, dtype="float32", mmap=False):
    """Load every feature for ``names`` once (see ``Store``; ``dtype`` and ``mmap`` as in ``load_feature``).

    With ``allow_missing`` a clip may lack some features' files, but a clip that lacks every requested
    feature is a UserError naming it."""
    samples = sorted(set(names))
    row = {name: i for i, name in enumerate(samples)}
    rows = np.fromiter((row[n] for n in names), dtype=np.int64, count=len(names))
    arrays, present = {}, {}
    for spec in specs:
        arrays[spec.name], present[spec.name] = load_feature(spec, samples, cache_dir, allow_missing, dtype, mmap)
    if allow_missing and specs:
        none = np.flatnonzero(~np.any(np.stack(list(present.values())), axis=0))
        if len(none):
            shown = ", ".join(samples[i] for i in none[:5])
            raise UserError(f"{len(none)} clips have no file for any of the features {', '.join(s.name for s in specs)} "
                            f"(first: {shown}); extract at least one feature for them or remove them from the list")
    return Store(arrays, rows, present, samples)


def load_features(specs, names, cache_dir=None):
    """Load every feature for ``names`` without copying rows into per-split arrays.

    Returns ``({feature: (M, dim) array (or Ragged for frame level) over the M unique names, sorted}, rows)``
    where ``rows[i]`` is the row of ``names[i]``; train and valid sets index the same packed arrays.
    A missing file is a UserError (``load_store(..., allow_missing=True)`` tolerates them).
    """
    store = load_store(specs, names, cache_dir)
    return store.arrays, store.rows
