"""File output that never leaves half-written files, and the split-dict format users exchange."""
import contextlib
import json
import os
import tempfile

import numpy as np

from toolkit.errors import UserError

SPLIT_KEYS = ("train_info", "valid_info")
_UMASK = os.umask(0)
os.umask(_UMASK)


def resolve(path):
    """Resolve a path from config.py against the project root unless it is absolute."""
    import config

    return path if os.path.isabs(path) else os.path.join(config.PROJECT_ROOT, path)


def cache_folder(cache_dir):
    """A --cache_dir value → the folder (resolved like config paths), or None for 'none' (no cache)."""
    return None if cache_dir is None or str(cache_dir).lower() == "none" else resolve(cache_dir)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{ext}", dir=directory)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give outputs the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
    split = {"train_info": train_info, "valid_info": valid_info}
    if extra:
        split.update(extra)
    save_npy(path, split)


def load_split(path):
    """Read and validate a split dict; every problem is a one-line UserError naming the file."""
    if not os.path.exists(path):
        raise UserError(f"split file {path} not found; write it with preprocess/mer2025_base.py --label_csv LABELS.csv")
    try:
        split = np.load(path, allow_pickle=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        raise UserError(f"split file {path} is not a saved split dict ({exc.__class__.__name__}); rewrite it with preprocess/mer2025_base.py") from None
    split = split.item() if split.shape == () else None
    if not isinstance(split, dict) or any(k not in split for k in SPLIT_KEYS):
        raise UserError(f"split file {path} must be a dict with keys {list(SPLIT_KEYS)}; rewrite it with preprocess/mer2025_base.py")
    for key in SPLIT_KEYS:
        info = split[key]
        if not isinstance(info, dict) or "names" not in info or "emos" not in info:
            raise UserError(f"split file {path}: '{key}' must be a dict with lists 'names', 'emos' (and optional 'vals')")
        n = len(info["names"])
        if n == 0:
            raise UserError(f"split file {path}: '{key}' is empty; a split needs both training and validation samples")
        for field in ("emos", "vals", "weights", "pseudo"):
            if field in info and info[field] is not None and len(info[field]) != n:
                raise UserError(f"split file {path}: '{key}' has {n} names but {len(info[field])} {field}")
    if any(split["valid_info"].get("pseudo") or []):
        raise UserError(f"split file {path}: valid_info holds pseudo-labeled samples; validation must use true labels only")
    return split
