"""Run directories and checkpoints: what a run writes, and how it is read back."""
import contextlib
import os
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
    """``meta`` carries model name, hparams, feature dims and classes, so the file alone rebuilds the model."""
    from toolkit.io import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"state_dict": model.state_dict(), **meta}, tmp)


def load_checkpoint(path, map_location="cpu"):
    if not os.path.exists(path):
        raise UserError(f"checkpoint {path} not found; train with --save_model to write best.pth")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"cannot read checkpoint {path} ({exc.__class__.__name__}); it is not a best.pth written by train.py") from None


def load_run_args(run_dir):
    path = os.path.join(run_dir, "args.yaml")
    if not os.path.exists(path):
        raise UserError(f"{run_dir} is not a run directory (no args.yaml); pass a folder written by train.py")
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)
