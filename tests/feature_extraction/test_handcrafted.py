"""Hand-crafted extractors: openSMILE (the real library, on synthesised voiced tones) and OpenFace 2 (CSVs
written in OpenFace's own header style; a small shell script stands in for its binary)."""
import os
import pickle
import stat
import subprocess
import sys
import warnings

import numpy as np
import pytest

from feature_extraction.base import ClipError, Extractor
from feature_extraction.release import find_openface_csv
from feature_extraction.handcrafted import (
    OPENFACE_COLUMNS,
    OpenFaceExtractor,
    OpenSmileExtractor,
    parse_openface_csv,
    run_openface,
)
from tests.conftest import REPO
from toolkit.errors import UserError

SR = 16000


def tone(f0, amp=0.3, seconds=1.0):
    """A voiced, harmonic tone (5 partials at 1/k) with a slow 3 Hz amplitude modulation, like a held vowel."""
    t = np.arange(int(SR * seconds)) / SR
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    return (amp * envelope * wave / 2).astype(np.float32)


@pytest.fixture(scope="module")
def egemaps():
    return OpenSmileExtractor("eGeMAPSv02", levels=("UTT", "FRM"))


def functional(ex, wave, name):
    (out,) = ex.encode([ex.prepare(wave)])
    return float(out["UTT"][ex.feature_names("UTT").index(name)])


# --- openSMILE ---------------------------------------------------------------------------------------

def test_opensmile_is_an_extractor_of_audio_named_after_its_feature_set(egemaps):
    assert isinstance(egemaps, Extractor)
    assert egemaps.source == "audio_stream" and egemaps.modality == "audio"  # the track, streamed as it decodes
    assert OpenSmileExtractor(whole_clip=True).source == "audio"  # the earlier path: the whole waveform at once
    assert egemaps.name == "eGeMAPSv02"
    assert OpenSmileExtractor().levels == ("UTT",)


@pytest.mark.parametrize("feature_set, utt_dim, frm_dim", [("eGeMAPSv02", 88, 25), ("GeMAPSv01b", 62, 18),
                                                            ("ComParE_2016", 6373, 65)])
def test_opensmile_shapes_and_dtypes(feature_set, utt_dim, frm_dim):
    ex = OpenSmileExtractor(feature_set, levels=("UTT", "FRM"))
    outs = ex.encode([ex.prepare(tone(150, seconds=1.0)), ex.prepare(tone(150, seconds=0.5))])
    assert [sorted(o) for o in outs] == [["FRM", "UTT"]] * 2
    for out, seconds in zip(outs, (1.0, 0.5)):
        assert out["UTT"].shape == (utt_dim,) and out["UTT"].dtype == np.float32
        assert out["FRM"].ndim == 2 and out["FRM"].shape[1] == frm_dim and out["FRM"].dtype == np.float32
        assert abs(out["FRM"].shape[0] - seconds * 100) <= 10  # one LLD row per 10 ms
        assert np.isfinite(out["UTT"]).all() and np.isfinite(out["FRM"]).all()
    assert len(ex.feature_names("UTT")) == utt_dim and len(ex.feature_names("FRM")) == frm_dim


def test_opensmile_writes_only_the_requested_levels():
    ex = OpenSmileExtractor(levels=("FRM",))
    (out,) = ex.encode([ex.prepare(tone(150))])
    assert list(out) == ["FRM"] and out["FRM"].shape[1] == 25


def test_a_louder_clip_has_larger_loudness(egemaps):
    quiet = functional(egemaps, tone(150, amp=0.05), "loudness_sma3_amean")
    loud = functional(egemaps, tone(150, amp=0.4), "loudness_sma3_amean")
    assert loud > 2 * quiet > 0


def test_a_higher_pitched_clip_has_higher_f0(egemaps):
    low = functional(egemaps, tone(120), "F0semitoneFrom27.5Hz_sma3nz_amean")
    high = functional(egemaps, tone(240), "F0semitoneFrom27.5Hz_sma3nz_amean")
    # an octave is 12 semitones; each mean sits near its tone's pitch, 12*log2(f0/27.5)
    assert high - low == pytest.approx(12, abs=1)
    assert low == pytest.approx(12 * np.log2(120 / 27.5), abs=1)


def test_opensmile_extractor_survives_pickling_before_and_after_use(egemaps):
    wave = tone(200)
    before = egemaps.encode([egemaps.prepare(wave)])[0]["UTT"]
    for ex in (OpenSmileExtractor(levels=("UTT", "FRM")), egemaps):
        copy = pickle.loads(pickle.dumps(ex))
        assert copy.name == "eGeMAPSv02" and copy.levels == ("UTT", "FRM")
        np.testing.assert_allclose(copy.encode([copy.prepare(wave)])[0]["UTT"], before, rtol=1e-5)


@pytest.mark.parametrize("wave, reason", [
    (np.zeros(800, np.float32), "too short"),
    (np.zeros(0, np.float32), "too short"),
    (np.full(SR, np.nan, np.float32), "NaN"),
    (np.zeros((2, SR), np.float32), "mono"),
])
def test_unusable_audio_is_a_clip_error(egemaps, wave, reason):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no openSMILE "segment too short" warning: we stop before it
        with pytest.raises(ClipError, match=reason):
            egemaps.prepare(wave)


def test_a_column_vector_waveform_is_accepted(egemaps):
    wave = tone(150)
    np.testing.assert_array_equal(egemaps.prepare(wave[:, None])["UTT"], egemaps.prepare(wave)["UTT"])


def test_unknown_feature_set_lists_the_known_ones():
    with pytest.raises(UserError) as err:
        OpenSmileExtractor("egemaps")
    message = str(err.value)
    assert "\n" not in message and "'egemaps'" in message
    assert all(name in message for name in ("eGeMAPSv02", "GeMAPSv01b", "ComParE_2016"))


def test_unknown_level_is_a_user_error():
    with pytest.raises(UserError, match="UTT, FRM"):
        OpenSmileExtractor(levels=("utt",))


def test_importing_the_module_loads_neither_opensmile_nor_pandas():
    code = "import sys, feature_extraction.handcrafted; print('opensmile' in sys.modules, 'pandas' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


# --- OpenFace 2 CSV ----------------------------------------------------------------------------------

HEAD = ["frame", "face_id", "timestamp", "confidence", "success"]
LANDMARKS = ["x_0", "x_1", "y_0", "y_1"]  # a few of the columns OpenFace writes that no group uses


def write_openface_csv(path, rows, drop=()):
    """A CSV laid out as OpenFace 2's FeatureExtraction writes it: ', ' between header names and values.
    ``rows``: (frame, confidence, success); every feature value of a row is frame + column index / 100."""
    features = OPENFACE_COLUMNS["gaze"] + LANDMARKS + OPENFACE_COLUMNS["pose"] + OPENFACE_COLUMNS["au"]
    header = [c for c in HEAD + features if c not in drop]
    lines = [", ".join(header)]
    for frame, confidence, success in rows:
        values = {"frame": frame, "face_id": 0, "timestamp": (frame - 1) / 25, "confidence": confidence, "success": success}
        values.update({c: round(frame + i / 100, 2) for i, c in enumerate(features)})
        lines.append(", ".join(str(values[c]) for c in header))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


def good_rows(n=4):
    return [(f, 0.98, 1) for f in range(1, n + 1)]


def test_openface_header_style_is_what_the_helper_writes(tmp_path):
    path = write_openface_csv(tmp_path / "a.csv", good_rows(1))
    assert open(path).readline().startswith("frame, face_id, timestamp, confidence, success, gaze_0_x")


@pytest.mark.parametrize("columns, dim", [("au", 35), ("au_r", 17), ("au_c", 18), ("pose", 6), ("gaze", 8), ("all", 49),
                                          ("au_r,pose", 23), ("au_r, gaze", 25)])
def test_column_groups_parse_to_their_width(tmp_path, columns, dim):
    path = write_openface_csv(tmp_path / "a.csv", good_rows(3))
    frames = parse_openface_csv(path, columns)
    assert frames.shape == (3, dim) and frames.dtype == np.float32


def test_columns_come_in_openface_order(tmp_path):
    path = write_openface_csv(tmp_path / "a.csv", good_rows(1))
    au = parse_openface_csv(path, "au")[0]
    au_r, au_c = parse_openface_csv(path, "au_r")[0], parse_openface_csv(path, "au_c")[0]
    np.testing.assert_array_equal(au, np.concatenate([au_r, au_c]))
    assert np.all(np.diff(au) > 0)  # the helper's values grow with the column position in the file
    assert OPENFACE_COLUMNS["au_r"][0] == "AU01_r" and OPENFACE_COLUMNS["au_c"][-2:] == ["AU28_c", "AU45_c"]
    np.testing.assert_array_equal(parse_openface_csv(path, "au_r,pose")[0],
                                  np.concatenate([au_r, parse_openface_csv(path, "pose")[0]]))


def test_failed_and_unsure_frames_are_dropped_and_the_rest_kept_in_frame_order(tmp_path):
    rows = [(3, 0.95, 1), (1, 0.90, 1), (2, 0.99, 0), (5, 0.5, 1), (4, 0.8, 1), (6, 0.79, 1)]
    path = write_openface_csv(tmp_path / "a.csv", rows)
    frames = parse_openface_csv(path, "pose")
    np.testing.assert_allclose(np.floor(frames[:, 0]), [1, 3, 4])  # 2 failed, 5 and 6 below 0.8
    assert len(parse_openface_csv(path, "pose", min_confidence=0.5)) == 5
    assert len(parse_openface_csv(path, "pose", min_confidence=0.0)) == 5  # success=0 stays out


def test_a_missing_column_names_the_file_the_groups_it_holds_and_the_columns_that_work(tmp_path):
    path = write_openface_csv(tmp_path / "clip7.csv", good_rows(), drop=("AU45_c", "AU28_c"))
    assert parse_openface_csv(path, "au_r").shape == (4, 17)
    with pytest.raises(ClipError) as err:
        parse_openface_csv(path, "au")
    assert str(err.value) == (f"OpenFace CSV {path} has no column 'AU28_c' (--columns au); it holds the column groups "
                              "au_r, pose, gaze: use --columns au_r")
    with pytest.raises(ClipError, match="use --columns au_r,gaze$"):  # what was asked and is there
        parse_openface_csv(path, "au,gaze")
    with pytest.raises(ClipError, match="holds the column groups au_r, pose, gaze: use --columns au_r,pose,gaze$"):
        parse_openface_csv(path, "au_c")  # nothing asked is there: every group it holds
    bare = write_openface_csv(tmp_path / "bare.csv", good_rows(), drop=OPENFACE_COLUMNS["all"])
    with pytest.raises(ClipError, match="holds none of the groups au_r, au_c, pose, gaze; make it with FeatureExtraction"):
        parse_openface_csv(bare, "pose")
    other = write_openface_csv(tmp_path / "other.csv", good_rows(), drop=("success",))
    with pytest.raises(ClipError, match="no column 'success' .*not a per-frame CSV of OpenFace 2's FeatureExtraction"):
        parse_openface_csv(other, "pose")


def test_no_usable_frame_is_a_clip_error_naming_the_file(tmp_path):
    path = write_openface_csv(tmp_path / "clip8.csv", [(1, 0.99, 0), (2, 0.3, 1)])
    with pytest.raises(ClipError) as err:
        parse_openface_csv(path)
    assert str(err.value) == f"no frame with success=1 and confidence>=0.8 in {path}"


@pytest.mark.parametrize("content", ["", "frame, face_id, timestamp, confidence, success\n"])
def test_an_empty_csv_is_a_clip_error(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(ClipError, match="empty.csv"):
        parse_openface_csv(str(path), "au")


def test_an_unreadable_csv_is_a_clip_error(tmp_path):
    with pytest.raises(ClipError, match="nope.csv"):
        parse_openface_csv(str(tmp_path / "nope.csv"))
    garbled = tmp_path / "garbled.csv"
    garbled.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ClipError, match="garbled.csv"):
        parse_openface_csv(str(garbled))


def test_a_non_numeric_value_names_its_column(tmp_path):
    path = write_openface_csv(tmp_path / "a.csv", good_rows(2))
    text = open(path).read().replace("1.4", "oops", 1)  # the first row's 41st column
    open(path, "w").write(text)
    with pytest.raises(ClipError, match="non-numeric value in column"):
        parse_openface_csv(path, "all")


@pytest.mark.parametrize("kwargs, culprit", [({"columns": "aus"}, "'aus'"), ({"columns": "au,head"}, "'head'"),
                                             ({"min_confidence": 1.5}, "1.5"), ({"min_confidence": "high"}, "high")])
def test_bad_parameters_are_one_line_user_errors(tmp_path, kwargs, culprit):
    path = write_openface_csv(tmp_path / "a.csv", good_rows(1))
    with pytest.raises(UserError) as err:
        parse_openface_csv(path, **kwargs)
    assert culprit in str(err.value) and "\n" not in str(err.value)


# --- OpenFace extractor ------------------------------------------------------------------------------

def test_openface_extractor_frames_and_their_mean(tmp_path):
    ex = OpenFaceExtractor()
    assert (ex.source, ex.name, ex.levels) == ("openface", "openface-au", ("FRM", "UTT"))
    a = write_openface_csv(tmp_path / "a.csv", good_rows(5))
    b = write_openface_csv(tmp_path / "b.csv", good_rows(2))
    prepared = [ex.prepare(a), ex.prepare(b)]
    assert [ex.size(p) for p in prepared] == [5, 2]
    outs = ex.encode(prepared)
    assert outs[0]["FRM"].shape == (5, 35) and outs[1]["FRM"].shape == (2, 35)
    for out in outs:
        assert out["UTT"].shape == (35,) and out["UTT"].dtype == np.float32
        np.testing.assert_allclose(out["UTT"], out["FRM"].mean(axis=0), rtol=1e-6)


def test_openface_extractor_names_and_levels(tmp_path):
    assert OpenFaceExtractor("all").name == "openface-all"
    assert OpenFaceExtractor("au_r, pose").name == "openface-au_r+pose"
    ex = pickle.loads(pickle.dumps(OpenFaceExtractor("gaze", min_confidence=0.5, levels=("UTT",))))
    path = write_openface_csv(tmp_path / "a.csv", [(1, 0.6, 1), (2, 0.6, 1)])
    (out,) = ex.encode([ex.prepare(path)])
    assert list(out) == ["UTT"] and out["UTT"].shape == (8,)
    with pytest.raises(UserError):
        OpenFaceExtractor("faces")


# --- finding and making OpenFace CSVs ----------------------------------------------------------------

def script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_run_openface_with_a_missing_binary_is_a_user_error(tmp_path):
    for binary in (str(tmp_path / "FeatureExtraction"), "FeatureExtraction-not-installed"):
        with pytest.raises(UserError) as err:
            run_openface(binary, str(tmp_path / "v.mp4"), str(tmp_path / "out"))
        assert binary in str(err.value) and "--openface_bin" in str(err.value) and "\n" not in str(err.value)
    plain = tmp_path / "not_executable"
    plain.write_text("#!/bin/sh\n")
    with pytest.raises(UserError, match="not_executable"):
        run_openface(str(plain), str(tmp_path / "v.mp4"), str(tmp_path / "out"))


# Stands in for OpenFace 2's FeatureExtraction (not installable here): records its arguments and writes
# <out_dir>/<video stem>.csv, as the real binary does.
FAKE_OPENFACE = """
echo "$@" > "$(dirname "$0")/args.txt"
while [ $# -gt 0 ]; do
  case "$1" in -f) video="$2"; shift;; -out_dir) out="$2"; shift;; esac
  shift
done
stem=$(basename "$video"); stem="${stem%.*}"
printf 'frame, face_id, timestamp, confidence, success, AU01_r\\n1, 0, 0.0, 0.98, 1, 1.5\\n' > "$out/$stem.csv"
echo "Done processing"
"""


def test_run_openface_returns_the_csv_named_after_the_video(tmp_path):
    binary = script(tmp_path, "FeatureExtraction", FAKE_OPENFACE)
    video = tmp_path / "videos" / "sample_00001.mp4"
    video.parent.mkdir()
    video.write_bytes(b"\x00")
    out_dir = tmp_path / "openface" / "sample_00001"
    csv_path = run_openface(binary, str(video), str(out_dir))
    assert csv_path == os.path.join(str(out_dir), "sample_00001.csv") and os.path.isfile(csv_path)
    args = (tmp_path / "args.txt").read_text().split()
    assert args[:4] == ["-f", str(video), "-out_dir", str(out_dir)] and {"-aus", "-pose", "-gaze"} <= set(args)
    assert find_openface_csv(str(tmp_path / "openface"), "sample_00001") == csv_path


def test_run_openface_failure_is_a_clip_error_with_the_last_message_line(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\x00")
    failing = script(tmp_path, "fails", 'echo "Loading model" >&2\necho "ERROR: could not open v.mp4" >&2\nexit 1\n')
    with pytest.raises(ClipError) as err:
        run_openface(failing, str(video), str(tmp_path / "out"))
    assert str(err.value).endswith("(exit 1): ERROR: could not open v.mp4")
    silent = script(tmp_path, "writes_nothing", 'echo "No faces found"\n')
    with pytest.raises(ClipError, match=r"wrote no .*v\.csv: No faces found"):
        run_openface(silent, str(video), str(tmp_path / "out"))
    slow = script(tmp_path, "slow", "exec sleep 5\n")
    with pytest.raises(ClipError, match="longer than 0.2 s"):
        run_openface(slow, str(video), str(tmp_path / "out"), timeout_s=0.2)


def test_run_openface_on_a_missing_video_is_a_clip_error(tmp_path):
    binary = script(tmp_path, "FeatureExtraction", FAKE_OPENFACE)
    with pytest.raises(ClipError, match="no video file"):
        run_openface(binary, str(tmp_path / "gone.mp4"), str(tmp_path / "out"))
