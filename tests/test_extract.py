"""extract.py from the command line: outputs in the data contract, resume, shards, per-clip failures."""
import os
import subprocess
import sys

import numpy as np
import pytest

import extract
from feature_extraction.runner import in_shard, parse_shard
from tests.bad_inputs.helpers import REPO, assert_one_line_error, run_main, snapshot
from tests.feature_extraction.media import write_release
from toolkit.errors import UserError

NAMES = ["s1", "s2", "s3", "s4", "s5", "s6"]


@pytest.fixture
def release(tmp_path):
    return write_release(str(tmp_path / "release"), NAMES + ["mute", "broken"], audio_less=("mute",), broken=("broken",))


def outputs(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_audio_features_land_in_utt_and_frm_folders_and_failures_are_listed(release, checkpoints, capsys):
    code, out, err = run_main(extract.main, ["--data", release, "--modality", "audio", "--model", checkpoints["hubert"],
                                             "--level", "utt", "frm", "--workers", "1", "--no_progress"], capsys)
    assert code == 0, err
    feats = os.path.join(release, "features")
    assert outputs(os.path.join(feats, "hubert-UTT")) == [f"{n}.npy" for n in NAMES]
    assert np.load(os.path.join(feats, "hubert-UTT", "s1.npy")).shape == (16,)
    assert np.load(os.path.join(feats, "hubert-FRM", "s1.npy")).shape[1] == 16
    assert "6 clips written" in out and "2 failed" in out and "mute: no audio stream in mute.mp4" in out
    failed = open(os.path.join(feats, "extract-hubert.failed.csv")).read().splitlines()
    assert failed[0] == "name,reason" and sorted(line.split(",")[0] for line in failed[1:]) == ["broken", "mute"]
    assert not [f for f in os.listdir(os.path.join(feats, "hubert-UTT")) if f.startswith(".")]  # no temp files


def test_a_second_run_resumes_and_overwrite_redoes(release, checkpoints, capsys):
    argv = ["--data", release, "--modality", "text", "--model", checkpoints["bert"], "--name", "tb", "--workers", "0",
            "--no_progress"]
    run_main(extract.main, argv, capsys)
    folder = os.path.join(release, "features", "tb-UTT")
    os.remove(os.path.join(folder, "s2.npy"))
    before = snapshot(folder)
    code, out, _ = run_main(extract.main, argv, capsys)
    assert code == 0 and "1 clips written" in out and "7 already there" in out
    assert {k: v for k, v in snapshot(folder).items() if k != "s2.npy"} == before
    stamp = os.path.getmtime(os.path.join(folder, "s1.npy"))
    os.utime(os.path.join(folder, "s1.npy"), (stamp - 100, stamp - 100))
    code, out, _ = run_main(extract.main, argv + ["--overwrite"], capsys)
    assert "8 clips written" in out and os.path.getmtime(os.path.join(folder, "s1.npy")) > stamp - 100


def test_a_window_cut_by_memory_gives_the_same_features(release, checkpoints, capsys, monkeypatch):
    from feature_extraction import runner

    argv = ["--data", release, "--modality", "visual", "--model", checkpoints["vit"], "--workers", "0", "--no_progress"]
    run_main(extract.main, argv + ["--out", os.path.join(release, "whole")], capsys)
    monkeypatch.setattr(runner, "WINDOW_BYTES", 1)  # every clip is encoded on its own
    assert runner.nbytes([(np.zeros(4, np.float32), 4)]) == 16
    run_main(extract.main, argv + ["--out", os.path.join(release, "cut")], capsys)
    for name in NAMES:
        a, b = (np.load(os.path.join(release, out, "vit-UTT", f"{name}.npy")) for out in ("whole", "cut"))
        assert np.allclose(a, b, atol=1e-5)


def test_shards_cover_every_clip_exactly_once(release, checkpoints, capsys):
    written = []
    for k in range(3):
        out_dir = os.path.join(release, f"shard{k}")
        code, out, _ = run_main(extract.main, ["--data", release, "--modality", "visual", "--model", checkpoints["vit"],
                                               "--shard", f"{k}/3", "--out", out_dir, "--workers", "0", "--no_progress"], capsys)
        assert code in (0, 2)  # a shard may hold only failures
        written += outputs(os.path.join(out_dir, "vit-UTT"))
    assert sorted(written) == sorted(f"{n}.npy" for n in NAMES + ["mute"])  # the silent clip has faces
    assert sum(in_shard(n, (k, 3)) for n in NAMES for k in range(3)) == len(NAMES)


def test_save_wav_keeps_decoded_tracks_for_the_next_encoder(release, checkpoints, capsys):
    wavs = os.path.join(release, "wav16k")
    argv = ["--data", release, "--modality", "audio", "--model", checkpoints["hubert"], "--save_wav", wavs,
            "--workers", "0", "--no_progress"]
    run_main(extract.main, argv, capsys)
    assert sorted(os.listdir(wavs)) == [f"{n}.wav" for n in NAMES]
    first = np.load(os.path.join(release, "features", "hubert-UTT", "s1.npy"))
    os.rename(os.path.join(release, "video", "s1.mp4"), os.path.join(release, "video", "s1.avi"))  # reads the wav now
    with open(os.path.join(release, "video", "s1.avi"), "wb") as f:
        f.write(b"broken")
    code, out, _ = run_main(extract.main, argv + ["--overwrite"], capsys)
    assert code == 0 and "s1" not in out.split("failed:")[-1]
    again = np.load(os.path.join(release, "features", "hubert-UTT", "s1.npy"))
    assert np.abs(again - first).max() < 1e-2  # the 16-bit wav of the same track


def test_shard_from_torchrun_or_slurm_variables():
    assert parse_shard(None, {"RANK": "2", "WORLD_SIZE": "4"}) == (2, 4)
    assert parse_shard(None, {"SLURM_PROCID": "1", "SLURM_NTASKS": "3"}) == (1, 3)
    assert parse_shard(None, {}) == (0, 1) and parse_shard("3/5") == (3, 5)
    for bad in ("5/5", "a/b", "1"):
        with pytest.raises(UserError, match="--shard"):
            parse_shard(bad)


def test_each_local_process_takes_its_own_gpu():
    assert extract.local_gpu(None, {"LOCAL_RANK": "3"}) == 3 and extract.local_gpu(None, {"SLURM_LOCALID": "1"}) == 1
    assert extract.local_gpu(2, {"LOCAL_RANK": "3"}) == 2 and extract.local_gpu(None, {}) == 0


def test_faces_from_the_release_and_video_encoders_from_frames(release, checkpoints, capsys):
    code, out, _ = run_main(extract.main, ["--data", release, "--modality", "visual", "--model", checkpoints["videomae"],
                                           "--faces", "none", "--fps", "8", "--level", "frm", "--workers", "0",
                                           "--no_progress"], capsys)
    assert code == 0 and "broken: unreadable file broken.mp4" in out
    assert np.load(os.path.join(release, "features", "videomae-FRM", "s1.npy")).shape == (1, 16)


def test_when_no_clip_can_be_used_the_run_fails_in_one_line(tmp_path, checkpoints, capsys):
    data = write_release(str(tmp_path / "r"), ["m1", "m2"], audio_less=("m1", "m2"))
    code, _, err = run_main(extract.main, ["--data", data, "--modality", "audio", "--model", checkpoints["hubert"],
                                           "--workers", "0", "--no_progress"], capsys)
    assert_one_line_error(code, err, "no clip could be used", "no audio stream", "extract-hubert.failed.csv")


def test_detect_reports_clips_without_a_face(tmp_path, checkpoints, capsys):
    data = write_release(str(tmp_path / "r"), ["g1", "g2"])  # grey frames
    code, out, err = run_main(extract.main, ["--data", data, "--modality", "visual", "--model", checkpoints["vit"],
                                             "--faces", "detect", "--workers", "0", "--no_progress"], capsys)
    assert_one_line_error(code, err, "no clip could be used", "no face found")


@pytest.mark.parametrize("argv, culprit", [
    (["--modality", "audio"], "needs --model"),
    (["--modality", "opensmile", "--shard", "4/2"], "--shard 4/2"),
    (["--modality", "text", "--model", "MISSING", "--subtitles", "nope.csv"], "nope.csv"),
])
def test_bad_flags_are_one_line(release, capsys, argv, culprit):
    before = snapshot(release)
    code, _, err = run_main(extract.main, ["--data", release, *argv], capsys)
    assert_one_line_error(code, err, culprit)
    assert snapshot(release) == before


def test_training_never_imports_the_extraction_packages():
    code = ("import sys, train, predict, test, tune, ensemble, pseudo_label, engine.runner, inference.predictor, stages.sweep; "
            "import extract; extract.parse_args(['--data', '.', '--modality', 'opensmile']); "
            "print(sorted(m for m in ('av', 'transformers', 'opensmile', 'cv2', 'skimage') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def openface_release(root, names, drop=()):
    """A release of OpenFace CSVs only (openface/<name>.csv), the clips listed in names.csv."""
    from tests.feature_extraction.test_handcrafted import good_rows, write_openface_csv

    os.makedirs(root)
    with open(os.path.join(root, "names.csv"), "w") as f:
        f.write("name\n" + "\n".join(names) + "\n")
    for name in names:
        write_openface_csv(os.path.join(root, "openface", f"{name}.csv"), good_rows(3), drop=drop)
    return root


def test_openface_csvs_without_the_asked_columns_stop_before_any_clip_and_say_what_works(tmp_path, capsys):
    from feature_extraction.handcrafted import OPENFACE_COLUMNS

    data = openface_release(str(tmp_path / "release"), ["c1", "c2", "c3"], drop=OPENFACE_COLUMNS["au_c"])
    argv = ["--data", data, "--names", os.path.join(data, "names.csv"), "--modality", "openface", "--level", "utt", "frm",
            "--workers", "0", "--no_progress"]
    code, _, err = run_main(extract.main, argv, capsys)
    line = assert_one_line_error(code, err, os.path.join(data, "openface", "c1.csv"), "'AU01_c'",
                                 "column groups au_r, pose, gaze", "use --columns au_r", "before any clip")
    assert "c2" not in line and not os.path.exists(os.path.join(data, "features"))  # one line, no clip tried
    code, out, err = run_main(extract.main, argv + ["--columns", "au_r"], capsys)
    assert code == 0, err
    assert "3 clips written" in out and np.load(os.path.join(data, "features", "openface-au_r-FRM", "c2.npy")).shape == (3, 17)


def test_no_openface_folder_names_the_flags_that_give_one(tmp_path, capsys):
    data = openface_release(str(tmp_path / "release"), ["c1", "c2"])
    argv = ["--data", data, "--names", os.path.join(data, "names.csv"), "--modality", "openface", "--workers", "0", "--no_progress"]
    os.rename(os.path.join(data, "openface"), os.path.join(data, "of"))
    code, _, err = run_main(extract.main, argv, capsys)
    assert_one_line_error(code, err, f"{os.path.join(data, 'openface')} does not exist", "--openface_dir DIR", "--openface_bin PATH")
    code, out, err = run_main(extract.main, argv + ["--openface_dir", os.path.join(data, "of")], capsys)
    assert code == 0 and "2 clips written" in out, err
