"""Small real media files for the extraction tests, written with PyAV."""
import os

import numpy as np

SAMPLE_RATE = 16000


def tone(seconds, f0=200.0, amplitude=0.3, sample_rate=SAMPLE_RATE):
    """A voiced, speech-like tone: harmonics of f0 under a 4 Hz syllable envelope."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    voice = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (amplitude * voice * envelope / 2.3).astype(np.float32)


def write_clip(path, seconds=2.0, fps=10, audio=True, f0=200.0, amplitude=0.3, size=(64, 48), codec="libx264",
               faststart=False):
    """A clip whose frame i is filled with grey level 10*i (mod 250), with a tone as its audio stream;
    ``faststart``: the mp4 index at the front, as streaming tools write it."""
    import av

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with av.open(path, "w", options={"movflags": "faststart"} if faststart else {}) as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        stream = container.add_stream("aac", rate=SAMPLE_RATE) if audio else None
        if stream is not None:
            stream.layout = "mono"
        for i in range(int(seconds * fps)):
            frame = np.full((size[1], size[0], 3), (10 * i) % 250, np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode())
        if stream is not None:
            frame = av.AudioFrame.from_ndarray(tone(seconds, f0, amplitude)[None, :], format="flt", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE, 0
            container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    return path


def write_release(root, names, seconds=None, audio_less=(), broken=(), subtitles=True):
    """A release folder: video/<name>.mp4, openface_face/<name>/<name>.npy (BGR), subtitle_chieng.csv."""
    for i, name in enumerate(names):
        path = os.path.join(root, "video", f"{name}.mp4")
        if name in broken:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(b"\x00\x00\x00 this is not a video")
            continue
        write_clip(path, seconds=(seconds or 1.0 + 0.5 * (i % 3)), audio=name not in audio_less, f0=150 + 20 * i)
        faces = np.zeros((6 + i, 32, 32, 3), np.uint8)
        faces[..., 0] = 200  # blue in BGR
        os.makedirs(os.path.join(root, "openface_face", name), exist_ok=True)
        np.save(os.path.join(root, "openface_face", name, f"{name}.npy"), faces)
    if subtitles:
        rows = "".join(f"{n},句子{i},sentence {i}\n" for i, n in enumerate(names))
        with open(os.path.join(root, "subtitle_chieng.csv"), "w", encoding="utf-8") as f:
            f.write("name,chinese,english\n" + rows)
    return root


def cut_after_packet(path, share=0.5, kind="audio"):
    """Truncate ``path`` right after the ``kind`` packet that ends nearest to ``share`` of its bytes: a clean cut,
    whose last packet is whole, so FFmpeg decodes up to it without complaint. Returns the bytes kept."""
    import av

    with av.open(path) as container:
        ends = [p.pos + p.size for p in container.demux() if p.pos is not None and p.size and p.stream.type == kind]
    size = os.path.getsize(path)
    keep = min(ends, key=lambda end: abs(end - share * size))
    with open(path, "r+b") as f:
        f.truncate(keep)
    return keep
