"""The one place that decides where tensors live and in which precision they are computed."""
import contextlib

import torch

from toolkit.errors import UserError


def pick_device(device="auto", gpu=0):
    """'auto' → cuda:<gpu> when CUDA is available, else cpu; 'cuda' without CUDA is a UserError."""
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


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_amp(device, amp):
    """Mixed precision is a CUDA feature here: --amp bf16/fp16 on another device is a UserError."""
    if amp != "off" and device.type != "cuda":
        raise UserError(f"--amp {amp} needs a CUDA device (this run is on {device}); use --amp off on CPU")


def autocast(device, amp):
    """The forward pass's precision context: CUDA autocast to bf16/fp16, or nothing with --amp off."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def grad_scaler(device, amp):
    """fp16 needs loss scaling against underflowing gradients; with bf16 or off the scaler passes through."""
    return torch.amp.GradScaler(device.type, enabled=amp == "fp16")
