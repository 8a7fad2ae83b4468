"""Decoding with PyAV (FFmpeg's libraries, bundled in its wheel): audio → 16 kHz mono float32 (whole, or as a
stream of pieces that never holds the whole track), video → RGB frames at a chosen rate, and the release's face
crops (BGR .npy) → RGB. Every failure of one clip is a ClipError with a short reason, so the runner reports it
and goes on.

A stream that decodes to less than its container declares (a file cut short: with the index at the front, as
``movflags=faststart`` writes it, FFmpeg decodes the part that is there without complaint) is a ClipError
too, unless ``allow_partial``: features of half a clip are not features of the clip."""
import dataclasses
import io
import os
import wave

import numpy as np

from feature_extraction.base import SAMPLE_RATE, ClipError
from toolkit.io import atomic_path

PIECE_S = 4.0  # audio streams yield pieces of this many seconds (the last one shorter)
SHORTFALL_S = 0.1  # a stream may decode this much less than it declares (codec delay, rounding) ...
SHORTFALL_SHARE = 0.01  # ... plus this share of the declared length, before it counts as partial


class NoStream(ClipError):
    """The file holds no stream of the kind asked for (a video without sound): missing, not broken."""


def _open(path):
    import av

    try:
        return av.open(path)
    except (av.error.FFmpegError, OSError) as exc:
        raise ClipError(f"unreadable file {os.path.basename(path)} ({_short(exc)})") from None


def _short(exc):
    if getattr(exc, "strerror", None):  # FFmpeg's reason without the path, which the caller names
        return str(exc.strerror)[:120]
    text = str(exc).strip().splitlines()
    return (text[0] if text else exc.__class__.__name__)[:120]


def declared_seconds(stream):
    """The length the container declares for ``stream`` in seconds (None where it declares none)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if stream.type == "video" and stream.frames and stream.average_rate:
        return stream.frames / float(stream.average_rate)
    return None


def wav_declared_seconds(path):
    """The length a PCM .wav's header declares (FFmpeg's wav reader goes by the file's size instead, so a cut
    .wav would look whole); None for other files and for headers that leave the size open."""
    try:
        with wave.open(path, "rb") as wav:
            frames, width, rate = wav.getnframes(), wav.getsampwidth() * wav.getnchannels(), wav.getframerate()
    except (wave.Error, EOFError, OSError):
        return None
    open_size = frames == 0 or frames * width >= 0xFFFFFFF0  # streaming writers leave the size at 0 or 2**32 - 1
    return None if open_size or not rate else frames / rate


def _audio_declared(path, container):
    if container.format.name == "wav":
        return wav_declared_seconds(path)
    return declared_seconds(container.streams.audio[0]) if container.streams.audio else None


def check_complete(path, what, decoded_s, declared_s, error=None, allow_partial=False):
    """Refuse a stream that decoded to less than it declares, or stopped at a decoding error, unless
    ``allow_partial`` (then the part is used)."""
    short = declared_s is not None and decoded_s < declared_s - SHORTFALL_S - SHORTFALL_SHARE * declared_s
    if allow_partial or not (short or error is not None):
        return
    of = f" of the {declared_s:.2f} s its container declares" if declared_s is not None else ""
    cause = f" before a decoding error ({_short(error)})" if error is not None else ""
    raise ClipError(f"partial {what} in {os.path.basename(path)}: {decoded_s:.2f} s decode{of}{cause}; the file is "
                    f"cut or damaged (--allow_partial uses the part)")


def audio_pieces(path, sample_rate=SAMPLE_RATE, allow_partial=False, piece_s=PIECE_S):
    """The first audio stream of ``path`` (any container FFmpeg reads) as mono float32 pieces at ``sample_rate``,
    ``piece_s`` seconds each (the last one shorter), decoded as they are asked for. A partial stream raises
    ClipError after its last piece (see the module doc)."""
    import av

    size, held, count, failure = int(piece_s * sample_rate), [], 0, None
    with _open(path) as container:
        if not container.streams.audio:
            raise NoStream(f"no audio stream in {os.path.basename(path)}")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        source_samples, source_rate = 0, stream.rate or sample_rate
        try:
            for frame in container.decode(stream):
                source_samples += frame.samples
                held.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
                if sum(map(len, held)) >= size:
                    block = np.concatenate(held)
                    whole = len(block) // size * size
                    held, count = [block[whole:]], count + whole
                    yield from (block[start:start + size] for start in range(0, whole, size))
        except av.error.FFmpegError as exc:
            if source_samples == 0:
                raise ClipError(f"audio of {os.path.basename(path)} does not decode ({_short(exc)})") from None
            failure = exc
        held.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
        declared = _audio_declared(path, container)
    rest = np.concatenate(held) if held else np.zeros(0, np.float32)
    if count + len(rest) == 0:
        raise ClipError(f"empty audio stream in {os.path.basename(path)}")
    check_complete(path, "audio", source_samples / source_rate, declared, failure, allow_partial)
    for start in range(0, len(rest), size):
        yield rest[start:start + size].astype(np.float32, copy=False)


def read_audio(path, sample_rate=SAMPLE_RATE, allow_partial=False):
    """The whole first audio stream of ``path`` as one mono float32 array at ``sample_rate`` (see audio_pieces)."""
    return np.concatenate(list(audio_pieces(path, sample_rate, allow_partial))).astype(np.float32, copy=False)


def _pcm16(samples):
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")


def wav_bytes(samples, sample_rate=SAMPLE_RATE):
    """The bytes of a 16-bit PCM mono .wav file (the release's format) holding ``samples``."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(_pcm16(samples).tobytes())
    return buffer.getvalue()


def write_wav(path, samples, sample_rate=SAMPLE_RATE):
    """16-bit PCM mono .wav (the release's format), written atomically."""
    for _ in wav_tee([samples], path, sample_rate):
        pass


def wav_tee(pieces, path, sample_rate=SAMPLE_RATE):
    """Yield ``pieces`` (float32 arrays) while writing them to the 16-bit mono .wav ``path``; the file appears
    (atomically) only once every piece went through, so an interrupted or failed stream leaves none."""
    with atomic_path(path) as tmp, wave.open(tmp, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        for piece in pieces:
            out.writeframes(_pcm16(piece).tobytes())
            yield piece


@dataclasses.dataclass
class AudioTrack:
    """A clip's audio track, read lazily: iterating it yields 16 kHz mono float32 pieces as they decode, so a
    track of any length is never whole in memory; ``keep`` (a .wav path) receives the decoded track on the way.
    Picklable and iterable again (each pass decodes anew)."""

    path: str
    allow_partial: bool = False
    keep: str | None = None

    def __iter__(self):
        pieces = audio_pieces(self.path, allow_partial=self.allow_partial)
        return wav_tee(pieces, self.keep) if self.keep else iter(pieces)

    def declared_seconds(self):
        """The audio stream's declared length (None where the container declares none)."""
        with _open(self.path) as container:
            return _audio_declared(self.path, container)

    def read(self):
        """The whole track as one array."""
        return np.concatenate(list(self)).astype(np.float32, copy=False)


def video_rate(path):
    """Frames per second of the first video stream (0.0 where unknown)."""
    with _open(path) as container:
        if not container.streams.video:
            raise NoStream(f"no video stream in {os.path.basename(path)}")
        rate = container.streams.video[0].average_rate
        return float(rate) if rate else 0.0


def read_frames(path, fps=None, allow_partial=False):
    """RGB uint8 frames ``(T, H, W, 3)`` of the first video stream, one every 1/``fps`` s (all if None); a
    partial stream is a ClipError unless ``allow_partial`` (see the module doc)."""
    import av

    frames, next_time, end, failure = [], 0.0, 0.0, None
    with _open(path) as container:
        if not container.streams.video:
            raise NoStream(f"no video stream in {os.path.basename(path)}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        step = 1.0 / float(stream.average_rate or 25)
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0
        try:
            for index, frame in enumerate(container.decode(stream)):
                time = frame.time - start if frame.time is not None else index * step
                end = max(end, time + step)
                if fps and time + 1e-6 < next_time:
                    continue
                frames.append(frame.to_ndarray(format="rgb24"))
                next_time = (len(frames)) / fps if fps else 0.0
        except av.error.FFmpegError as exc:
            if not frames:
                raise ClipError(f"video of {os.path.basename(path)} does not decode ({_short(exc)})") from None
            failure = exc
        declared = declared_seconds(stream)
    if not frames:
        raise ClipError(f"no frame decodes in {os.path.basename(path)}")
    check_complete(path, "video", end, declared, failure, allow_partial)
    return np.stack(frames)


def read_face_crops(path, step=1):
    """The release's ``openface_face/<name>/<name>.npy``: (T, H, W, 3) uint8 in OpenCV's BGR order → RGB,
    every ``step``-th crop."""
    try:
        crops = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ClipError(f"face crops {os.path.basename(path)} do not load ({_short(exc)})") from None
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
        raise ClipError(f"face crops {os.path.basename(path)} have shape {crops.shape} {crops.dtype}; "
                        f"expected (T, H, W, 3) uint8")
    if crops.shape[0] == 0:
        raise ClipError(f"face crops {os.path.basename(path)} hold no frame")
    return np.ascontiguousarray(crops[::max(1, step), :, :, ::-1])


def sample_frames(path, count):
    """``count`` RGB frames ``(count, H, W, 3)`` spread evenly over the clip (at the middle of ``count`` equal
    parts), for models that see a few stills; fewer when the clip has fewer frames. Decoding stops once
    the last one is taken, and only the kept frames are held."""
    import av

    with _open(path) as container:
        if not container.streams.video:
            raise NoStream(f"no video stream in {os.path.basename(path)}")
        stream = container.streams.video[0]
        duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else \
            (container.duration / av.time_base if container.duration else 0.0)
    if duration <= 0:  # length unknown: decode at 2 frames/s and pick among them
        frames = read_frames(path, 2.0)
        return frames[np.unique(np.linspace(0, len(frames) - 1, count).round().astype(int))]
    targets, frames = [(k + 0.5) * duration / count for k in range(count)], []
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for index, frame in enumerate(container.decode(stream)):
                time = frame.time if frame.time is not None else index / float(stream.average_rate or 25)
                if time + 1e-6 < targets[0]:
                    continue
                frames.append(frame.to_ndarray(format="rgb24"))
                targets = [t for t in targets if t > time + 1e-6]  # a frame stands for every target it passed
                if not targets:
                    break
        except av.error.FFmpegError as exc:
            raise ClipError(f"video of {os.path.basename(path)} does not decode ({_short(exc)})") from None
    if not frames:
        raise ClipError(f"no frame decodes in {os.path.basename(path)}")
    return np.stack(frames)
