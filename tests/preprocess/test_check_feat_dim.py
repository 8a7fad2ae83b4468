"""preprocess/check_feat_dim.py: report lines, --all problems, (1, C) and frame level, the manifest and
--emit-config's include line, errors."""
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from dataloader.registry import CONFIG_FILE, MANIFEST_NAME, Registry, read_manifest
from preprocess import check_feat_dim as script
from preprocess import make_demo_data
from toolkit.io import PROJECT_ROOT

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
        "openface-AU-FRM, dim=17, files=3, T=5..30 (p50 9, p95 30, from 3 of 3 files)",
    ]


def test_frame_counts_are_the_same_with_and_without_all(tmp_path, capsys):
    """Frame counts come from every file's header, nearest rank: --all, a sample and --emit-config print one figure."""
    lengths = np.random.default_rng(0).permutation(np.arange(101, 141))  # T = 101..140 in a shuffled file order
    write_folder(tmp_path / "features", "my-au-FRM", [np.zeros((t, 3), np.float32) for t in lengths])
    expected = "my-au-FRM, dim=3, files=40, T=101..140 (p50 120, p95 138, from 40 of 40 files)"
    for argv in ([], ["--all"], ["--sample", "5"], ["--emit-config", "--modality", "*=V"]):
        code, out = run(["--root", str(tmp_path / "features"), *argv], capsys)
        assert code == 0 and out.splitlines()[0].lstrip("# ") == expected, argv


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
    assert "(default: 200)" in text and f"(default: {script.DEMO_FEATURES})" in " ".join(text.split())
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
    assert code == 0 and "T=5..30 (p50 9, p95 30, from 3 of 3 files)" in out
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


MODALITIES = ["--modality", "*hubert*=A", "openface-*=V", "mystery-UTT=t"]  # a lower-case letter is fine too


def config_copy(tmp_path, appended):
    """A copy of the project's config.py with ``appended`` at its end; returns its path."""
    path = tmp_path / "config.py"
    path.write_text(open(CONFIG_FILE, encoding="utf-8").read() + appended)
    return str(path)


def test_emit_config_writes_a_manifest_and_prints_one_include_line(root, tmp_path, capsys):
    code, out = run(["--root", str(root), "--emit-config", *MODALITIES], capsys)
    assert code == 0
    code_lines = [line for line in out.splitlines() if line.strip() and not line.startswith("#")]
    manifest = os.path.abspath(root / MANIFEST_NAME)  # outside the repository: absolute
    assert code_lines == [f'FEATURE_MANIFESTS = [*globals().get("FEATURE_MANIFESTS", []), {manifest!r}]']
    assert "# my-hubert-UTT, dim=8, files=5" in out.splitlines()  # the report, as comments
    # all of stdout is Python: appended to config.py, the registry reads the folders from the manifest
    registry = Registry.from_config(config_copy(tmp_path, out))
    expected = {"my-hubert-UTT": (8, "audio", "utt"), "openface-AU-FRM": (17, "video", "frm"), "mystery-UTT": (3, "text", "utt")}
    for name, (dim, modality, level) in expected.items():
        spec = registry.lookup([name])[0]
        assert (spec.dim, spec.modality, spec.level, spec.folder) == (dim, modality, level, os.path.abspath(root / name))
        assert registry.sources[name] == manifest
    assert "demo-clip-UTT" in registry.features  # config.py's own features stay registered
    written = yaml.safe_load((root / MANIFEST_NAME).read_text())
    assert written["features"]["openface-AU-FRM"] == {"dim": 17, "modality": "video", "level": "frm", "folder": "openface-AU-FRM"}


def test_two_data_sets_appended_are_both_registered(root, tmp_path, capsys):
    _, first = run(["--root", str(root), "--emit-config", *MODALITIES], capsys)
    other = tmp_path / "other"
    write_folder(other, "other-wavlm-UTT", [np.ones(4, np.float32)] * 2)
    _, second = run(["--root", str(other), "--emit-config", "--modality", "*=A"], capsys)
    registry = Registry.from_config(config_copy(tmp_path, first + second))
    assert registry.lookup(["other-wavlm-UTT"])[0].modality == "audio" and registry.lookup(["my-hubert-UTT"])[0].dim == 8
    assert registry.sources["other-wavlm-UTT"] == os.path.abspath(other / MANIFEST_NAME)


def test_a_folder_without_modality_is_a_one_line_error_and_nothing_is_written(root, capsys):
    with pytest.raises(SystemExit) as done:
        script.main(["--root", str(root), "--emit-config", "--modality", "*hubert*=A", "openface-*=V"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and err.startswith("error: 1 feature folders have no modality")
    assert "(mystery-UTT)" in err and "--modality 'mystery-UTT=?'" in err  # the name says nothing: no letter suggested
    assert not (root / MANIFEST_NAME).exists()
    with pytest.raises(SystemExit):
        script.main(["--root", str(root), "--manifest"])
    err = capsys.readouterr().err
    assert "'my-hubert-UTT=A'" in err and "'openface-AU-FRM=V'" in err and "'mystery-UTT=?'" in err  # suggestions only
    assert not (root / MANIFEST_NAME).exists()


def test_the_manifest_already_there_gives_the_modality_and_a_flag_wins(root, capsys):
    assert run(["--root", str(root), "--manifest", *MODALITIES], capsys)[0] == 0
    assert run(["--root", str(root), "--manifest"], capsys)[0] == 0  # no --modality: the manifest's
    assert read_manifest(str(root / MANIFEST_NAME))["mystery-UTT"].modality == "text"
    assert run(["--root", str(root), "--manifest", "--modality", "mystery-UTT=V"], capsys)[0] == 0
    specs = read_manifest(str(root / MANIFEST_NAME))
    assert specs["mystery-UTT"].modality == "video" and specs["my-hubert-UTT"].modality == "audio"


def test_bad_modality_item_is_a_one_line_error(root, capsys):
    with pytest.raises(SystemExit) as done:
        script.main(["--root", str(root), "--manifest", "--modality", "mystery-UTT=X"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and "--modality 'mystery-UTT=X': write NAME=A" in err


def test_paths_inside_repo_are_relative_and_modality_suggestions():
    inside = os.path.join(PROJECT_ROOT, "data", "x", "features", "a-UTT")
    assert script.project_path(inside) == "data/x/features/a-UTT"
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
    dims = {name: spec.dim for name, spec in Registry.from_config().features.items()}
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
