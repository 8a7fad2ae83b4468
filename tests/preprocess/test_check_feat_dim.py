"""preprocess/check_feat_dim.py: report lines, --all problems, (1, C) and frame level, --emit-config, errors."""
import os
import subprocess
import sys

import numpy as np
import pytest

import config
from preprocess import check_feat_dim as script
from preprocess import make_demo_data

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "preprocess", "check_feat_dim.py")


def write_folder(root, name, arrays):
    folder = root / name
    folder.mkdir(parents=True)
    for i, array in enumerate(arrays):
        np.save(folder / f"clip_{i:03d}.npy", array)
    return folder


@pytest.fixture
def root(tmp_path):
    """Three clean feature folders: utterance level with a (1, C) file, a frame-level one, an unknown modality."""
    r = tmp_path / "features"
    vecs = [np.ones(8, np.float32)] * 4 + [np.ones((1, 8), np.float32)]
    write_folder(r, "my-hubert-UTT", vecs)
    write_folder(r, "openface-AU-FRM", [np.zeros((t, 17), np.float32) for t in (5, 9, 30)])
    write_folder(r, "mystery-UTT", [np.zeros(3, np.float32)] * 2)
    return r


def run(argv, capsys):
    code = script.main(argv)
    return code, capsys.readouterr().out


def test_one_line_per_folder(root, capsys):
    code, out = run(["--root", str(root)], capsys)
    assert code == 0
    assert out.splitlines() == [
        "my-hubert-UTT, dim=8, files=5",
        "mystery-UTT, dim=3, files=2",
        "openface-AU-FRM, dim=17, files=3, T=5..30 (p50 9, p95 27.9, from 3 of 3 files)",
    ]
    code, out = run(["--root", str(root), "--all"], capsys)
    assert code == 0 and "openface-AU-FRM, dim=17, files=3, T=5..30 (p50 9, p95 27.9, from 3 of 3 files)" in out
    code, out = run(["--root", str(root), "--sample", "2"], capsys)  # the first and the last file
    assert code == 0 and "openface-AU-FRM, dim=17, files=3, T=5..30 (p50 17.5, p95 28.75, from 2 of 3 files)" in out


def test_sample_is_evenly_spaced():
    files = [f"clip_{i:04d}.npy" for i in range(1000)]
    chosen = script.sampled(files, 200)
    assert len(chosen) == 200 and chosen[0] == files[0] and chosen[-1] == files[-1]
    gaps = np.diff([files.index(f) for f in chosen])
    assert gaps.min() >= 4 and gaps.max() <= 6
    assert script.sampled(files[:7], 200) == files[:7] and script.sampled(files, None) == files


def test_help_shows_every_default(capsys):
    parser = script.build_parser()
    text = parser.format_help()
    from tests.toolkit.test_help import undocumented_defaults

    assert undocumented_defaults(parser) == []
    assert "(default: 200)" in text and "config.DEMO_FEATURES" in text
    with pytest.raises(SystemExit) as done:
        script.main(["--help"])
    assert done.value.code == 0 and "(default: 200)" in capsys.readouterr().out


def test_all_checks_frame_files(root, capsys):
    folder = root / "openface-AU-FRM"
    np.save(folder / "clip_900.npy", np.zeros(17, np.float32))
    np.save(folder / "clip_901.npy", np.zeros((0, 17), np.float32))
    np.save(folder / "clip_902.npy", np.zeros((4, 35), np.float32))
    with pytest.raises(SystemExit):
        script.main(["--root", str(root), "--all"])
    out = capsys.readouterr().out
    assert "clip_900.npy (shape (17,), expected (T, C)" in out
    assert "clip_901.npy (shape (0, 17): no frames (T = 0))" in out
    assert "clip_902.npy (dim 35)" in out


def test_all_names_wrong_shape_and_nan_files(root, capsys):
    folder = root / "my-hubert-UTT"
    np.save(folder / "clip_900.npy", np.ones(7, np.float32))
    bad = np.ones(8, np.float32)
    bad[3] = np.nan
    np.save(folder / "clip_901.npy", bad)
    (folder / "clip_902.npy").write_bytes(b"not numpy")

    code, out = run(["--root", str(root), "--sample", "1"], capsys)  # the first file only: nothing found
    assert code == 0 and "T=5..5 (p50 5, p95 5, from 1 of 3 files)" in out
    for argv in (["--all"], []):  # 8 files: the default sample reads them all
        with pytest.raises(SystemExit) as err:
            script.main(["--root", str(root), *argv])
        captured = capsys.readouterr()
        assert err.value.code == 2
        assert "my-hubert-UTT, dim=8, files=8" in captured.out
        assert "clip_900.npy (dim 7)" in captured.out
        assert "NaN/inf values: clip_901.npy" in captured.out
        assert "clip_902.npy (is not a .npy file" in captured.out
        assert captured.err.startswith("error: 1 of 3 feature folders have problems (my-hubert-UTT); first bad file: ")


def test_many_offenders_are_counted(tmp_path, capsys):
    arrays = [np.ones(4, np.float32)] * 3 + [np.full(4, np.inf, np.float32)] * 9
    write_folder(tmp_path / "f", "x-UTT", arrays)
    with pytest.raises(SystemExit):
        script.main(["--root", str(tmp_path / "f"), "--all"])
    out = capsys.readouterr().out
    assert "9 file(s) with NaN/inf values" in out and "and 4 more" in out


def test_folder_without_npy_and_bad_frame_shape(tmp_path, capsys):
    (tmp_path / "f" / "empty-UTT").mkdir(parents=True)
    write_folder(tmp_path / "f", "utt-as-frames-UTT", [np.zeros((4, 6), np.float32)])
    with pytest.raises(SystemExit):
        script.main(["--root", str(tmp_path / "f")])
    out = capsys.readouterr().out
    assert "empty-UTT, dim=None, files=0" in out and "no .npy files in" in out
    assert "expected (C,) or (1, C)" in out


def test_emit_config_groups_by_modality(root, capsys):
    code, out = run(["--root", str(root), "--emit-config"], capsys)
    assert code == 0
    block = out.split("\n\n", 1)[1].splitlines()
    folder = os.path.abspath(root / "my-hubert-UTT")  # outside the repository: absolute
    assert block.index("FEAT_AUDIO_DICT.update({") < block.index(f'    "my-hubert-UTT": [8, "{folder}"],  # files=5')
    assert block.index("FEAT_VIDEO_DICT.update({") < [i for i, l in enumerate(block) if "openface-AU-FRM" in l][0]
    assert block[-4].startswith("# modality?") and block[-2].startswith('#     "mystery-UTT": [3, ')
    # all of stdout is Python that registers the features: appended to config.py, it works
    dicts = {"FEAT_VIDEO_DICT": {}, "FEAT_AUDIO_DICT": {}, "FEAT_TEXT_DICT": {}}
    exec(out, {}, dicts)  # noqa: S102
    assert dicts["FEAT_AUDIO_DICT"]["my-hubert-UTT"] == [8, folder]
    assert "mystery-UTT" not in {k for d in dicts.values() for k in d}  # unknown modality: left for the user


def test_paths_inside_repo_are_relative_and_modality_guess():
    inside = os.path.join(config.PROJECT_ROOT, "data", "x", "features", "a-UTT")
    assert script.config_path(inside) == "data/x/features/a-UTT"
    guesses = {n: script.guess_modality(n) for n in
               ["chinese-hubert-large-UTT", "chinese-roberta-wwm-ext-large-UTT", "InternVL_2_5-UTT",
                "clip-vit-large-patch14-UTT", "Qwen2-Audio-7B-UTT", "bloom-7b1-UTT", "openface_AU-FRM", "xyz-UTT"]}
    assert guesses == {
        "chinese-hubert-large-UTT": "audio", "chinese-roberta-wwm-ext-large-UTT": "text", "InternVL_2_5-UTT": "video",
        "clip-vit-large-patch14-UTT": "video", "Qwen2-Audio-7B-UTT": "audio", "bloom-7b1-UTT": "text",
        "openface_AU-FRM": "video", "xyz-UTT": None,
    }


def test_generated_demo_dims_agree_with_config(tmp_path, capsys):
    make_demo_data.main(["--out", str(tmp_path / "d"), "--n_labeled", "12", "--n_unlabeled", "0", "--n_test", "0", "--no_vlm"])
    capsys.readouterr()
    code, out = run(["--root", str(tmp_path / "d" / "features"), "--all"], capsys)
    dims = {k: v[0] for d in (config.FEAT_VIDEO_DICT, config.FEAT_AUDIO_DICT, config.FEAT_TEXT_DICT) for k, v in d.items()}
    lines = out.splitlines()
    assert code == 0 and len(lines) == len(make_demo_data.FEATURES["demo"]) + len(make_demo_data.FRAME_FEATURES["demo"])
    for line in lines:
        name, dim, files = line.split(", ")[:3]
        assert dim == f"dim={dims[name]}" and files == "files=12"
        assert (", T=" in line) == name.endswith("-FRM")


@pytest.mark.parametrize("make_root", ["missing", "empty", "flat"])
def test_bad_root_is_one_line_error(tmp_path, make_root):
    root = tmp_path / "root"
    if make_root != "missing":
        root.mkdir()
    if make_root == "flat":
        np.save(root / "a.npy", np.zeros(3))
    proc = subprocess.run([sys.executable, SCRIPT, "--root", str(root)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert {"missing": "not found", "empty": "is empty", "flat": "pass its parent"}[make_root] in proc.stderr
