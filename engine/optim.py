"""The optimiser and the learning-rate schedule of a run."""
import math

import torch


def adamw(params, lr, weight_decay, device):
    """AdamW with the fused kernel (one pass over every parameter, on CPU and CUDA): on a CPU it cut a
    training epoch of the default moe at MER scale by about a fifth against the per-tensor loop."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=device.type in ("cpu", "cuda"))


def cosine_with_warmup(optimizer, total_steps, warmup_steps):
    def factor(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
