"""Feature kinds: what a kind of feature is, said in one place.

A kind says how one file is read and validated (its shape rule), how the clips of a feature are packed and
cached, how a batch's rows are gathered on the device, what the input standardisation is fitted over, and
which expert encodes it. The expert is named by a key (``expert``); models/base.py maps that key to an
expert class, since the data layer does not know the models.

Two kinds ship:

- ``utt``: one ``(C,)`` vector per clip (``(1, C)`` is squeezed), packed into one ``(M, C)`` array, cached
  as ``.npy`` (memory-mapped on request), batched as ``(B, C)`` rows, encoded by the "utterance" expert;
- ``frm``: a ``(T, C)`` sequence per clip (T varies; folder names ending in ``-FRM``), packed ragged
  (``Ragged``: all frames end to end plus offsets), cached as ``.npz``, batched as padded ``Frames`` of at
  most ``max_frames``, standardised over frames, encoded by the "temporal" expert.

A new kind is a ``FeatureKind`` subclass put in ``KINDS`` under its name (``register_kind``); config.py
entries then name it as their level (``[dim, folder, "name"]``).
"""
import os

import numpy as np
import torch

from dataloader.npyfile import check_finite, in_threads, load_npy, npy_header, raw_reader, select_columns
from dataloader.packed import Frames, FrameTensor, MappedFeature, Ragged
from toolkit.errors import UserError
from toolkit.levels import FRM, SUFFIXES

DEFAULT = "utt"  # the kind of a feature whose name and config entry say nothing


def as_half(spec, values):
    """``values`` as float16; values beyond float16's range are a UserError."""
    with np.errstate(over="ignore"):
        half = values.astype(np.float16)
    if not np.isfinite(half).all():
        raise UserError(f"feature '{spec.name}' has values beyond float16's range (|x| > 65504); use --cache_dtype float32")
    return half


def read_frames(path, spec):
    """One clip's (T, C) frames after column selection; 1-D files, wrong C and T = 0 are UserErrors."""
    arr = load_npy(path)
    if arr.ndim != 2:
        raise UserError(f"{path} has shape {arr.shape}, but frame-level feature '{spec.name}' needs (T, C) per clip; "
                        "re-extract it as frames, or register the folder as utterance level (third field \"utt\") in config.py")
    if arr.shape[0] == 0:
        raise UserError(f"{path} has 0 frames (shape {arr.shape}); re-extract it, or delete it and train with --allow_missing")
    arr = select_columns(arr, spec, path)
    if arr.shape[1] != spec.dim:
        raise UserError(f"{path} has shape {arr.shape}, expected (T, {spec.dim}) as config.py says "
                        "(after its column selection); fix the dim or columns in config.py or re-extract")
    return np.ascontiguousarray(arr, dtype=np.float32)


class FeatureKind:
    """The interface every kind offers; ``UtteranceKind`` and ``FrameKind`` are the two that ship."""

    name = None  # the level name in config.py entries and checkpoints ("utt", "frm")
    expert = None  # key of the expert that encodes it (models/base.py EXPERTS)
    suffix = None  # a feature name ending in it (any case) is of this kind; None: only named in config.py
    frames = False  # a batch holds padded Frames (True) or (B, C) rows (False)
    pools = False  # accepts the config option pool "mean" (frame files kept as their mean vector)
    cache_ext = ".npy"

    def __repr__(self):
        return f"<feature kind {self.name!r}: expert {self.expert!r}>"

    def file_dim(self, shape):
        """(C, None) for a file of ``shape`` that this kind can read, else (None, what is wrong)."""
        raise NotImplementedError

    def read(self, path, spec):
        """One clip's array from ``path``, validated against ``spec`` (UserError naming the file otherwise)."""
        raise NotImplementedError

    def pack(self, spec, paths):
        """Every clip packed in one host object; ``paths[i]`` None: clip i lacks the file (zeros or T = 0)."""
        raise NotImplementedError

    def parts(self, packed):
        """The arrays of ``packed`` in checksum order; the first holds the values."""
        raise NotImplementedError

    def as_dtype(self, spec, packed, dtype):
        raise NotImplementedError

    def save(self, f, packed):
        raise NotImplementedError

    def open_cache(self, cache_file, spec, present, dtype, mmap):
        """(packed, None) from a cache file whose structure fits ``spec`` and ``present``, or (None, why not).
        The checksum and finiteness are checked by the store, over ``parts``."""
        raise NotImplementedError

    def reopen(self, cache_file, packed, mmap):
        """``packed`` after its cache file is written (e.g. memory-mapped from it)."""
        return packed

    def holds(self, obj):
        """Whether ``obj`` is a packed form of this kind (host or device)."""
        raise NotImplementedError

    def to_device(self, packed, device):
        raise NotImplementedError

    def gather(self, tensor, rows, max_frames):
        """The batch input of clips ``rows`` as float32 on the tensor's device."""
        raise NotImplementedError

    def move(self, value, device):
        """A batch input (from ``gather``) moved to ``device``."""
        raise NotImplementedError

    def batch_size(self, value):
        raise NotImplementedError

    def norm_input(self, tensor, rows):
        """(x, indices): the (N, C) tensor and its rows over which the expert's standardisation is fitted."""
        raise NotImplementedError


class UtteranceKind(FeatureKind):
    name = "utt"
    expert = "utterance"
    pools = True

    def file_dim(self, shape):
        if len(shape) == 2 and shape[0] == 1:
            shape = shape[1:]
        if len(shape) != 1 or shape[0] == 0:
            return None, f"shape {shape}, expected (C,) or (1, C) for an utterance-level feature"
        return shape[0], None

    def read(self, path, spec):
        """One utterance vector (C,) of ``spec`` (frame files are mean-pooled when spec.pool == 'mean')."""
        if spec.pool == "mean":
            return read_frames(path, spec).mean(axis=0)
        arr = load_npy(path)
        if arr.ndim == 2 and arr.shape[0] == 1:
            arr = arr[0]
        arr = select_columns(arr, spec, path)
        if arr.shape != (spec.dim,):
            raise UserError(f"{path} has shape {arr.shape}, expected ({spec.dim},) as config.py says; fix the dim in config.py or re-extract")
        return arr

    def pack(self, spec, paths):
        """(M, dim) float32; rows of missing files stay zero. Plain (dim,) files take ``raw_reader``'s fast path
        unless a subclass reads files its own way."""
        packed = np.zeros((len(paths), spec.dim), dtype=np.float32)
        first = next((p for p in paths if p is not None), None)
        fast = raw_reader(spec, first) if type(self).read is UtteranceKind.read else None

        def fill(i):
            if paths[i] is not None and not (fast and fast(paths[i], packed[i])):
                packed[i] = self.read(paths[i], spec)

        in_threads(fill, len(paths))
        check_finite(spec, packed, lambda i: paths[i])
        return packed

    def parts(self, packed):
        return [packed]

    def as_dtype(self, spec, packed, dtype):
        return packed if dtype == "float32" else as_half(spec, packed)

    def save(self, f, packed):
        np.save(f, packed)

    def open_cache(self, cache_file, spec, present, dtype, mmap):
        problem = npy_cache_problem(cache_file, (len(present), spec.dim), dtype)
        if problem:
            return None, problem
        return np.load(cache_file, mmap_mode="r" if mmap else None, allow_pickle=False), None

    def reopen(self, cache_file, packed, mmap):
        return np.load(cache_file, mmap_mode="r") if mmap else packed

    def holds(self, obj):
        return isinstance(obj, (np.ndarray, torch.Tensor, MappedFeature))

    def to_device(self, packed, device):
        if isinstance(packed, np.memmap):
            return MappedFeature(packed, device)
        return torch.from_numpy(packed).to(device)

    def gather(self, tensor, rows, max_frames):
        return tensor.index_select(0, rows).float()

    def move(self, value, device):
        return value.to(device)

    def batch_size(self, value):
        return value.shape[0]

    def norm_input(self, tensor, rows):
        return tensor, rows


def npy_cache_problem(cache_file, shape, dtype):
    """Why the header or size of a ``.npy`` cache disagrees with ``shape`` and ``dtype``, or None."""
    parsed = npy_header(cache_file)
    if parsed is None:
        return "its .npy header is unreadable"
    header, found_shape, fortran, found_dtype = parsed
    if found_shape != shape or found_dtype != np.dtype(dtype) or fortran:
        return f"it holds {found_dtype} {found_shape}, expected {np.dtype(dtype)} {shape}"
    expected = len(header) + int(np.prod(shape)) * found_dtype.itemsize
    size = os.path.getsize(cache_file)
    if size != expected:
        return f"it is {size} bytes, expected {expected} (truncated or appended to)"
    return None


class FrameKind(FeatureKind):
    name = "frm"
    expert = "temporal"
    suffix = SUFFIXES[FRM]
    frames = True
    cache_ext = ".npz"

    def file_dim(self, shape):
        if len(shape) != 2 or shape[1] == 0:
            return None, f"shape {shape}, expected (T, C) for a frame-level feature"
        if shape[0] == 0:
            return None, f"shape {shape}: no frames (T = 0)"
        return shape[1], None

    def read(self, path, spec):
        return read_frames(path, spec)

    def pack(self, spec, paths):
        """Ragged frames of every clip; missing files get T = 0."""
        clips = [None] * len(paths)

        def fill(i):
            if paths[i] is not None:
                clips[i] = self.read(paths[i], spec)

        in_threads(fill, len(paths))
        lengths = np.array([0 if c is None else len(c) for c in clips], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        present = [c for c in clips if c is not None]
        values = np.concatenate(present) if present else np.zeros((0, spec.dim), np.float32)
        ragged = Ragged(np.ascontiguousarray(values, dtype=np.float32), offsets)
        check_finite(spec, ragged.values, lambda j: paths[int(np.searchsorted(offsets, j, side="right")) - 1])
        return ragged

    def parts(self, packed):
        return [packed.values, packed.offsets]

    def as_dtype(self, spec, packed, dtype):
        return packed if dtype == "float32" else Ragged(as_half(spec, packed.values), packed.offsets)

    def save(self, f, packed):
        np.savez(f, values=packed.values, offsets=packed.offsets)

    def open_cache(self, cache_file, spec, present, dtype, mmap):
        """Frames are loaded whole (``mmap`` does not apply)."""
        with np.load(cache_file, allow_pickle=False) as data:
            packed = Ragged(data["values"], data["offsets"])
        problem = ragged_problem(packed, spec, present, dtype)
        return (None, problem) if problem else (packed, None)

    def holds(self, obj):
        return isinstance(obj, (Ragged, FrameTensor))

    def to_device(self, packed, device):
        return FrameTensor.from_ragged(packed, device)

    def gather(self, tensor, rows, max_frames):
        return tensor.gather(rows, max_frames)

    def move(self, value, device):
        return Frames(*(part.to(device) for part in value))

    def batch_size(self, value):
        return value.x.shape[0]

    def norm_input(self, tensor, rows):
        return tensor.values, tensor.frame_rows(rows)


def ragged_problem(packed, spec, present, dtype):
    """Why a frame cache's values/offsets are inconsistent with each other and with ``present``, or None."""
    values, offsets = packed.values, packed.offsets
    if values.ndim != 2 or values.shape[1] != spec.dim or values.dtype != np.dtype(dtype):
        return f"its values are {values.dtype} {values.shape}, expected {dtype} (T, {spec.dim})"
    if offsets.dtype != np.int64 or offsets.shape != (len(present) + 1,):
        return f"its offsets are {offsets.dtype} {offsets.shape}, expected int64 ({len(present) + 1},)"
    lengths = np.diff(offsets)
    if offsets[0] != 0 or offsets[-1] != len(values) or (lengths < 0).any():
        return "its offsets are not monotone from 0 to the number of frames"
    if ((lengths > 0) != present).any():
        return "its offsets disagree with which clips have files"
    return None


KINDS = {}


def register_kind(kind):
    """Add ``kind`` (a FeatureKind instance) to ``KINDS`` under its name; a name already taken is an error."""
    if kind.name in KINDS:
        raise ValueError(f"feature kind {kind.name!r} is registered already")
    KINDS[kind.name] = kind
    return kind


register_kind(UtteranceKind())
register_kind(FrameKind())


def kind_named(name, where):
    """The kind called ``name``; an unknown name is a UserError naming ``where`` it was read and the kinds."""
    kind = KINDS.get(str(name).lower())
    if kind is None:
        raise UserError(f"{where}: level {name!r} must be one of {', '.join(KINDS)}")
    return kind


def kind_for_name(feature_name):
    """The kind a feature's name implies: the first kind whose suffix ends it (any case), else the default."""
    upper = feature_name.upper()
    for kind in KINDS.values():
        if kind.suffix and upper.endswith(kind.suffix.upper()):
            return kind
    return KINDS[DEFAULT]


def kind_of(spec):
    """The kind of a FeatureSpec."""
    return KINDS[spec.level]


def kind_of_packed(obj):
    """The kind whose packed form ``obj`` is (the first registered one that holds it)."""
    for kind in KINDS.values():
        if kind.holds(obj):
            return kind
    raise TypeError(f"no feature kind holds a {type(obj).__name__}")
