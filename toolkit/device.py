"""The one place that decides where tensors live and in which precision they are computed."""
import contextlib
import os

from toolkit.errors import UserError


DEVICES = ("auto", "cpu", "cuda")
DEVICE_HELP = "auto: cuda when present"
GPU_HELP = "CUDA device index"


def add_device_flags(parser, gpu_default=0, gpu_help=GPU_HELP):
    """The one --device/--gpu argument group of the scripts (train.py's come from TrainConfig, same names and rules)."""
    from toolkit.errors import bounded

    group = parser.add_argument_group("device")
    group.add_argument("--device", choices=DEVICES, default="auto", help=DEVICE_HELP)
    group.add_argument("--gpu", type=bounded(int, 0), default=gpu_default, help=gpu_help)
    return group


def pick_device(device="auto", gpu=0):
    """'auto' → cuda:<gpu> when CUDA is available, else cpu; 'cuda' without CUDA is a UserError."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda asked for, but this PyTorch sees no CUDA GPU; use --device cpu or auto")
        if gpu >= torch.cuda.device_count():
            raise UserError(f"--gpu {gpu} asked for, but only {torch.cuda.device_count()} CUDA devices exist")
        return torch.device(f"cuda:{gpu}")
    if device != "cpu":
        raise UserError(f"--device {device!r}: use auto, cpu or cuda")
    return torch.device("cpu")


def deterministic(device):
    """Same seed, same data, same device → same metrics.

    On CUDA some kernels (scatter/index adds, cuBLAS workspaces) are nondeterministic unless PyTorch is told
    otherwise. The CPU kernels a run uses here are deterministic already, and the switch would import
    PyTorch's compiler stack (about 70 MB of resident memory and a second of start-up), so it is only set for
    CUDA. ``tests/test_train.py::test_same_seed_same_metrics`` checks two CPU runs."""
    import torch

    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


AMP_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}  # torch dtype names


def check_amp(device, amp):
    """Mixed precision is a CUDA feature here: --amp bf16/fp16 on another device is a UserError."""
    if amp != "off" and device.type != "cuda":
        raise UserError(f"--amp {amp} needs a CUDA device (this run is on {device}); use --amp off on CPU")


def autocast(device, amp):
    """The forward pass's precision context: CUDA autocast to bf16/fp16, or nothing with --amp off."""
    import torch

    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=getattr(torch, AMP_DTYPES[amp]))


def grad_scaler(device, amp):
    """fp16 needs loss scaling against underflowing gradients; with bf16 or off the scaler passes through."""
    import torch

    return torch.amp.GradScaler(device.type, enabled=amp == "fp16")


def keep_freed_memory(mmap_threshold=32 << 20, trim_threshold=256 << 20):
    """Let glibc's malloc reuse freed blocks instead of handing them back to the kernel.

    Every training step allocates temporaries of a few MB (gathered batches, dropout masks, activations).
    By default glibc serves such blocks with mmap and returns them with munmap, so each step page-faults
    fresh zeroed pages in again; on a 2-core machine that cost about a quarter of a CPU epoch of the default
    moe at MER scale. Raising the mmap and trim thresholds (what ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` do) keeps up to ``trim_threshold`` bytes of freed heap for reuse. No-op
    where the C library is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, mmap_threshold)) and bool(mallopt(m_trim_threshold, trim_threshold))
