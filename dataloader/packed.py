"""Packed forms of a feature: ``Ragged`` frames on the host, and what batches gather from on the device
(``FrameTensor`` → ``Frames``; ``MappedFeature`` for rows left in a memory-mapped cache file)."""
import collections
import dataclasses

import numpy as np
import torch


@dataclasses.dataclass
class Ragged:
    """Frames of M clips packed end to end: clip ``i`` is ``values[offsets[i]:offsets[i + 1]]`` (T may be 0 only
    for a clip whose file is missing)."""

    values: np.ndarray  # (sum T, C) float32
    offsets: np.ndarray  # (M + 1,) int64

    def __len__(self):
        return len(self.offsets) - 1

    @property
    def lengths(self):
        return np.diff(self.offsets)

    def __getitem__(self, i):
        return self.values[self.offsets[i]:self.offsets[i + 1]]



Frames = collections.namedtuple("Frames", "x valid")
Frames.__doc__ = "A padded frame batch: x (B, L, C) float, valid (B, L) bool (False on padding)."


class FrameTensor:
    """Ragged frames on a device: ``values`` (sum T, C) and ``offsets`` (M + 1); ``gather`` makes padded batches."""

    def __init__(self, values, offsets):
        self.values = values
        self.offsets = offsets
        self.lengths = offsets[1:] - offsets[:-1]

    @classmethod
    def from_ragged(cls, ragged, device="cpu"):
        return cls(torch.from_numpy(ragged.values).to(device), torch.from_numpy(ragged.offsets).to(device))

    @property
    def device(self):
        return self.values.device

    def __len__(self):
        return len(self.lengths)

    def to(self, device):
        return FrameTensor(self.values.to(device), self.offsets.to(device))

    def frame_rows(self, rows):
        """Indices into ``values`` of every frame of clips ``rows`` (e.g. to fit a standardisation on them)."""
        lengths = self.lengths.index_select(0, rows)
        starts = self.offsets.index_select(0, rows)
        total = int(lengths.sum())
        clip = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), lengths, output_size=total)
        first = torch.cumsum(lengths, 0) - lengths  # position of each clip's first frame in the output
        return starts[clip] + torch.arange(total, device=rows.device) - first[clip]

    def gather(self, rows, max_frames):
        """Frames of clips ``rows``, padded to L = min(longest, max_frames) (at least 1).

        A clip of T > max_frames frames keeps the uniformly spaced frames floor(j * T / max_frames); shorter
        clips keep every frame. One gather for the whole batch, no loop over samples; a clip's frames do not
        depend on the rest of its batch."""
        lengths = self.lengths.index_select(0, rows)
        kept = lengths.clamp(max=max_frames)  # L_b
        width = max(int(kept.max()) if len(rows) else 0, 1)
        j = torch.arange(width, device=rows.device)
        valid = j.unsqueeze(0) < kept.unsqueeze(1)  # (B, L)
        frame = torch.div(j.unsqueeze(0) * lengths.unsqueeze(1), kept.clamp_min(1).unsqueeze(1), rounding_mode="floor")
        index = torch.where(valid, self.offsets.index_select(0, rows).unsqueeze(1) + frame, torch.zeros_like(frame))
        if self.values.shape[0] == 0:  # every clip of this feature is missing
            x = self.values.new_zeros(len(rows), width, self.values.shape[1], dtype=torch.float32)
        else:
            x = self.values[index].float() * valid.unsqueeze(-1)
        return Frames(x, valid)


class MappedFeature:
    """An utterance feature left in its memory-mapped cache file (``--mmap``): only the rows a batch gathers
    are read, then moved to ``device``. Offers the two things batches and normalisers use: ``shape`` and
    ``index_select(0, rows)``."""

    def __init__(self, array, device):
        self.array = array
        self.device = torch.device(device)

    @property
    def shape(self):
        return self.array.shape

    def index_select(self, dim, rows):
        if dim != 0:
            raise ValueError("MappedFeature gathers rows only (dim 0)")
        return torch.from_numpy(self.array[rows.cpu().numpy()]).to(self.device)
