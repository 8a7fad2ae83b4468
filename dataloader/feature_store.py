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
import concurrent.futures
import dataclasses
import difflib
import errno
import hashlib
import json
import os
import re
import stat
import sys
import threading
import zlib

import numpy as np

import config
from toolkit.errors import UserError
from toolkit.io import atomic_path, is_sample_name, resolve

MODALITY_DICTS = {"video": "FEAT_VIDEO_DICT", "audio": "FEAT_AUDIO_DICT", "text": "FEAT_TEXT_DICT"}
READ_THREADS = 2  # file reads release the GIL; more threads than cores measured slower
LEVELS = ("utt", "frm")
FRAME_SUFFIX = "-FRM"
REPEAT_SEPARATOR = "#"  # expert keys of repeated features: feat, feat#2, feat#3
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
    if REPEAT_SEPARATOR in name:
        raise UserError(f"{where}: a feature name may not hold '{REPEAT_SEPARATOR}' (it separates repeated experts, "
                        f"as in 'feat{REPEAT_SEPARATOR}2'); rename the feature in config.py")
    if not (isinstance(entry, (list, tuple)) and len(entry) in (2, 3)):
        raise UserError(f"{where} must be {ENTRY_HELP}, got {entry!r}")
    dim = entry[0]
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim <= 0:
        raise UserError(f"{where}: dim {dim!r} must be a positive whole number (the C of its (C,) files, "
                        f"written without quotes, e.g. [768, {entry[1]!r}]); fix it in config.py")
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


KNOWN_SHOWN = 20  # known feature names listed after an unknown one


def _did_you_mean(name, known):
    """' (did you mean 'a'?)' for the closest known names (case ignored), or ''."""
    lowered = {k.lower(): k for k in known}
    close = [lowered[k] for k in difflib.get_close_matches(str(name).lower(), lowered, n=3, cutoff=0.6)]
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def lookup_features(names):
    """FeatureSpecs for ``names``; an unknown name is a UserError with the closest known names first."""
    registry = feature_registry()
    unknown = [n for n in names if n not in registry]
    if unknown:
        known = sorted(registry)
        more = f" and {len(known) - KNOWN_SHOWN} more" if len(known) > KNOWN_SHOWN else ""
        raise UserError(
            f"unknown feature {unknown[0]!r}{_did_you_mean(unknown[0], known)}: add it to a FEAT_*_DICT in config.py "
            f"(python preprocess/check_feat_dim.py --emit-config prints entries); known: {', '.join(known[:KNOWN_SHOWN])}{more}"
        )
    if len(set(names)) != len(names):
        raise UserError(f"feature list {list(names)} names a feature twice; list each once")
    return [registry[n] for n in names]



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


def _os_problem(exc):
    """What an OSError on a feature path means for the user, and how to fix it."""
    if exc.errno == errno.ELOOP:
        return "is a symlink loop; point the link at the real file or folder"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "is not readable (permission denied); fix its permissions (chmod a+rX)"
    return f"cannot be read ({exc.strerror or exc}); check the path and the disk"


def require_folder(spec):
    """A missing, looping or unreadable feature folder is a UserError naming it and the config.py entry to fix."""
    try:
        st = os.stat(spec.folder)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise UserError(f"feature folder {spec.folder} for '{spec.name}' {_os_problem(exc)}") from None
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
    if spec.level != "utt" or spec.columns is not None or spec.pool is not None:  # only options away from the defaults enter the key
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
            raise UserError(f"{path} (sample '{name}' of feature '{spec.name}') {_os_problem(exc)}") from None
        paths.append(path)
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\n".encode())
    if missing and not allow_missing:
        shown = ", ".join(missing[:5])
        if len(missing) == len(names):
            raise UserError(
                f"feature '{spec.name}': its folder {spec.folder} holds none of the {len(names)} clips of this split "
                f"(first: {shown}), so it likely belongs to another data set; pick features of this data set with "
                "--feat (or change config.DEFAULT_FEATURES)"
            )
        raise UserError(
            f"feature '{spec.name}': {len(missing)} of {len(names)} samples have no .npy in {spec.folder} "
            f"(first: {shown}); extract the feature for them, remove them from the split or train with --allow_missing"
        )
    present = np.fromiter((p is not None for p in paths), dtype=bool, count=len(paths))
    return paths, present, digest.hexdigest()[:16]


def dtype_problem(dtype):
    """Why a feature file of ``dtype`` cannot be used (with the fix), or None for real numbers."""
    if dtype.kind in "biuf":
        return None
    if dtype.kind == "c":
        return (f"holds complex values (dtype {dtype}); features must be real: save np.real(x) or np.abs(x) as "
                "float32, or re-extract it")
    if dtype.hasobject:
        return "holds Python objects (dtype object); save a numeric array, np.save(path, np.asarray(x, dtype=np.float32))"
    if dtype.kind in "US":
        return f"holds text (dtype {dtype}), not numbers; re-extract it as a float32 array"
    return f"holds dtype {dtype}, not numbers; re-extract it as a float32 array"


def read_npy(path):
    """(array, None) for a readable .npy of real numbers, else (None, problem): what is wrong and how to fix it."""
    try:
        arr = np.load(path, allow_pickle=False)
    except OSError as exc:
        return None, _os_problem(exc)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        parsed = _npy_header(path)
        if parsed is not None and dtype_problem(parsed[3]):
            return None, dtype_problem(parsed[3])
        with open(path, "rb") as f:
            magic = f.read(6)
        if magic != np.lib.format.MAGIC_PREFIX:
            return None, "is not a .npy file (it lacks the NumPy header); re-extract it and save it with np.save"
        detail = (str(exc).strip().splitlines() or [""])[0]
        return None, f"cannot be read as .npy ({exc.__class__.__name__}: {detail}); re-extract this file"
    if not isinstance(arr, np.ndarray):  # np.load opens a .npz archive whatever its name
        arr.close()
        return None, "is a .npz archive (np.savez) saved under a .npy name; save the array itself with np.save(path, array)"
    problem = dtype_problem(arr.dtype)
    return (None, problem) if problem else (arr, None)


def _load_npy(path):
    arr, problem = read_npy(path)
    if problem:
        raise UserError(f"{path} {problem}")
    return arr


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
    for column selections, pooled frames or a first file that is not a plain (dim,) array of real numbers
    (so every file it reads has a real dtype: the header must match byte for byte).

    A cold start reads tens of thousands of small files: this path costs a few microseconds per file,
    several times less than ``np.load``."""
    if first_path is None or spec.pool == "mean" or spec.columns is not None or not hasattr(os, "preadv"):
        return None
    parsed = _npy_header(first_path)
    if parsed is None:
        return None
    header, shape, fortran, dtype = parsed
    if shape != (spec.dim,) or fortran or dtype_problem(dtype):  # only real numbers: others get read_npy's message
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


def _parts(packed):
    return [packed.values, packed.offsets] if isinstance(packed, Ragged) else [packed]


def _write_cache(cache_file, packed):
    """The packed array (``.npy``; frames: ``.npz`` of values and offsets) and its checksum sidecar."""
    with atomic_path(cache_file) as tmp:
        with open(tmp, "wb") as f:
            if isinstance(packed, Ragged):
                np.savez(f, values=packed.values, offsets=packed.offsets)
            else:
                np.save(f, packed)
    values = _parts(packed)[0]
    meta = {"shape": list(values.shape), "dtype": str(values.dtype), "crc32": _scan(_parts(packed))[0]}
    with atomic_path(cache_file + SUM_SUFFIX) as tmp:
        with open(tmp, "w") as f:
            json.dump(meta, f)


def _npy_cache_problem(cache_file, shape, dtype):
    """Why the header or size of a ``.npy`` cache disagrees with ``shape`` and ``dtype``, or None."""
    parsed = _npy_header(cache_file)
    if parsed is None:
        return "its .npy header is unreadable"
    header, found_shape, fortran, found_dtype = parsed
    if found_shape != shape or found_dtype != np.dtype(dtype) or fortran:
        return f"it holds {found_dtype} {found_shape}, expected {np.dtype(dtype)} {shape}"
    expected = len(header) + int(np.prod(shape)) * found_dtype.itemsize
    size = os.path.getsize(cache_file)
    if size != expected:
        return f"it is {size} bytes, expected {expected} (truncated or appended to)"
    return None


def _ragged_problem(packed, spec, present, dtype):
    """Why a frame cache's values/offsets are inconsistent with each other and with ``present``, or None."""
    values, offsets = packed.values, packed.offsets
    if values.ndim != 2 or values.shape[1] != spec.dim or values.dtype != np.dtype(dtype):
        return f"its values are {values.dtype} {values.shape}, expected {dtype} (T, {spec.dim})"
    if offsets.dtype != np.int64 or offsets.shape != (len(present) + 1,):
        return f"its offsets are {offsets.dtype} {offsets.shape}, expected int64 ({len(present) + 1},)"
    lengths = np.diff(offsets)
    if offsets[0] != 0 or offsets[-1] != len(values) or (lengths < 0).any():
        return "its offsets are not monotone from 0 to the number of frames"
    if ((lengths > 0) != present).any():
        return "its offsets disagree with which clips have files"
    return None


def _load_cache(cache_file, spec, present, dtype, mmap):
    """(packed, None) from a cache file that passes every check, or (None, why it fails)."""
    try:
        with open(cache_file + SUM_SUFFIX) as f:
            meta = json.load(f)
        expected_crc = int(meta["crc32"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"its checksum file {os.path.basename(cache_file)}{SUM_SUFFIX} is missing or unreadable"
    try:
        if spec.frame_level:
            with np.load(cache_file, allow_pickle=False) as data:
                packed = Ragged(data["values"], data["offsets"])
            problem = _ragged_problem(packed, spec, present, dtype)
        else:
            problem = _npy_cache_problem(cache_file, (len(present), spec.dim), dtype)
            packed = None if problem else np.load(cache_file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable cache is rebuilt
        return None, f"it cannot be read ({exc.__class__.__name__})"
    if problem:
        return None, problem
    crc, finite = _scan(_parts(packed))
    if not finite:
        return None, "it holds NaN/inf values"
    if crc != expected_crc:
        return None, "its checksum does not match (the file changed after it was written)"
    return packed, None


def load_feature(spec, samples, cache_dir=None, allow_missing=False, dtype="float32", mmap=False):
    """Packed feature ``spec`` of ``samples`` (sorted, unique) and its presence mask (M,) bool.

    Utterance level: a (M, dim) array. Frame level: a ``Ragged`` (values, offsets). ``dtype`` float16 halves
    the memory (and the cache file); ``mmap`` returns an utterance feature memory-mapped from its cache file
    (read-only; rows are paged in when batches gather them), frame features are loaded whole. A cache file
    that fails its checks (see ``_load_cache``) is rebuilt, with one line on stderr saying which and why."""
    if dtype not in CACHE_DTYPES:
        raise UserError(f"--cache_dtype {dtype!r}: use one of {', '.join(CACHE_DTYPES)}")
    if mmap and not cache_dir:
        raise UserError("--mmap reads features from the packed cache; give a --cache_dir (not 'none')")
    paths, present, key = _file_listing(spec, samples, allow_missing)
    ext = ".npz" if spec.frame_level else ".npy"
    suffix = "" if dtype == "float32" else f"-{dtype}"  # float32 caches keep their old names
    cache_file = os.path.join(cache_dir, f"{spec.name}-{len(samples)}-{key}{suffix}{ext}") if cache_dir else None
    if cache_file and os.path.exists(cache_file):
        packed, problem = _load_cache(cache_file, spec, present, dtype, mmap)
        if problem is None:
            return packed, present
        print(f"note: rebuilding feature cache {cache_file}: {problem}", file=sys.stderr, flush=True)
    packed = _as_dtype(spec, _read_all_frames(spec, paths) if spec.frame_level else _read_all(spec, paths), dtype)
    if not cache_file:
        return packed, present
    _write_cache(cache_file, packed)
    if mmap and not spec.frame_level:
        packed = np.load(cache_file, mmap_mode="r")
    return packed, present


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
