"""Training noise (dropout masks, expert dropout) drawn per sample of the *global* batch.

In a data-parallel run every rank holds a contiguous part of each global batch (see
``toolkit.distributed``). If each rank drew dropout masks for its own part only, the masks would depend on
how the batch is split, and a 2-process run could not reproduce the 1-process run. Here every rank draws
the noise of the whole global batch from the same seeded generator and keeps its own rows, so a sample
gets the same mask whatever the number of processes. ``train.py`` says where the local rows sit inside the
global batch with ``global_batch(offset, size)``; outside it a batch is its own global batch.

Dropout masks come from 16-bit slices of 64-bit random integers: on a CPU that is cheaper than
``torch.nn.Dropout``'s Bernoulli draw (which dominated the cost of a training step), with keep probability
resolution 2**-16 (``mask_probability``).
"""
import contextlib
import math

import torch
import torch.nn as nn

_INT64_MIN = torch.iinfo(torch.int64).min


class _Placement:
    """Where the rows of the batch being computed sit in the global batch (None: it is its own).

    A plain attribute rather than a ContextVar: ``torch.compile`` traces attribute reads (guarding on their
    values) but breaks its graph at ``ContextVar.get``."""

    where = None


_PLACEMENT = _Placement()


@contextlib.contextmanager
def global_batch(offset, size):
    """Within this block, a batch of B rows is rows ``offset .. offset+B`` of a global batch of ``size``."""
    previous, _PLACEMENT.where = _PLACEMENT.where, (offset, size)
    try:
        yield
    finally:
        _PLACEMENT.where = previous


def _rows(local_rows):
    """(offset, global size) of the current batch; a batch outside ``global_batch`` is its own."""
    where = _PLACEMENT.where
    if where is None:
        return 0, local_rows
    offset, size = where
    if offset + local_rows > size:
        raise ValueError(f"batch of {local_rows} rows at offset {offset} does not fit a global batch of {size}")
    return offset, size


def sample_rand(shape, device):
    """Uniform [0, 1) of ``shape`` (B, ...), row b drawn as row offset+b of the global batch."""
    offset, size = _rows(shape[0])
    return torch.rand((size,) + tuple(shape[1:]), device=device)[offset:offset + shape[0]]


def mask_probability(keep):
    """The probability ``keep_mask`` really keeps an entry with: ``keep`` rounded to a multiple of 2**-16."""
    return round(keep * 65536) / 65536


def keep_mask(shape, keep, device):
    """Bool mask of ``shape`` (B, ...), each entry True with probability ``mask_probability(keep)``, per
    global row."""
    offset, size = _rows(shape[0])
    per_row = math.prod(shape[1:])
    keep = mask_probability(keep)
    if torch.compiler.is_compiling():  # torch.compile cannot trace random_; its own uniform draw is fast there
        uniform = torch.rand(size, per_row, device=device)[offset:offset + shape[0]]
        return (uniform < keep).view(shape)
    words = torch.empty(size, (per_row + 3) // 4, dtype=torch.int64, device=device).random_(_INT64_MIN, None)
    bits = words[offset:offset + shape[0]].view(torch.int16)[:, :per_row]
    return (bits < round(keep * 65536) - 32768).view(shape)


class SampleDropout(nn.Module):
    """``nn.Dropout`` with masks from ``keep_mask``: identical masks per sample whatever the batch split."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        if self.p == 1:
            return torch.zeros_like(x)
        # bool → uint8 view → float: a float × float product; float × bool takes a slow mixed-type path
        mask = keep_mask(x.shape, 1 - self.p, x.device).view(torch.uint8).to(x.dtype)
        return (x * mask).mul_(1 / mask_probability(1 - self.p))

    def extra_repr(self):
        return f"p={self.p}"


def sample_transformer(width, heads, layers, dropout):
    """A pre-norm ``nn.TransformerEncoder`` (batch first, feed-forward 2×width) whose dropout is SampleDropout.

    Attention-weight dropout is off: it runs inside the fused attention kernel, out of reach of per-sample
    masks; dropout after attention and inside the feed-forward block is kept."""
    layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=dropout, batch_first=True, norm_first=True)
    encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
    for block in encoder.layers:
        block.dropout, block.dropout1, block.dropout2 = (SampleDropout(dropout) for _ in range(3))
        block.self_attn.dropout = 0.0
    return encoder
