"""Decoding with PyAV (FFmpeg's libraries, bundled in its wheel): audio → 16 kHz mono float32, video →
RGB frames at a chosen rate, and the release's face crops (BGR .npy) → RGB. Every failure of one clip is a
ClipError with a short reason, so the runner reports it and goes on."""
import io
import os
import wave

import numpy as np

from feature_extraction.base import SAMPLE_RATE, ClipError
from toolkit.io import atomic_path


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


def read_audio(path, sample_rate=SAMPLE_RATE):
    """The first audio stream of ``path`` (any container FFmpeg reads) as mono float32 at ``sample_rate``."""
    import av

    with _open(path) as container:
        if not container.streams.audio:
            raise NoStream(f"no audio stream in {os.path.basename(path)}")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks = []
        try:
            for frame in container.decode(container.streams.audio[0]):
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
        except av.error.FFmpegError as exc:
            raise ClipError(f"audio of {os.path.basename(path)} does not decode ({_short(exc)})") from None
    if not chunks:
        raise ClipError(f"empty audio stream in {os.path.basename(path)}")
    return np.concatenate(chunks).astype(np.float32, copy=False)


def wav_bytes(samples, sample_rate=SAMPLE_RATE):
    """The bytes of a 16-bit PCM mono .wav file (the release's format) holding ``samples``."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def write_wav(path, samples, sample_rate=SAMPLE_RATE):
    """16-bit PCM mono .wav (the release's format), written atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        out.write(wav_bytes(samples, sample_rate))


def video_rate(path):
    """Frames per second of the first video stream (0.0 where unknown)."""
    with _open(path) as container:
        if not container.streams.video:
            raise NoStream(f"no video stream in {os.path.basename(path)}")
        rate = container.streams.video[0].average_rate
        return float(rate) if rate else 0.0


def read_frames(path, fps=None):
    """RGB uint8 frames ``(T, H, W, 3)`` of the first video stream, one every 1/``fps`` s (all if None)."""
    import av

    frames, next_time = [], 0.0
    with _open(path) as container:
        if not container.streams.video:
            raise NoStream(f"no video stream in {os.path.basename(path)}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for index, frame in enumerate(container.decode(stream)):
                time = frame.time if frame.time is not None else index / float(stream.average_rate or 25)
                if fps and time + 1e-6 < next_time:
                    continue
                frames.append(frame.to_ndarray(format="rgb24"))
                next_time = (len(frames)) / fps if fps else 0.0
        except av.error.FFmpegError as exc:
            raise ClipError(f"video of {os.path.basename(path)} does not decode ({_short(exc)})") from None
    if not frames:
        raise ClipError(f"no frame decodes in {os.path.basename(path)}")
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
