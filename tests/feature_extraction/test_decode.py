import numpy as np
import pytest

from feature_extraction import decode
from feature_extraction.base import ClipError
from tests.feature_extraction.media import tone, write_clip


def dominant_hz(samples, rate=16000):
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()]


def test_audio_track_becomes_16k_mono_float32_with_its_pitch(tmp_path):
    path = write_clip(str(tmp_path / "a.mp4"), seconds=2.0, f0=220.0)
    samples = decode.read_audio(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert 1.9 * 16000 < len(samples) < 2.2 * 16000  # AAC adds a few ms of priming
    assert abs(dominant_hz(samples) - 220.0) < 5


def test_audio_is_resampled_from_other_rates(tmp_path):
    path = str(tmp_path / "a.wav")
    decode.write_wav(path, tone(1.0, f0=300.0), sample_rate=16000)
    assert abs(dominant_hz(decode.read_audio(path, sample_rate=8000), 8000) - 300.0) < 5
    assert len(decode.read_audio(path, sample_rate=8000)) == pytest.approx(8000, abs=40)


def test_wav_round_trip_keeps_the_signal(tmp_path):
    wave = tone(0.5)
    decode.write_wav(str(tmp_path / "x.wav"), wave)
    back = decode.read_audio(str(tmp_path / "x.wav"))
    assert len(back) == len(wave) and np.abs(back - wave).max() < 1e-3
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]  # no temporary file left


def test_a_clip_without_audio_or_an_unreadable_file_is_a_clip_error(tmp_path):
    silent = write_clip(str(tmp_path / "silent.mp4"), audio=False)
    with pytest.raises(ClipError, match="no audio stream in silent.mp4"):
        decode.read_audio(silent)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(ClipError, match="unreadable file broken.mp4"):
        decode.read_frames(str(broken), 2)


def test_frames_are_rgb_and_sampled_at_the_asked_rate(tmp_path):
    path = write_clip(str(tmp_path / "v.mp4"), seconds=2.0, fps=10, size=(64, 48))
    every = decode.read_frames(path)
    assert every.shape == (20, 48, 64, 3) and every.dtype == np.uint8
    two_per_second = decode.read_frames(path, fps=2)
    assert len(two_per_second) == 4
    grey = two_per_second.reshape(4, -1).mean(1)  # frames 0, 5, 10, 15 → grey 0, 50, 100, 150
    assert np.allclose(grey, [0, 50, 100, 150], atol=6)
    assert decode.video_rate(path) == pytest.approx(10.0)


def test_release_face_crops_turn_from_bgr_to_rgb(tmp_path):
    crops = np.zeros((6, 8, 8, 3), np.uint8)
    crops[..., 0] = 200  # blue, in OpenCV's order
    np.save(tmp_path / "c.npy", crops)
    rgb = decode.read_face_crops(str(tmp_path / "c.npy"), step=2)
    assert rgb.shape == (3, 8, 8, 3) and (rgb[..., 2] == 200).all() and (rgb[..., 0] == 0).all()


@pytest.mark.parametrize("array, reason", [(np.zeros((4, 8, 8), np.uint8), "shape"),
                                           (np.zeros((4, 8, 8, 3), np.float32), "uint8"),
                                           (np.zeros((0, 8, 8, 3), np.uint8), "no frame")])
def test_bad_face_crops_are_clip_errors(tmp_path, array, reason):
    np.save(tmp_path / "c.npy", array)
    with pytest.raises(ClipError, match=reason):
        decode.read_face_crops(str(tmp_path / "c.npy"))


def test_sample_frames_spreads_a_few_frames_over_the_clip(tmp_path):
    path = write_clip(str(tmp_path / "a.mp4"), seconds=2.0, fps=10)  # frame i is grey level 10 * i
    frames = decode.sample_frames(path, 4)
    assert frames.shape == (4, 48, 64, 3) and frames.dtype == np.uint8
    grey = frames[:, 0, 0, 0].astype(int)
    assert np.allclose(grey, [30, 80, 130, 180], atol=6)  # the middles of four half-second parts
    assert len(decode.sample_frames(path, 50)) <= 20  # never more frames than the clip has
    with pytest.raises(decode.NoStream, match="no audio stream"):
        decode.read_audio(write_clip(str(tmp_path / "mute.mp4"), audio=False))


def test_wav_bytes_are_what_write_wav_writes(tmp_path):
    wave = tone(0.3)
    decode.write_wav(str(tmp_path / "x.wav"), wave)
    assert (tmp_path / "x.wav").read_bytes() == decode.wav_bytes(wave)
