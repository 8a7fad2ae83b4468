"""Bad feature files, folders, config entries and sample names: one line, exit 2, the culprit named, nothing
written (train.py and preprocess/check_feat_dim.py)."""
import os

import numpy as np
import pytest

import train
from preprocess import check_feat_dim
from tests.bad_inputs.helpers import assert_one_line_error, run_main, snapshot
from tests.conftest import write_project_config
from toolkit.io import load_split, save_split

FEATURE = "tiny-video-UTT"  # the first feature train.py loads: no other cache is written before the error
DIM = 12


def state(root):
    """Every file's content outside the feature folders (some tests plant symlink loops there) and every
    path under them."""
    outside = {e: snapshot(os.path.join(root, e)) for e in os.listdir(root) if e != "features"}
    inside = sorted(os.path.join(d, n) for d, dirs, files in os.walk(os.path.join(root, "features")) for n in dirs + files)
    return outside, inside


def run_train(project, capsys, *extra):
    """train.py's main on the tiny project; asserts the run wrote nothing and returns (code, err)."""
    before = state(project["root"])
    code, _, err = run_main(train.main, project["argv"] + ["--epochs", "1", *extra], capsys)
    assert state(project["root"]) == before
    assert not os.path.exists(os.path.join(project["root"], "run"))
    return code, err


def feature_file(project, clip):
    return os.path.join(project["folders"][FEATURE][2], clip + ".npy")


def bad_arrays():
    return {
        "complex": np.ones(DIM, np.complex64),
        "string": np.array(["0.5"] * DIM),
        "bytes": np.array([b"x"] * DIM),
        "object": np.array([0.5] * DIM, dtype=object),
    }


@pytest.mark.parametrize("clip", ["clip_0000", "clip_0050"])  # the first file decides the fast reader's format
@pytest.mark.parametrize("kind", list(bad_arrays()))
def test_non_numeric_or_complex_file(tiny_project, capsys, recwarn, kind, clip):
    path = feature_file(tiny_project, clip)
    np.save(path, bad_arrays()[kind], allow_pickle=True)
    code, err = run_train(tiny_project, capsys)
    line = assert_one_line_error(code, err, path)
    assert {"complex": "complex", "string": "text", "bytes": "text", "object": "Python objects"}[kind] in line
    assert not [w for w in recwarn if "Complex" in type(w.message).__name__]  # refused, never cast


def test_npz_under_npy_name(tiny_project, capsys):
    path = feature_file(tiny_project, "clip_0007")
    with open(path, "wb") as f:
        np.savez(f, x=np.ones(DIM, np.float32))
    line = assert_one_line_error(*run_train(tiny_project, capsys), path)
    assert ".npz archive" in line and "np.save" in line


def test_feature_folder_is_a_symlink_loop(tiny_project, capsys, monkeypatch):
    loop = os.path.join(tiny_project["root"], "loop")
    os.symlink(loop, loop)
    write_project_config(tiny_project, extra={FEATURE: ["video", [DIM, loop]]})
    line = assert_one_line_error(*run_train(tiny_project, capsys), loop)
    assert "symlink loop" in line


def test_feature_file_is_a_symlink_loop(tiny_project, capsys):
    path = feature_file(tiny_project, "clip_0003")
    os.remove(path)
    os.symlink(path, path)
    line = assert_one_line_error(*run_train(tiny_project, capsys), path, "clip_0003")
    assert "symlink loop" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="permissions do not bind root")
def test_unreadable_feature_folder(tiny_project, capsys):
    folder = tiny_project["folders"][FEATURE][2]
    os.chmod(folder, 0)
    try:
        line = assert_one_line_error(*run_train(tiny_project, capsys), folder)
    finally:
        os.chmod(folder, 0o755)
    assert "permission" in line


@pytest.mark.parametrize("dim", ["768", 7.5, "abc", 0, -3, True, None])
def test_bad_dim_in_config(tiny_project, capsys, monkeypatch, dim):
    write_project_config(tiny_project, extra={FEATURE: ["video", [dim, tiny_project["folders"][FEATURE][2]]]})
    line = assert_one_line_error(*run_train(tiny_project, capsys), f"FEAT_VIDEO_DICT['{FEATURE}']", repr(dim))
    assert "positive whole number" in line


def test_repeat_separator_in_feature_name(tiny_project, capsys, monkeypatch):
    write_project_config(tiny_project, extra={"odd#name-UTT": ["video", [DIM, tiny_project["folders"][FEATURE][2]]]})
    line = assert_one_line_error(*run_train(tiny_project, capsys), "odd#name-UTT")
    assert "rename" in line


@pytest.mark.parametrize("name", ["", "../clip_0001", "sub/clip_0001", "..\\clip_0001", "..", "/etc/passwd"])
def test_sample_name_that_is_not_a_stem(tiny_project, capsys, name):
    path = os.path.join(tiny_project["train_lst"], "seed0.npy")
    split = load_split(path)
    split["valid_info"]["names"][0] = name
    save_split(path, split["train_info"], split["valid_info"])
    line = assert_one_line_error(*run_train(tiny_project, capsys), f"{name!r}", "seed0.npy")
    assert "not a sample name" in line


# preprocess/check_feat_dim.py on the tiny project's feature folders


def run_check(project, capsys, *extra):
    root = os.path.join(project["root"], "features")
    before = state(project["root"])
    code, _, err = run_main(check_feat_dim.main, ["--root", root, *extra], capsys)
    assert state(project["root"]) == before
    return code, err


@pytest.mark.parametrize("kind", list(bad_arrays()))
def test_check_feat_dim_refuses_non_numeric_and_complex(tiny_project, capsys, recwarn, kind):
    path = feature_file(tiny_project, "clip_0050")
    np.save(path, bad_arrays()[kind], allow_pickle=True)
    assert_one_line_error(*run_check(tiny_project, capsys, "--all"), path)
    assert not [w for w in recwarn if "Complex" in type(w.message).__name__]


def test_check_feat_dim_npz_under_npy_name(tiny_project, capsys):
    path = feature_file(tiny_project, "clip_0050")
    with open(path, "wb") as f:
        np.savez(f, x=np.ones(DIM, np.float32))
    assert_one_line_error(*run_check(tiny_project, capsys, "--all"), path)


def test_check_feat_dim_symlink_loop_among_folders(tiny_project, capsys):
    loop = os.path.join(tiny_project["root"], "features", "looping-UTT")
    os.symlink(loop, loop)
    line = assert_one_line_error(*run_check(tiny_project, capsys), loop)
    assert "symlink loop" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="permissions do not bind root")
def test_check_feat_dim_unreadable_folder(tiny_project, capsys):
    folder = tiny_project["folders"][FEATURE][2]
    os.chmod(folder, 0)
    try:
        assert_one_line_error(*run_check(tiny_project, capsys), folder)
    finally:
        os.chmod(folder, 0o755)


def test_check_feat_dim_bad_dim_in_config(tiny_project, capsys, monkeypatch):
    write_project_config(tiny_project, extra={FEATURE: ["video", ["768", tiny_project["folders"][FEATURE][2]]]})
    assert_one_line_error(*run_check(tiny_project, capsys), f"FEAT_VIDEO_DICT['{FEATURE}']", "'768'")
