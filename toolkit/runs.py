"""Run directories and checkpoints: what a run writes, and how it is read back."""
import contextlib
import os
import pickle
import re
import shutil
import time

from toolkit.errors import UserError, WriteError


# The files of a run directory (this module owns their names; everything else asks it for paths).
ARGS_FILE = "args.yaml"  # the run's settings, flat, plus what it derived from the data (every run holds it)
CONFIG_FILE = "config.yaml"  # the resolved TrainConfig (engine.TrainConfig.load reads it back)
CHECKPOINT_FILE = "best.pth"  # the best epoch's weights (--save_model)
SUMMARY_FILE = "summary.json"  # what scripts read about a finished run
METRICS_FILE = "metrics.csv"  # one row per epoch
RESULTS_FILE = "best_valid_results.npy"  # the best epoch's validation predictions (the published format)
LOG_FILE = "info.log"
RUN_MARKER = ARGS_FILE  # every run directory that train.py writes holds it


def run_file(run_dir, name):
    """The path of one of a run directory's files (``run_file(d, CHECKPOINT_FILE)``)."""
    return os.path.join(run_dir, name)


def is_run_dir(path):
    return os.path.isfile(os.path.join(path, RUN_MARKER))


class RunDir:
    """A run directory being written: claimed before training, committed in one rename after it.

    Claiming (``with RunDir(path, overwrite) as run``) checks that ``path`` is new, empty or a finished run
    of this toolkit (any other folder is the user's and is refused, never renamed or deleted), takes a lock
    so a second process writing the same run dir is refused, and removes staging folders that killed
    processes left. ``run.staged()`` yields a hidden staging folder that replaces ``path`` only when the
    block succeeds; a previous run there is kept as ``.<leaf>.prev-<its finish time>`` unless ``overwrite``.

    A subclass claims another kind of output folder the same way: its ``marker`` file says the folder is
    one, ``flag`` and ``kind`` name it in messages."""

    marker, flag, kind = RUN_MARKER, "--run_dir", "run of train.py"

    def __init__(self, path, overwrite=False):
        self.path = os.path.abspath(path)
        self.parent, self.leaf = os.path.split(self.path)
        self.overwrite = overwrite
        self._lock = None

    def __enter__(self):
        if os.path.lexists(self.path) and not os.path.isdir(self.path):
            raise UserError(f"{self.flag} {self.path} is a file, not a folder; pass a new folder")
        if os.path.isdir(self.path) and os.listdir(self.path) and not self.holds_one(self.path):
            raise UserError(f"{self.flag} {self.path} is a folder that is not a {self.kind} (no {self.marker}); "
                            "it is left untouched: pass a new or empty folder")
        try:
            os.makedirs(self.parent, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{self.flag} {self.path}: cannot make its folder {self.parent} ({exc.strerror or exc}); "
                            "pass a path whose parent is a folder you can write to") from None
        self._lock = _take_lock(os.path.join(self.parent, f".{self.leaf}.lock"), f"{self.flag} {self.path}")
        for name in os.listdir(self.parent):  # the lock is ours: other staging folders of this run are stale
            if name.startswith((f".{self.leaf}.tmp-", f".{self.leaf}.old-")):
                shutil.rmtree(os.path.join(self.parent, name), ignore_errors=True)
        return self

    def __exit__(self, *exc):
        _release_lock(*self._lock)
        return False

    @classmethod
    def holds_one(cls, path):
        """Whether ``path`` is a finished folder of this kind (it holds the marker file)."""
        return os.path.isfile(os.path.join(path, cls.marker))

    @property
    def previous(self):
        """Where the finished run now in ``path`` will be kept (None: no previous run, or ``overwrite``)."""
        if self.overwrite or not self.holds_one(self.path):
            return None
        finished = time.strftime("%Y%m%d-%H%M%S", time.localtime(os.path.getmtime(os.path.join(self.path, self.marker))))
        keep = os.path.join(self.parent, f".{self.leaf}.prev-{finished}")
        return keep if not os.path.exists(keep) else f"{keep}-{os.getpid()}"

    def note(self):
        """One log line on what happens to the run already in ``path``."""
        if not self.holds_one(self.path):
            return f"run dir {self.path} (new)"
        if self.overwrite:
            return f"run dir {self.path}: the previous run there is replaced (--overwrite)"
        return f"run dir {self.path}: the previous run there is kept as {self.previous} (--overwrite replaces it)"

    @contextlib.contextmanager
    def staged(self):
        keep = self.previous
        stage = os.path.join(self.parent, f".{self.leaf}.tmp-{os.getpid()}-{int(time.time())}")
        os.makedirs(stage)
        try:
            yield stage
            if os.path.isdir(self.path) and self.holds_one(self.path):
                old = keep or os.path.join(self.parent, f".{self.leaf}.old-{os.getpid()}")
                os.replace(self.path, old)
                os.replace(stage, self.path)
                if keep is None:
                    shutil.rmtree(old, ignore_errors=True)
            else:
                if os.path.isdir(self.path):
                    os.rmdir(self.path)  # empty (checked when claimed)
                os.replace(stage, self.path)
        except WriteError as err:  # a file of the stage: name it where it was headed, not its staging copy
            inside = os.path.relpath(os.path.abspath(err.path), stage)
            if inside.split(os.sep)[0] == os.pardir:
                raise
            raise err.moved(os.path.join(self.path, inside)) from None
        finally:
            shutil.rmtree(stage, ignore_errors=True)


class PredictionsDir(RunDir):
    """predict.py's output folder (preds.npz, preds.csv, metrics.json, confusion.png), claimed and replaced as a run
    directory is: earlier predictions there are kept as ``.<leaf>.prev-<their time>`` unless ``overwrite``."""

    marker, flag, kind = "preds.npz", "--out", "folder of predict.py's predictions"


@contextlib.contextmanager
def exclusive(lock_path, what):
    """Hold an exclusive lock on ``lock_path`` while the block runs; one that another process holds is a
    UserError naming ``what`` (e.g. ``--out DIR``) and that process's pid."""
    lock = _take_lock(lock_path, what)
    try:
        yield
    finally:
        _release_lock(*lock)


def _take_lock(lock_path, what):
    """An exclusive ``flock`` on ``lock_path`` (not blocking: a held lock is a UserError naming the holder)."""
    import fcntl

    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"{what}: cannot write in {os.path.dirname(lock_path)} ({exc.strerror or exc}); "
                            "pass a folder you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UserError(f"{what} is being written by another process (pid {holder}); "
                            f"wait for it to finish or pass another {what.split()[0]}") from None
        try:
            same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a lock file that its last holder removed while we waited for it
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            return fd, lock_path
        os.close(fd)


def _release_lock(fd, lock_path):
    import fcntl

    with contextlib.suppress(OSError):
        os.remove(lock_path)  # while still held, so no other process holds a lock on this inode
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@contextlib.contextmanager
def staged_run_dir(run_dir, overwrite=False):
    """Claim ``run_dir`` and yield its staging folder (``RunDir`` in one block, for short writers)."""
    with RunDir(run_dir, overwrite) as run, run.staged() as stage:
        yield stage


def save_checkpoint(path, model, meta):
    """``meta`` carries model name, hparams, feature dims and classes, so the file alone rebuilds the model.

    ``meta`` is stored as plain Python data (numpy scalars become numbers), which ``load_checkpoint``
    reads back with ``torch.load(weights_only=True)``."""
    import torch

    from toolkit.io import atomic_path, write_error

    try:
        with atomic_path(path) as tmp:
            torch.save({"state_dict": model.state_dict(), **plain_data(meta)}, tmp)
    except RuntimeError as exc:  # torch's writer reports a failed write (a full disk, a size limit) this way
        raise write_error(path, exc) from None


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


def refused_content(exc):
    """What ``torch.load(weights_only=True)`` refused to unpickle, from its UnpicklingError ``exc``."""
    culprit = re.search(r"(?:unsupported|Unsupported global:) GLOBAL ([\w.]+)", str(exc))
    return f"a reference to {culprit[1]}" if culprit else "objects other than tensors and plain data"


def load_checkpoint(path, map_location="cpu"):
    """A best.pth as a dict; read with ``weights_only=True``, so a crafted file cannot run code. Checkpoints
    older than frame-level features get ``feat_levels`` (all utterance level) here, the one place they are patched."""
    import torch

    if not os.path.exists(path):
        raise UserError(f"checkpoint {path} not found; train with --save_model to write best.pth")
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(f"checkpoint {path} holds {refused_content(exc)}, which a best.pth never does; refusing to load it "
                        "(checkpoints are read as data, never run); use a best.pth written by train.py --save_model") from None
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"cannot read checkpoint {path} ({exc.__class__.__name__}); it is not a best.pth written by train.py") from None
    if not isinstance(ckpt, dict):
        raise UserError(f"checkpoint {path} holds a {type(ckpt).__name__}, not a dict; it is not a best.pth written by train.py")
    if not ckpt.get("feat_levels") and isinstance(ckpt.get("feat_dims"), dict):  # written before frame-level features
        ckpt["feat_levels"] = {key: "utt" for key in ckpt["feat_dims"]}
    state = ckpt.get("state_dict")
    if isinstance(state, dict):
        bad = next((k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()), None)
        if bad is not None:
            raise UserError(f"checkpoint {path} holds NaN/inf weights ({bad}): a diverged model is not a result; retrain it with a lower --lr")
    return ckpt


def load_run_args(run_dir):
    """The flat settings record (args.yaml) of a run directory."""
    from toolkit.io import read_yaml

    path = run_file(run_dir, ARGS_FILE)
    if not os.path.exists(path):
        raise UserError(f"{run_dir} is not a run directory (no {ARGS_FILE}); pass a folder written by train.py")
    args = read_yaml(path, "run settings", "retrain the run or restore the file train.py wrote")
    if not isinstance(args, dict):
        raise UserError(f"run settings {path} must map setting names to values; retrain the run or restore the file train.py wrote")
    return args
