"""File output that never leaves half-written files, and the split-dict format users exchange.

Files users exchange (split dicts, best_valid_results.npy) are pickles inside .npy files. They are read
with ``load_npy_data``: a restricted unpickler that rebuilds plain data (dicts, lists, strings, numbers
and numeric/string arrays) and refuses anything else, so a crafted file can never run code."""
import builtins
import codecs
import contextlib
import errno
import hashlib
import json
import logging
import math
import numbers
import os
import pickle
import re
import shutil
import socket
import sys
import tempfile
import time

import numpy as np

from toolkit.errors import UserError, WriteError

SPLIT_KEYS = ("train_info", "valid_info")  # the split dict format users exchange: these two keys, each {names, emos, vals}
TRAIN_KEY, VALID_KEY = SPLIT_KEYS
_UMASK = os.umask(0)
os.umask(_UMASK)


PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def resolve(path):
    """Resolve a path from config.py against the project root unless it is absolute."""
    path = os.fspath(path)
    return path if os.path.isabs(path) else os.path.join(PROJECT_ROOT, path)


def read_yaml(path, what, fix, missing_ok=False):
    """The content of a YAML file (plain data only: safe_load refuses tags); every problem is one UserError in
    one wording: ``<what> <path>: <problem>; <fix>``. ``missing_ok``: a missing file reads as None."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise UserError(f"{what} {path}: no such file; {fix}") from None
    except OSError as err:
        raise UserError(f"{what} {path}: cannot read it ({err.strerror}); {fix}") from None
    except UnicodeDecodeError:
        raise UserError(f"{what} {path}: not UTF-8 text; {fix}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{what} {path}: not valid YAML{line} ({problem}); {fix}") from None


def split_path(train_lst, dataset):
    """The split dict ``<train_lst>/<dataset>.npy`` (train_lst resolved like config paths)."""
    return os.path.join(resolve(train_lst), f"{dataset}.npy")


def cache_folder(cache_dir):
    """A --cache_dir value → the folder (resolved like config paths), or None for 'none' (no cache)."""
    return None if cache_dir is None or str(cache_dir).lower() == "none" else resolve(cache_dir)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    An OSError while writing (a full disk, a file size limit, no permission) is a ``WriteError`` naming ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    base, ext = os.path.splitext(os.path.basename(path))
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.{_temp_owner()}.", suffix=f".tmp{ext}", dir=directory)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give outputs the usual permissions
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def write_error(path, exc):
    """A ``WriteError`` naming ``path`` for ``exc``, raised while writing it. Writers that report no errno
    (numpy's ``n requested and m written``, torch's ``unexpected pos``) get the likely cause: a file size
    limit in force, or a disk with no room left."""
    code = getattr(exc, "errno", None)
    if code is None:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        if soft != resource.RLIM_INFINITY:
            code = errno.EFBIG
        else:
            with contextlib.suppress(OSError):
                code = errno.ENOSPC if shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free < (1 << 20) else None
    detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return WriteError(path, code, f"{type(exc).__name__}: {detail}")


class LogFile(logging.FileHandler):
    """A log file whose failed write (a full disk, a file size limit) is a ``WriteError`` naming it, instead of
    the traceback that logging prints and goes on after."""

    failed = False

    def handleError(self, record):
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            self.failed = True
            raise write_error(self.baseFilename, exc) from None
        super().handleError(record)

    def close(self):
        try:
            super().close()
        except OSError as exc:  # the last lines did not fit
            if not self.failed:  # (else that failure is already reported)
                raise write_error(self.baseFilename, exc) from None


def _host_tag():
    """8 hex digits naming this machine, so a shared folder never mixes up process ids of two hosts."""
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _temp_owner():
    return f"{os.getpid()}-{_host_tag()}"


# .<base>.<pid>-<host>.<mkstemp random>.tmp<ext>, as atomic_path names its temporary files
_TEMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)-(?P<host>[0-9a-f]{8})\.[A-Za-z0-9_]+\.tmp(\.[^.]*)?$")


def _process_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, OSError):
        return False  # exists under another user, or cannot tell: keep the file
    return False


def remove_stale_temps(folder, older_than_s=60):
    """Remove the temporary files ``atomic_path`` left in ``folder`` when its process was killed.

    Only files whose creating process (pid and host are in the name) no longer runs on this machine and
    that were last modified more than ``older_than_s`` seconds ago; other hosts' files are left alone.
    Returns the removed paths."""
    if not os.path.isdir(folder):
        return []
    host, now, removed = _host_tag(), time.time(), []
    for name in os.listdir(folder):
        match = _TEMP_NAME.match(name)
        if not match or match["host"] != host or not _process_gone(int(match["pid"])):
            continue
        path = os.path.join(folder, name)
        try:
            if now - os.path.getmtime(path) >= older_than_s and os.path.isfile(path):
                os.remove(path)
                removed.append(path)
        except FileNotFoundError:
            pass  # another cleaner was faster
    return removed


class _Refused(Exception):
    """A pickle asks for something plain data never holds."""


_PLAIN_KINDS = "biufcSU"  # bool, integers, floats, complex, bytes, str
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's array rebuild function (numpy 1.x and 2.x)
_SCALAR = np.float64(0).__reduce__()[0]               # numpy's scalar rebuild function


def _reconstruct(cls, *args):
    if cls is not np.ndarray:
        raise _Refused(f"an array of type {getattr(cls, '__name__', cls)!r}")
    return _RECONSTRUCT(cls, *args)


def _dtype(*args):
    dtype = np.dtype(*args)
    if dtype.kind not in _PLAIN_KINDS + "O":  # object arrays are checked once built (only the outer 0-d container may be one)
        raise _Refused(f"an array of dtype {dtype}")
    return dtype


_SAFE_GLOBALS = {
    **{(module, "_reconstruct"): _reconstruct for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "scalar"): _SCALAR for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles (older numpy)
    **{("builtins", name): getattr(builtins, name) for name in ("dict", "list", "tuple", "str", "int", "float", "bool")},
}


class _PlainUnpickler(pickle.Unpickler):
    """Rebuilds only numpy arrays/scalars of plain dtypes and builtin containers; anything else is refused."""

    def find_class(self, module, name):
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(f"a reference to {module}.{name}") from None


def _first_unplain(obj):
    """Description of the first value in ``obj`` that is not plain data, or None."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if item is None or isinstance(item, (str, bytes, bool, int, float, complex)):
            continue
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, (np.ndarray, np.generic)):
            if item.dtype.kind not in _PLAIN_KINDS or item.dtype.names is not None:
                return f"a nested array of dtype {item.dtype}"
        else:
            return f"a value of type {type(item).__name__}"
    return None


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def read_npy_header(f):
    """(shape, fortran order, dtype) from the header of the .npy file ``f`` (open at its start; left at the
    data); ValueError for a file that is not .npy version 1.0 or 2.0."""
    version = np.lib.format.read_magic(f)
    if version not in _HEADER_READERS:
        raise ValueError(f"unsupported .npy version {version}")
    return _HEADER_READERS[version](f)


def load_npy_data(path, what, fix):
    """The content of a .npy file written by ``np.save``, read without running code from it.

    An object .npy (a pickled dict, list, ...) is unpickled by a restricted unpickler that accepts only
    plain data; a numeric array is read with ``allow_pickle=False``. ``what`` names the file kind in
    errors, ``fix`` says how to get a good one. Returns the object (a 0-d container is unwrapped)."""
    try:
        with open(path, "rb") as f:
            shape, _, dtype = read_npy_header(f)
            if not dtype.hasobject:
                return np.load(path, allow_pickle=False)
            array = _PlainUnpickler(f, encoding="latin1").load()
    except _Refused as why:
        raise UserError(f"{what} {path} holds {why}, which plain data never does; refusing to load it "
                        f"(it is read as data, never run): {fix}") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        raise UserError(f"{what} {path} is not a readable .npy file ({exc.__class__.__name__}); {fix}") from None
    if not isinstance(array, np.ndarray) or array.dtype != object or array.shape != shape:
        raise UserError(f"{what} {path}: its content does not match its .npy header; {fix}")
    content = array.item() if shape == () else array.tolist()
    bad = _first_unplain(content)
    if bad:
        raise UserError(f"{what} {path} holds {bad}, which plain data never does; refusing to load it: {fix}")
    return content


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_npy(path, obj):
    """np.save (dicts are pickled, as the split format requires) via a temporary file."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, obj, allow_pickle=True)


def save_text(path, text):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def save_json(path, obj):
    save_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def save_split(path, train_info, valid_info, extra=None):
    """Write a split dict ``{"train_info": {...}, "valid_info": {...}}`` (names, emos, vals lists)."""
    split = {TRAIN_KEY: train_info, VALID_KEY: valid_info}
    if extra:
        split.update(extra)
    save_npy(path, split)


def load_split(path):
    """Read and validate a split dict; every problem is a one-line UserError naming the file.

    Keys besides train_info/valid_info (such as ``source``, the label CSV it was made from) are kept and
    ignored here, so files of the plain published format and of this project read alike."""
    if not os.path.exists(path):
        raise UserError(f"split file {path} not found; write it with preprocess/mer2025_base.py --label_csv LABELS.csv")
    split = load_npy_data(path, "split file", "rewrite it with preprocess/mer2025_base.py")
    if not isinstance(split, dict) or any(k not in split for k in SPLIT_KEYS):
        raise UserError(f"split file {path} must be a dict with keys {list(SPLIT_KEYS)}; rewrite it with preprocess/mer2025_base.py")
    for key in SPLIT_KEYS:
        info = split[key]
        if not isinstance(info, dict) or "names" not in info or "emos" not in info:
            raise UserError(f"split file {path}: '{key}' must be a dict with lists 'names', 'emos' (and optional 'vals')")
        for field in ("names",) + SPLIT_FIELDS:
            if field in info and info[field] is not None and not isinstance(info[field], (list, tuple, np.ndarray)):
                raise UserError(f"split file {path}: '{key}' field '{field}' is a {type(info[field]).__name__}, not a list")
        n = len(info["names"])
        if n == 0:
            raise UserError(f"split file {path}: '{key}' is empty; a split needs both training and validation samples")
        for field in SPLIT_FIELDS:
            if field in info and info[field] is not None and len(info[field]) != n:
                raise UserError(f"split file {path}: '{key}' has {n} names but {len(info[field])} {field}")
        check_split_values(path, key, info)
    pseudo = split[VALID_KEY].get("pseudo")
    if pseudo is not None and any(pseudo):
        raise UserError(f"split file {path}: valid_info holds pseudo-labeled samples; validation must use true labels only")
    return split


SPLIT_FIELDS = ("emos", "vals", "weights", "pseudo")


def is_sample_name(name):
    """A sample name is a plain file stem: ``<feature folder>/<name>.npy`` must stay inside its folder."""
    return not _bad_name(name)


def _bad_name(name):
    return (not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name
            or "\0" in name or (os.altsep and os.altsep in name))


def _real(x):
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


# field → (value is bad, what a good value is)
_FIELD_RULES = {
    "emos": (lambda x: not isinstance(x, str), "an emotion name (a string)"),
    "vals": (lambda x: not _real(x) or math.isinf(x), "a finite number, or NaN for no valence"),
    "weights": (lambda x: not _real(x) or not math.isfinite(x) or x < 0, "a finite number >= 0"),
    "pseudo": (lambda x: not isinstance(x, (bool, np.bool_)), "True or False"),
}


def check_split_values(path, key, info):
    """Names become file paths (a file stem: no '/', '\\' or '..'); the other per-sample fields follow
    ``_FIELD_RULES``. The first bad sample is named."""
    names = info["names"]
    for i, name in enumerate(names):
        if _bad_name(name):
            raise UserError(f"split file {path}: {key} names[{i}] is {name!r}, not a sample name (a non-empty file stem "
                            "without '/', '\\' or '..'); fix the label CSV and rewrite the split with preprocess/mer2025_base.py")
    for field, (bad, good) in _FIELD_RULES.items():
        values = info.get(field)
        for name, value in zip(names, () if values is None else values):
            if bad(value):
                raise UserError(f"split file {path}: {key} {field} of sample '{name}' is {value!r}; it must be {good}")
