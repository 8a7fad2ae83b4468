"""The extraction loop: which clips to do (resume, shards), decoding in background workers, length-sorted
batches, atomic writes, and the report of clips that could not be used.

Workers (a torch DataLoader over the clip list) decode and ``prepare`` clips while the main process encodes,
so the accelerator does not wait on FFmpeg. The main process takes a window of prepared clips, sorts it by
``size`` and cuts it into batches, so clips of similar length share a batch (less padding)."""
import dataclasses
import os
import time
import zlib

import numpy as np

from feature_extraction import decode
from feature_extraction.base import ClipError
from toolkit.errors import UserError
from toolkit.io import save_npy, save_text

WINDOW_BATCHES = 8  # batches of prepared clips sorted together by length
WINDOW_BYTES = 512 << 20  # ... or fewer, once the prepared inputs held reach this size (224 px frames are big)
SHOW_FAILED = 5  # failed clips named in the summary line


@dataclasses.dataclass
class Inputs:
    """How a clip's input is made: frames per second, where faces come from, where decoded audio is kept."""

    fps: float = 3.0
    faces: str = "release"  # release | detect | none (whole frames)
    detector: object = None  # feature_extraction.faces.HaarFaces for faces=detect
    save_wav: str | None = None  # folder that receives <name>.wav decoded from the video, reused afterwards
    openface_bin: str | None = None
    openface_dir: str | None = None  # where the clips' CSVs were looked for (named in messages)
    openface_out: str | None = None
    allow_partial: bool = False  # use what decodes of a stream cut short (decode.check_complete) instead of failing

    def audio_track(self, clip):
        """The clip's audio, not yet decoded: audio/<name>.wav, else the wav --save_wav kept, else the video's
        track (kept as a wav on the way with --save_wav)."""
        cached = os.path.join(self.save_wav, f"{clip.name}.wav") if self.save_wav else None
        if clip.audio:
            return decode.AudioTrack(clip.audio, self.allow_partial)
        if cached and os.path.isfile(cached):
            return decode.AudioTrack(cached, self.allow_partial)
        if not clip.video:
            raise ClipError("no video or audio file")
        return decode.AudioTrack(clip.video, self.allow_partial, keep=cached)

    def audio(self, clip):
        return self.audio_track(clip).read()

    def frames(self, clip):
        if self.faces == "release":
            if not clip.faces:
                raise ClipError("no openface_face/<name>/<name>.npy (use --faces detect or --faces none for other data)")
            rate = decode.video_rate(clip.video) if clip.video else 0.0
            return decode.read_face_crops(clip.faces, step=max(1, round(rate / self.fps)) if rate and self.fps else 1)
        if not clip.video:
            raise ClipError("no video file")
        frames = decode.read_frames(clip.video, self.fps, self.allow_partial)
        return self.detector(frames) if self.faces == "detect" else frames

    def text(self, clip):
        if clip.text is None:
            raise ClipError("no row in the subtitle CSV")
        return clip.text

    def openface(self, clip):
        if clip.openface_csv:
            return clip.openface_csv
        if not self.openface_bin:
            raise ClipError("no OpenFace CSV (place <name>.csv under --openface_dir DIR, or make them with --openface_bin PATH)")
        if not clip.video:
            raise ClipError("no video file")
        from feature_extraction.handcrafted import run_openface

        return run_openface(self.openface_bin, clip.video, self.openface_out)

    def load(self, clip, source):
        return {"audio": self.audio, "audio_stream": self.audio_track, "text": self.text, "images": self.frames,
                "video": self.frames, "openface": self.openface}[source](clip)


class ClipStream:
    """Map-style dataset: clip i → (i, prepared input or None, failure reason or None); runs in workers."""

    def __init__(self, clips, extractor, inputs):
        self.clips, self.extractor, self.inputs = clips, extractor, inputs

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, i):
        clip = self.clips[i]
        try:
            return i, self.extractor.prepare(self.inputs.load(clip, self.extractor.source)), None
        except ClipError as exc:
            return i, None, str(exc)
        except (OSError, ValueError, RuntimeError) as exc:  # a broken file must not end the whole batch
            return i, None, f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"


def _keep(item):
    return item


def nbytes(prepared):
    """Memory held by a prepared input: arrays, and lists or tuples of them (audio pieces)."""
    if isinstance(prepared, np.ndarray):
        return prepared.nbytes
    if isinstance(prepared, (list, tuple)):
        return sum(nbytes(part) for part in prepared)
    return 0


def parse_shard(text, env=os.environ):
    """``K/N`` (0-based K) → (K, N); None → the torchrun or SLURM rank variables when present, else (0, 1)."""
    if text is None:
        for rank, size in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
            if env.get(size, "").isdigit() and env.get(rank, "").isdigit() and int(env[size]) > 1:
                return int(env[rank]), int(env[size])
        return 0, 1
    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise UserError(f"--shard {text!r}: use K/N with 0 <= K < N, e.g. --shard 0/4") from None
    if not 0 <= index < count:
        raise UserError(f"--shard {text}: K must be in 0..{count - 1} (0-based) for N={count}")
    return index, count


def in_shard(name, shard):
    """A clip's shard depends on its name only, so machines that list different folders still agree."""
    index, count = shard
    return zlib.crc32(name.encode("utf-8")) % count == index


def output_paths(out_root, extractor, name):
    return {level: os.path.join(out_root, f"{extractor.name}-{level}", f"{name}.npy") for level in extractor.levels}


@dataclasses.dataclass
class Report:
    """What a run did; ``decode_s`` is the time the main process waited for workers, ``encode_s`` encoding."""

    total: int = 0
    done: int = 0
    existing: int = 0
    other_shards: int = 0
    failed: dict = dataclasses.field(default_factory=dict)
    decode_s: float = 0.0
    encode_s: float = 0.0
    seconds: float = 0.0

    def summary(self, name):
        rate = self.done / self.seconds if self.seconds else 0.0
        busy = self.decode_s + self.encode_s
        share = f", {100 * self.decode_s / busy:.0f}% of it waiting for decoding" if busy else ""
        line = (f"{name}: {self.done} clips written in {self.seconds:.1f} s ({rate:.2f} clips/s{share}), "
                f"{self.existing} already there, {len(self.failed)} failed")
        if self.other_shards:
            line += f", {self.other_shards} left to other shards"
        if self.failed:
            shown = "; ".join(f"{n}: {r}" for n, r in list(self.failed.items())[:SHOW_FAILED])
            line += f"\n  failed: {shown}" + (" ..." if len(self.failed) > SHOW_FAILED else "")
        return line


def write_failures(path, failed):
    """The clips that could not be used, as a CSV (name, reason); removed when none failed."""
    if failed:
        rows = "".join(f"{name},\"{reason.replace(chr(34), chr(39))}\"\n" for name, reason in failed.items())
        save_text(path, "name,reason\n" + rows)
    elif os.path.isfile(path):
        os.remove(path)


def write_outputs(paths, arrays):
    for level, path in paths.items():
        save_npy(path, arrays[level])


def _encode_window(extractor, window, clips, out_root, report, progress):
    """Sort a window of prepared clips by size, encode it batch by batch and write the outputs."""
    window.sort(key=lambda item: -extractor.size(item[1]))
    for start in range(0, len(window), extractor.batch_size):
        batch = window[start:start + extractor.batch_size]
        began = time.perf_counter()
        try:
            results = extractor.encode([prepared for _, prepared in batch])
        except ClipError as exc:  # one bad clip in a batch: encode them one at a time to find it
            results = _one_by_one(extractor, batch, clips, report, exc)
        for (i, _), arrays in zip(batch, results):
            if arrays is not None:
                write_outputs(output_paths(out_root, extractor, clips[i].name), arrays)
                report.done += 1
        report.encode_s += time.perf_counter() - began
        progress.update(len(batch))


def _one_by_one(extractor, batch, clips, report, error):
    """Encode a failed batch clip by clip, so only the clips that fail are reported."""
    if len(batch) == 1:
        report.failed[clips[batch[0][0]].name] = str(error)
        return [None]
    results = []
    for i, prepared in batch:
        try:
            results.append(extractor.encode([prepared])[0])
        except ClipError as exc:
            report.failed[clips[i].name] = str(exc)
            results.append(None)
    return results


def pending_clips(clips, extractor, out_root, overwrite, shard, report):
    todo = []
    for clip in clips:
        if not in_shard(clip.name, shard):
            report.other_shards += 1
        elif not overwrite and all(os.path.isfile(p) for p in output_paths(out_root, extractor, clip.name).values()):
            report.existing += 1
        else:
            todo.append(clip)
    return todo


def extract(extractor, clips, out_root, inputs, overwrite=False, shard=(0, 1), workers=2, progress=True):
    """Run ``extractor`` over ``clips`` into ``out_root``; return a Report (failures never stop the run)."""
    import torch
    from tqdm import tqdm

    started = time.perf_counter()
    report = Report(total=len(clips))
    todo = pending_clips(clips, extractor, out_root, overwrite, shard, report)
    extractor.check_inputs(todo, inputs)
    loader = torch.utils.data.DataLoader(ClipStream(todo, extractor, inputs), batch_size=None, shuffle=False,
                                         num_workers=workers, collate_fn=_keep, prefetch_factor=4 if workers else None)
    window, held, size = [], 0, extractor.batch_size * WINDOW_BATCHES
    bar = tqdm(total=len(todo), unit="clip", desc=extractor.name, disable=not progress or not todo, smoothing=0.1)
    waited = time.perf_counter()
    for i, prepared, reason in loader:
        report.decode_s += time.perf_counter() - waited
        if reason is not None:
            report.failed[todo[i].name] = reason
            bar.update(1)
        else:
            window.append((i, prepared))
            held += nbytes(prepared)
        if len(window) >= size or held >= WINDOW_BYTES:
            _encode_window(extractor, window, todo, out_root, report, bar)
            window, held = [], 0
        waited = time.perf_counter()
    if window:
        _encode_window(extractor, window, todo, out_root, report, bar)
    bar.close()
    report.seconds = time.perf_counter() - started
    return report
