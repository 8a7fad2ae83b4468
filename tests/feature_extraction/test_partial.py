"""A clip cut short decodes partially without an error when its index is at the front (``movflags=faststart``,
as streaming tools write it): its decoded length is compared with the one its container declares, and a clip
that falls short is listed as failed (nothing written) unless --allow_partial."""
import os

import numpy as np
import pytest

import extract
from feature_extraction import decode
from feature_extraction.base import ClipError
from tests.bad_inputs.helpers import run_main
from tests.feature_extraction.media import SAMPLE_RATE, cut_after_packet, write_clip, write_release


@pytest.fixture
def cut_clip(tmp_path):
    """A 3 s faststart mp4 (60 frames at 20 fps) cut after the audio packet nearest the middle of its bytes."""
    path = write_clip(str(tmp_path / "cut.mp4"), seconds=3.0, fps=20, faststart=True)
    whole = os.path.getsize(path)
    assert cut_after_packet(path, 0.5) < 0.7 * whole
    return path


def test_a_cut_faststart_clip_is_refused_as_partial(cut_clip):
    with pytest.raises(ClipError, match=r"partial video in cut.mp4: 1\.\d\d s decode of the 3\.00 s .*--allow_partial"):
        decode.read_frames(cut_clip, fps=5)
    with pytest.raises(ClipError, match=r"partial audio in cut.mp4: \d\.\d\d s decode of the 3\.00 s"):
        decode.read_audio(cut_clip)
    frames = decode.read_frames(cut_clip, allow_partial=True)
    samples = decode.read_audio(cut_clip, allow_partial=True)
    assert 10 < len(frames) < 45 and 0.2 * 3 * SAMPLE_RATE < len(samples) < 0.8 * 3 * SAMPLE_RATE


@pytest.mark.parametrize("name, codec, faststart", [("a.mp4", "libx264", True), ("b.mp4", "libx264", False),
                                                    ("c.avi", "mpeg4", False), ("d.mkv", "libx264", False)])
def test_whole_clips_are_not_partial(tmp_path, name, codec, faststart):
    path = write_clip(str(tmp_path / name), seconds=2.0, fps=10, codec=codec, faststart=faststart)
    assert len(decode.read_frames(path)) == 20
    assert len(decode.read_audio(path)) >= 1.95 * SAMPLE_RATE  # AAC may add a few ms of priming or padding
    assert sum(len(piece) for piece in decode.AudioTrack(path)) == len(decode.read_audio(path))


def test_a_cut_wav_is_partial(tmp_path):
    path = str(tmp_path / "a.wav")
    decode.write_wav(path, np.zeros(2 * SAMPLE_RATE, np.float32))
    with open(path, "r+b") as f:  # the header still declares 2 s
        f.truncate(44 + SAMPLE_RATE)
    with pytest.raises(ClipError, match=r"partial audio in a.wav: 0\.50 s decode of the 2\.00 s"):
        decode.read_audio(path)


@pytest.mark.parametrize("modality, argv, folder", [
    ("audio", ["--model", "hubert"], "hubert-UTT"),
    ("visual", ["--model", "vit", "--faces", "none"], "vit-UTT"),
])
def test_extract_lists_a_partial_clip_and_writes_nothing_for_it(tmp_path, checkpoints, capsys, modality, argv, folder):
    data = write_release(str(tmp_path / "release"), ["good1", "good2"])
    write_clip(os.path.join(data, "video", "cut.mp4"), seconds=3.0, fps=20, faststart=True)
    cut_after_packet(os.path.join(data, "video", "cut.mp4"), 0.5)
    argv = ["--data", data, "--modality", modality, "--workers", "0", "--no_progress",
            *[checkpoints.get(a, a) for a in argv]]
    code, out, err = run_main(extract.main, argv, capsys)
    assert code == 0, err
    assert sorted(os.listdir(os.path.join(data, "features", folder))) == ["good1.npy", "good2.npy"]
    assert "1 failed" in out and "cut: partial" in out
    failed = open(os.path.join(data, "features", f"extract-{folder[:-4]}.failed.csv")).read()
    assert "cut,\"partial" in failed
    code, out, err = run_main(extract.main, argv + ["--allow_partial"], capsys)
    assert code == 0 and "1 clips written" in out and "0 failed" in out, out + err
    assert os.path.isfile(os.path.join(data, "features", folder, "cut.npy"))
