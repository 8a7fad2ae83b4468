"""Feature store: read every requested ``<folder>/<sample>.npy`` once, validate it, pack it into one
contiguous float32 (or float16) array per feature and cache that array on disk (memory-mapped on request).

Utterance-level features (``(C,)`` per clip) pack into one ``(M, C)`` array. Frame-level features
(``(T, C)`` per clip, T varying; folder names ending in ``-FRM``) pack *ragged*: all frames of all clips in
one ``(sum T, C)`` array plus ``offsets`` (M + 1), so clip ``i`` is ``values[offsets[i]:offsets[i + 1]]``.

The cache key covers the feature folder, the *set* of requested samples and each file's size, mtime and
ctime, so the five seed splits of one label file share one cache and any edited file invalidates it (ctime
too: ``cp -p`` or ``rsync -t`` restore a file's mtime, but nothing can set its ctime back). The cache is
checked, not trusted: a sidecar ``<cache>.sum.json`` holds its shape, dtype and a crc32 of its bytes, and a
cache whose header, shape, dtype, offsets, finiteness or checksum disagree is rebuilt with a one-line note.

With ``allow_missing`` a clip may lack a feature's file: its utterance row is zeros (frames: T = 0) and
``present[feature][row]`` is False, so the model can mask that expert for that clip.
"""
import dataclasses
import hashlib
import json
import os
import stat
import sys
import zlib

import numpy as np

from dataloader.kinds import DEFAULT, KINDS, kind_for_name, kind_named, kind_of
from dataloader.npyfile import dtype_problem, os_problem, parse_columns, raw_reader, read_npy  # noqa: F401 - re-exported
from dataloader.packed import Ragged  # noqa: F401 - re-exported
from toolkit.errors import UserError
from toolkit.io import atomic_path, is_sample_name, resolve

MODALITY_DICTS = {"video": "FEAT_VIDEO_DICT", "audio": "FEAT_AUDIO_DICT", "text": "FEAT_TEXT_DICT"}
REPEAT_SEPARATOR = "#"  # expert keys of repeated features: feat, feat#2, feat#3
ENTRY_HELP = ('[dim, folder] or [dim, folder, "frm"] or [dim, folder, {"level": "utt"|"frm", "columns": "-35:", '
              '"pool": "mean"}]')


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One registered feature. ``dim`` is C after column selection.

    level: the name of its kind (dataloader/kinds.py): "utt" (one vector per clip) or "frm" (a (T, C) sequence
    per clip), or any kind registered in ``KINDS``;
    columns: optional column selection applied to every file's last axis, a slice text like "-35:" (the
    last 35 columns of an OpenFace row) or a list of column indices;
    pool: "mean" reads (T, C) frame files but keeps their mean over T as an utterance vector (level "utt").
    """

    name: str
    dim: int
    folder: str
    modality: str
    level: str = DEFAULT
    columns: object = None
    pool: str = None

    @property
    def kind(self):
        return kind_of(self)

    @property
    def frame_level(self):
        """Whether its batches hold padded frames."""
        return self.kind.frames


def parse_entry(name, entry, modality, where):
    """A FeatureSpec from one registry entry (see ENTRY_HELP); ``where`` names it in errors
    (``config.py FEAT_VIDEO_DICT['x']`` or a manifest's path and name)."""
    if REPEAT_SEPARATOR in name:
        raise UserError(f"{where}: a feature name may not hold '{REPEAT_SEPARATOR}' (it separates repeated experts, "
                        f"as in 'feat{REPEAT_SEPARATOR}2'); rename the feature")
    if not (isinstance(entry, (list, tuple)) and len(entry) in (2, 3)):
        raise UserError(f"{where} must be {ENTRY_HELP}, got {entry!r}")
    dim = entry[0]
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim <= 0:
        raise UserError(f"{where}: dim {dim!r} must be a positive whole number (the C of its (C,) files, "
                        f"written without quotes, e.g. [768, {entry[1]!r}]); fix it there")
    options = entry[2] if len(entry) == 3 else {}
    if isinstance(options, str):
        options = {"level": options}
    if not isinstance(options, dict) or set(options) - {"level", "columns", "pool"}:
        raise UserError(f"{where}: the third field must be {', '.join(repr(k).replace(chr(39), chr(34)) for k in KINDS)} or a dict "
                        f"with keys level, columns, pool; got {options!r}")
    kind = kind_named(str(options["level"]).lower(), where) if options.get("level") else kind_for_name(name)
    pool = options.get("pool")
    if pool not in (None, "mean") or (pool and not kind.pools):
        raise UserError(f"{where}: pool may only be \"mean\" (frame files pooled into an utterance vector, level \"utt\"); got {pool!r}")
    columns = options.get("columns")
    parse_columns(columns, where)  # validate now, apply at read time
    if isinstance(columns, list):
        columns = tuple(columns)  # hashable spec
    return FeatureSpec(name, int(entry[0]), resolve(entry[1]), modality, kind.name, columns, pool)


def expert_names(feature_names, repeat=1):
    """Expert keys: each feature once, or ``repeat`` copies named ``feat``, ``feat#2``, ``feat#3``, ...

    Repeated copies feed one feature to several branches, as unimodal baselines do for a fair comparison
    with a three-branch (trimodal) model."""
    return [name if r == 0 else f"{name}{REPEAT_SEPARATOR}{r + 1}" for name in feature_names for r in range(repeat)]


def feature_of(expert_name):
    """The feature an expert key reads (``feat#2`` → ``feat``)."""
    return expert_name.split(REPEAT_SEPARATOR)[0]


def require_folder(spec):
    """A missing, looping or unreadable feature folder is a UserError naming it and the config.py entry to fix."""
    try:
        st = os.stat(spec.folder)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise UserError(f"feature folder {spec.folder} for '{spec.name}' {os_problem(exc)}") from None
    if st is None or not stat.S_ISDIR(st.st_mode):
        raise UserError(f"feature folder {spec.folder} for '{spec.name}' does not exist; fix its path in config.py")
    if not os.access(spec.folder, os.R_OK | os.X_OK):
        raise UserError(f"feature folder {spec.folder} for '{spec.name}' is not readable (permission denied); "
                        "fix its permissions (chmod a+rX)")


def check_sample_names(names):
    """Every sample name must be a plain file stem: ``<folder>/<name>.npy`` stays inside the feature folder."""
    for name in names:
        if not is_sample_name(name):
            raise UserError(f"sample name {name!r} is not a plain file stem (empty, '.', '..', or holding '/', '\\' "
                            "or a NUL): features are read from <folder>/<name>.npy; fix the name in the split dict or label CSV")


def _file_listing(spec, names, allow_missing=False):
    """Paths of the requested samples' files (None where missing), presence mask and a fingerprint of their
    sizes, mtimes and ctimes (an edit that restores size and mtime still moves the ctime)."""
    require_folder(spec)
    check_sample_names(names)
    paths, missing, digest = [], [], hashlib.sha1()
    digest.update(os.path.abspath(spec.folder).encode())
    digest.update(str(spec.dim).encode())
    if spec.level != DEFAULT or spec.columns is not None or spec.pool is not None:  # only options away from the defaults enter the key
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
        except OSError as exc:
            raise UserError(f"{path} (sample '{name}' of feature '{spec.name}') {os_problem(exc)}") from None
        paths.append(path)
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\n".encode())
    if missing and not allow_missing:
        shown = ", ".join(missing[:5])
        if len(missing) == len(names):
            raise UserError(
                f"feature '{spec.name}': its folder {spec.folder} holds none of the {len(names)} clips of this split "
                f"(first: {shown}), so it likely belongs to another data set; pick features of this data set with "
                "--feat (or change DEFAULT_FEATURES in config.py)"
            )
        raise UserError(
            f"feature '{spec.name}': {len(missing)} of {len(names)} samples have no .npy in {spec.folder} "
            f"(first: {shown}); extract the feature for them, remove them from the split or train with --allow_missing"
        )
    present = np.fromiter((p is not None for p in paths), dtype=bool, count=len(paths))
    return paths, present, digest.hexdigest()[:16]


CACHE_DTYPES = ("float32", "float16")

SUM_SUFFIX = ".sum.json"  # beside each cache file: its shape, dtype and crc32
SCAN_BLOCK = 16 << 20  # bytes per block of the checksum pass (stays in the CPU cache for the finiteness test)


def _scan(arrays):
    """(crc32 of the bytes of ``arrays`` in order, whether every float value is finite), in one pass.

    zlib's crc32 runs at several GB/s: a 180 MiB cache costs ~50 ms, a fast hash of the bytes already in memory."""
    crc, finite = 0, True
    for arr in arrays:
        flat = arr.reshape(-1)
        step = max(1, SCAN_BLOCK // max(1, arr.itemsize))
        for start in range(0, flat.size, step):
            block = flat[start:start + step]
            crc = zlib.crc32(block.view(np.uint8), crc)
            if finite and block.dtype.kind == "f":
                finite = bool(np.isfinite(block).all())
    return crc, finite


def _write_cache(cache_file, kind, packed):
    """The packed feature in the kind's format (``.npy``, ``.npz``, ...) and its checksum sidecar. The sidecar
    goes first, so a process that finds the cache file (another worker building the same cache) finds its sum."""
    parts = kind.parts(packed)
    meta = {"shape": list(parts[0].shape), "dtype": str(parts[0].dtype), "crc32": _scan(parts)[0]}
    with atomic_path(cache_file + SUM_SUFFIX) as tmp:
        with open(tmp, "w") as f:
            json.dump(meta, f)
    with atomic_path(cache_file) as tmp:
        with open(tmp, "wb") as f:
            kind.save(f, packed)


def _load_cache(cache_file, spec, present, dtype, mmap):
    """(packed, None) from a cache file that passes every check, or (None, why it fails)."""
    try:
        with open(cache_file + SUM_SUFFIX) as f:
            meta = json.load(f)
        expected_crc = int(meta["crc32"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"its checksum file {os.path.basename(cache_file)}{SUM_SUFFIX} is missing or unreadable"
    kind = spec.kind
    try:
        packed, problem = kind.open_cache(cache_file, spec, present, dtype, mmap)
    except Exception as exc:  # noqa: BLE001 - any unreadable cache is rebuilt
        return None, f"it cannot be read ({exc.__class__.__name__})"
    if problem:
        return None, problem
    crc, finite = _scan(kind.parts(packed))
    if not finite:
        return None, "it holds NaN/inf values"
    if crc != expected_crc:
        return None, "its checksum does not match (the file changed after it was written)"
    return packed, None


def load_feature(spec, samples, cache_dir=None, allow_missing=False, dtype="float32", mmap=False):
    """Packed feature ``spec`` of ``samples`` (sorted, unique) and its presence mask (M,) bool.

    The kind of ``spec`` packs it: utterance level a (M, dim) array, frame level a ``Ragged`` (values, offsets),
    read, cached and checked as the kind says (dataloader/kinds.py). ``dtype`` float16 halves
    the memory (and the cache file); ``mmap`` returns an utterance feature memory-mapped from its cache file
    (read-only; rows are paged in when batches gather them), frame features are loaded whole. A cache file
    that fails its checks (see ``_load_cache``) is rebuilt, with one line on stderr saying which and why."""
    if dtype not in CACHE_DTYPES:
        raise UserError(f"--cache_dtype {dtype!r}: use one of {', '.join(CACHE_DTYPES)}")
    if mmap and not cache_dir:
        raise UserError("--mmap reads features from the packed cache; give a --cache_dir (not 'none')")
    paths, present, key = _file_listing(spec, samples, allow_missing)
    kind = spec.kind
    suffix = "" if dtype == "float32" else f"-{dtype}"  # float32 caches keep their old names
    cache_file = os.path.join(cache_dir, f"{spec.name}-{len(samples)}-{key}{suffix}{kind.cache_ext}") if cache_dir else None
    if cache_file and os.path.exists(cache_file):
        packed, problem = _load_cache(cache_file, spec, present, dtype, mmap)
        if problem is None:
            return packed, present
        print(f"note: rebuilding feature cache {cache_file}: {problem}", file=sys.stderr, flush=True)
    packed = kind.as_dtype(spec, kind.pack(spec, paths), dtype)
    if not cache_file:
        return packed, present
    _write_cache(cache_file, kind, packed)
    return kind.reopen(cache_file, packed, mmap), present


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


def featureless(store):
    """The names (of ``store.samples``) that have no file for any of the store's features."""
    if not store.present:
        return []
    return [store.samples[i] for i in np.flatnonzero(~np.any(np.stack(list(store.present.values())), axis=0))]


def load_store(specs, names, cache_dir=None, allow_missing=False, dtype="float32", mmap=False, keep_featureless=False):
    """Load every feature for ``names`` once (see ``Store``; ``dtype`` and ``mmap`` as in ``load_feature``).

    With ``allow_missing`` a clip may lack some features' files, but a clip that lacks every requested
    feature is a UserError naming it, unless ``keep_featureless`` (the caller then leaves such clips out,
    see ``featureless``)."""
    samples = sorted(set(names))
    row = {name: i for i, name in enumerate(samples)}
    rows = np.fromiter((row[n] for n in names), dtype=np.int64, count=len(names))
    arrays, present = {}, {}
    for spec in specs:
        arrays[spec.name], present[spec.name] = load_feature(spec, samples, cache_dir, allow_missing, dtype, mmap)
    store = Store(arrays, rows, present, samples)
    none = featureless(store) if allow_missing and not keep_featureless else []
    if none:
        raise UserError(f"{len(none)} clips have no file for any of the features {', '.join(s.name for s in specs)} "
                        f"(first: {', '.join(none[:5])}); extract at least one feature for them or remove them from the list")
    return store


def load_features(specs, names, cache_dir=None):
    """Load every feature for ``names`` without copying rows into per-split arrays.

    Returns ``({feature: (M, dim) array (or Ragged for frame level) over the M unique names, sorted}, rows)``
    where ``rows[i]`` is the row of ``names[i]``; train and valid sets index the same packed arrays.
    A missing file is a UserError (``load_store(..., allow_missing=True)`` tolerates them).
    """
    store = load_store(specs, names, cache_dir)
    return store.arrays, store.rows
