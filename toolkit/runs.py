"""Run directories and checkpoints: what a run writes, and how it is read back."""
import contextlib
import os
import pickle
import re
import shutil
import time

import torch
import yaml

from toolkit.errors import UserError


@contextlib.contextmanager
def staged_run_dir(run_dir):
    """Yield a hidden staging folder; on success it replaces ``run_dir`` in one rename, so an
    interrupted run never leaves a half-written run directory (and never destroys the previous one)."""
    parent, leaf = os.path.split(os.path.abspath(run_dir))
    os.makedirs(parent, exist_ok=True)
    stage = os.path.join(parent, f".{leaf}.tmp-{os.getpid()}-{int(time.time())}")
    os.makedirs(stage)
    try:
        yield stage
        if os.path.exists(run_dir):
            old = os.path.join(parent, f".{leaf}.old-{os.getpid()}")
            os.replace(run_dir, old)
            os.replace(stage, run_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, run_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def save_checkpoint(path, model, meta):
    """``meta`` carries model name, hparams, feature dims and classes, so the file alone rebuilds the model.

    ``meta`` is stored as plain Python data (numpy scalars become numbers), which ``load_checkpoint``
    reads back with ``torch.load(weights_only=True)``."""
    from toolkit.io import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"state_dict": model.state_dict(), **plain_data(meta)}, tmp)


def plain_data(obj):
    """``obj`` with numpy scalars and arrays turned into Python numbers and lists, containers kept."""
    import numpy as np

    if isinstance(obj, dict):
        return {plain_data(k): plain_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain_data(v) for v in obj)
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    return obj


def _numpy_scalar_globals():
    """What torch.load needs to read numpy scalars that older checkpoints may hold in their meta: the
    scalar rebuild function (under its numpy 1.x and 2.x names) and plain numeric dtypes, nothing callable beyond."""
    import numpy as np

    scalar = np.float64(0).__reduce__()[0]
    dtypes = {type(np.dtype(code)) for code in "?bhilqBHILQefdgFDG"}
    return [np.dtype, *dtypes, (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]


def load_checkpoint(path, map_location="cpu"):
    """A best.pth as a dict; read with ``weights_only=True``, so a crafted file cannot run code."""
    if not os.path.exists(path):
        raise UserError(f"checkpoint {path} not found; train with --save_model to write best.pth")
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        culprit = re.search(r"(?:unsupported|Unsupported global:) GLOBAL ([\w.]+)", str(exc))
        what = f"a reference to {culprit[1]}" if culprit else "objects other than tensors and plain data"
        raise UserError(f"checkpoint {path} holds {what}, which a best.pth never does; refusing to load it "
                        "(checkpoints are read as data, never run); use a best.pth written by train.py --save_model") from None
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"cannot read checkpoint {path} ({exc.__class__.__name__}); it is not a best.pth written by train.py") from None
    if not isinstance(ckpt, dict):
        raise UserError(f"checkpoint {path} holds a {type(ckpt).__name__}, not a dict; it is not a best.pth written by train.py")
    return ckpt


def load_run_args(run_dir):
    path = os.path.join(run_dir, "args.yaml")
    if not os.path.exists(path):
        raise UserError(f"{run_dir} is not a run directory (no args.yaml); pass a folder written by train.py")
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)
