"""Reading one feature file: ``.npy`` headers, real-number checks with messages that say how to fix a file,
column selection, the threaded read of many files and the finiteness check over a packed feature.

The feature kinds (dataloader/kinds.py) build on these; nothing here knows what a kind is."""
import concurrent.futures
import errno
import math
import os
import re
import threading

import numpy as np

from toolkit.errors import UserError
from toolkit.io import read_npy_header

READ_THREADS = 2  # file reads release the GIL; more threads than cores measured slower


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


def os_problem(exc):
    """What an OSError on a feature path means for the user, and how to fix it."""
    if exc.errno == errno.ELOOP:
        return "is a symlink loop; point the link at the real file or folder"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "is not readable (permission denied); fix its permissions (chmod a+rX)"
    return f"cannot be read ({exc.strerror or exc}); check the path and the disk"


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
        return None, os_problem(exc)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        parsed = npy_header(path)
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


def load_npy(path):
    arr, problem = read_npy(path)
    if problem:
        raise UserError(f"{path} {problem}")
    return arr


def select_columns(arr, spec, path):
    if spec.columns is None:
        return arr
    try:
        return arr[..., parse_columns(list(spec.columns) if isinstance(spec.columns, tuple) else spec.columns, spec.name)]
    except IndexError:
        raise UserError(f"{path} has shape {arr.shape}: columns {spec.columns!r} of '{spec.name}' are out of range; "
                        "fix the columns in config.py") from None


def check_finite(spec, values, owner_paths):
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad):
        files = list(dict.fromkeys(owner_paths(i) for i in bad))
        raise UserError(f"feature '{spec.name}': {len(files)} files hold NaN/inf values (first: {', '.join(files[:3])}); re-extract them")


def in_threads(fill, n):
    """Call fill(i) for i < n from READ_THREADS threads, one contiguous block of indices per task
    (file reads release the GIL; one future per file would cost more than the read)."""
    step = max(1, -(-n // (READ_THREADS * 4)))

    def block(start):
        for i in range(start, min(n, start + step)):
            fill(i)

    with concurrent.futures.ThreadPoolExecutor(READ_THREADS) as pool:
        list(pool.map(block, range(0, n, step)))


def npy_header(path):
    """(header bytes, shape, fortran order, dtype) of a .npy file, or None when it cannot be parsed here."""
    try:
        with open(path, "rb") as f:
            shape, fortran, dtype = read_npy_header(f)
            size = f.tell()
            f.seek(0)
            return f.read(size), shape, fortran, dtype
    except Exception:  # noqa: BLE001 - np.load reports the problem with its own message
        return None


def frame_counts(paths):
    """T of every ``(T, C)`` file with T > 0 among ``paths``, read from its header alone (files of other
    shapes, and unreadable ones, are left out)."""
    shapes = [parsed[1] for parsed in map(npy_header, paths) if parsed is not None]
    return [shape[0] for shape in shapes if len(shape) == 2 and shape[0] > 0]


def nearest_rank(values, q):
    """The ``q``-th percentile of ``values`` by nearest rank: the smallest of them with at least q % of all at
    or below it (one of the values, so a percentile of frame counts is a frame count)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def raw_reader(spec, first_path):
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
    parsed = npy_header(first_path)
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
