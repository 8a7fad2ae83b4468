"""The one place that decides where tensors live."""
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
