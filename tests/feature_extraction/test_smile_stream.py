"""openSMILE fed piece by piece (feature_extraction.smile_stream): the same low-level descriptors and, up to
one piece, the same functionals as the whole waveform through ``process_signal``; functionals of longer tracks
are the length-weighted mean of their pieces', within the tolerance stated here."""
import time

import numpy as np
import pytest

from feature_extraction.base import ClipError
from feature_extraction.handcrafted import OpenSmileExtractor
from tests.feature_extraction.media import tone

SR = 16000


def drifting(seconds):
    """A voiced track whose pitch, loudness and pauses change over its length (not the same in every piece)."""
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(140 + 60 * np.sin(2 * np.pi * t / seconds * 1.5)) / SR
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = (0.3 + 0.25 * np.sin(2 * np.pi * t / seconds * 2.3)) * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))
    noise = 0.002 * np.random.default_rng(0).standard_normal(len(t))
    return (envelope * (np.sin(2 * np.pi * 0.7 * t) > -0.5) * voice / 2.3 + noise).astype(np.float32)


def pieces(wave, size=3001):
    return [wave[start:start + size] for start in range(0, len(wave), size)]


@pytest.mark.parametrize("feature_set", ["eGeMAPSv02", "GeMAPSv01b", "ComParE_2016"])
def test_streamed_features_are_the_whole_clip_ones(feature_set):
    wave = drifting(3.0)
    whole = OpenSmileExtractor(feature_set, levels=("UTT", "FRM"), whole_clip=True).prepare(wave)
    streamed = OpenSmileExtractor(feature_set, levels=("UTT", "FRM")).prepare(pieces(wave))
    assert whole["FRM"].shape[0] > 250
    for level in ("UTT", "FRM"):
        np.testing.assert_array_equal(streamed[level], whole[level])


def test_functionals_of_a_longer_track_are_the_length_weighted_mean_of_its_pieces():
    wave = drifting(5.0)
    piecewise = OpenSmileExtractor(levels=("UTT",), functionals_s=2.0).prepare(pieces(wave))["UTT"]
    whole_clip = OpenSmileExtractor(levels=("UTT",), whole_clip=True)
    parts = [wave[:2 * SR], wave[2 * SR:4 * SR], wave[4 * SR:]]  # 2 s, 2 s, 1 s
    expected = sum(len(p) * whole_clip.prepare(p)["UTT"].astype(np.float64) for p in parts) / len(wave)
    np.testing.assert_allclose(piecewise, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(piecewise, whole_clip.prepare(wave)["UTT"], rtol=1e-3)  # pieces are not the whole


def test_the_stated_tolerance_of_piecewise_functionals():
    """Stated tolerance, measured on an 8 s voiced track in 2 s pieces: where the content is the same in every
    piece, each mean (``_amean``) is within 1.5 % of the whole track's and half of all 88 functionals within
    0.2 %; where pitch and loudness drift over the track, half are within 6 % and the order statistics, slopes
    and segment rates of pieces can be off by a factor of 2 or more (longer pieces: fewer joints)."""
    names = OpenSmileExtractor(levels=("UTT",), whole_clip=True).feature_names("UTT")
    means = [i for i, name in enumerate(names) if name.endswith("_amean")]
    for wave, mean_tolerance, median_tolerance in [(tone(8.0), 0.015, 0.002), (drifting(8.0), 0.2, 0.06)]:
        whole = OpenSmileExtractor(levels=("UTT",), whole_clip=True).prepare(wave)["UTT"]
        piecewise = OpenSmileExtractor(levels=("UTT",), functionals_s=2.0).prepare(pieces(wave))["UTT"]
        relative = np.abs(piecewise - whole) / np.maximum(np.abs(whole), 1e-3)
        assert relative[means].max() < mean_tolerance and np.median(relative) < median_tolerance


def test_descriptors_of_a_track_longer_than_a_functionals_piece_are_still_exact():
    wave = drifting(5.0)
    whole = OpenSmileExtractor(levels=("FRM",), whole_clip=True).prepare(wave)["FRM"]
    streamed = OpenSmileExtractor(levels=("FRM",), functionals_s=2.0).prepare(pieces(wave, 16000))["FRM"]
    np.testing.assert_array_equal(streamed, whole)


def test_a_stream_that_fails_half_way_stops_openSMILE_and_is_a_clip_error():
    def cut_short():
        yield tone(1.0)
        raise ClipError("partial audio in x.mp4")

    began = time.perf_counter()
    for _ in range(3):
        with pytest.raises(ClipError, match="partial audio"):
            OpenSmileExtractor(levels=("UTT", "FRM")).prepare(cut_short())
    assert time.perf_counter() - began < 10
    with pytest.raises(ClipError, match="NaN"):
        OpenSmileExtractor(levels=("UTT", "FRM")).prepare([tone(1.0), np.full(100, np.nan, np.float32)])
