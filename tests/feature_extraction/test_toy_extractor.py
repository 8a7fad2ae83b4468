"""Adding an extractor takes one file and no other edit: a toy extractor written into a folder on the
``feature_extraction`` package path is found by the registry, listed by ``extract.py --help`` with its flag,
keeps the extractor contract and writes its feature folders through ``extract.py --modality``."""
import os
import sys

import numpy as np
import pytest

import extract
import feature_extraction
from feature_extraction import registry
from tests.bad_inputs.helpers import assert_one_line_error, run_main
from tests.feature_extraction.media import write_release
from tests.feature_extraction.test_contract import CONTRACT, run_check

TOY = '''"""Toy extractor: loudness per frame of the audio track (RMS and peak)."""
import numpy as np

from feature_extraction.base import SAMPLE_RATE, ClipError, Extractor
from feature_extraction.registry import option, register_extractor
from toolkit.errors import bounded


@register_extractor("toy_loudness")
class ToyLoudness(Extractor):
    source, modality = "audio", "audio"
    summary = "RMS and peak of the audio track per --toy_frame_ms frame (a two-column toy)"
    options = (option("--toy_frame_ms", type=bounded(float, 1.0), default=20.0, help="toy: frame length in ms"),)

    @classmethod
    def build(cls, options, levels):
        return cls(options.toy_frame_ms, levels)

    def __init__(self, frame_ms=20.0, levels=("UTT",)):
        self.frame = int(frame_ms * SAMPLE_RATE / 1000)
        self.name, self.levels = f"toy-loudness{int(frame_ms)}", tuple(levels)

    def prepare(self, wave):
        count = len(wave) // self.frame
        if count == 0:
            raise ClipError("audio shorter than one toy frame")
        frames = np.asarray(wave[:count * self.frame], np.float32).reshape(count, self.frame)
        return np.stack([np.sqrt((frames ** 2).mean(1)), np.abs(frames).max(1)], axis=1).astype(np.float32)

    def encode(self, batch):
        return [{"FRM": f, "UTT": f.mean(0)} for f in batch]

    def dim(self, level):
        return 2
'''


@pytest.fixture
def toy_extractor(tmp_path, monkeypatch):
    """The toy extractor file in a folder of its own, added to the package path (removed afterwards)."""
    folder = tmp_path / "more_extractors"
    folder.mkdir()
    (folder / "toy_loudness.py").write_text(TOY)
    assert "toy_loudness" not in registry.known_extractors()
    monkeypatch.setattr(feature_extraction, "__path__", [*feature_extraction.__path__, str(folder)])
    monkeypatch.setattr(registry, "_scanned", False)  # as in a fresh process, where the registry scans on first use
    yield "toy_loudness"
    registry.EXTRACTORS.pop("toy_loudness", None)
    sys.modules.pop("feature_extraction.toy_loudness", None)


def test_extract_help_lists_a_new_extractor_file_and_its_flag(toy_extractor, capsys):
    assert toy_extractor in registry.known_extractors()
    code, out, _ = run_main(extract.main, ["--help"], capsys)
    text = " ".join(out.split())
    assert code == 0 and "options of --modality toy_loudness: --toy_frame_ms" in text
    assert "toy_loudness audio RMS and peak of the audio track per --toy_frame_ms frame" in text
    code, _, err = run_main(extract.main, ["--data", ".", "--modality", toy_extractor, "--toy_frame_ms", "0.5"], capsys)
    assert_one_line_error(code, err, "--toy_frame_ms", ">= 1.0")


@pytest.mark.parametrize("check", CONTRACT, ids=[c.__name__ for c in CONTRACT])
def test_a_new_extractor_file_is_checked_by_the_contract(toy_extractor, check, tmp_path):
    release = write_release(str(tmp_path / "release"), ["c1", "c2", "c3"])
    run_check(check, toy_extractor, {}, tmp_path / "work", release)  # it loads no model


def test_a_new_extractor_runs_from_the_command_line(toy_extractor, tmp_path, capsys):
    data = write_release(str(tmp_path / "release"), ["a", "b"], audio_less=("b",))
    code, out, err = run_main(extract.main, ["--data", data, "--modality", toy_extractor, "--toy_frame_ms", "10",
                                             "--level", "utt", "frm", "--workers", "0", "--no_progress"], capsys)
    assert code == 0, err
    frames = np.load(os.path.join(data, "features", "toy-loudness10-FRM", "a.npy"))
    assert frames.shape[1] == 2 and 90 < len(frames) < 120  # ~1 s of 10 ms frames
    np.testing.assert_allclose(np.load(os.path.join(data, "features", "toy-loudness10-UTT", "a.npy")), frames.mean(0), rtol=1e-6)
    assert "1 clips written" in out and "b: no audio stream" in out
