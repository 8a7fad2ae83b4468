"""A full disk under every script that writes: one line naming the file being written and the cause, exit 2,
no traceback, and nothing partial left (what was there before is unchanged).

The disk is made full with a file size limit (RLIMIT_FSIZE) in the script's process: each write past it fails
with ``OSError: File too large`` (EFBIG), as a write to a full disk fails with ENOSPC, in Python's own writes
as in numpy's and torch's."""
import errno
import os

import numpy as np
import pytest

import train
from inference.predictor import save_preds
from tests.bad_inputs.helpers import assert_one_line_error, run_main, run_script_on_a_full_disk, snapshot
from tests.conftest import registered_env
from toolkit.errors import WriteError, cli

CLASSES = ["neutral", "angry", "happy", "sad", "worried", "surprise"]


def assert_full_disk_line(proc, *culprits):
    return assert_one_line_error(proc.returncode, proc.stderr, *culprits, "File too large", "ulimit -f")


@pytest.mark.parametrize("limit, culprit", [(200, "info.log"), (64 << 10, "best.pth")])  # the log grows first; best.pth ~230 KB
def test_train_save_model(tiny_project, tmp_path, limit, culprit):
    env = registered_env(tiny_project, tmp_path)
    argv = tiny_project["argv"] + ["--cache_dir", "none", "--epochs", "2", "--no_plots", "--save_model"]
    before = snapshot(tmp_path)
    proc = run_script_on_a_full_disk("train.py", limit, *argv, env=env)
    assert_full_disk_line(proc, os.path.join(tmp_path, "run", culprit))
    assert snapshot(tmp_path) == before and not (tmp_path / "run").exists()  # no half run, no staging folder


def test_predict_py_keeps_the_earlier_predictions(tiny_project, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert run_main(train.main, tiny_project["argv"] + ["--epochs", "2", "--no_plots", "--save_model"], capsys)[0] == 0
    names = tmp_path / "names.csv"
    names.write_text("name\n" + "".join(f"{n}\n" for n in tiny_project["names"]))
    argv = ["predict.py", "--run", run_dir, "--names", names, "--out", tmp_path / "preds", "--cache_dir", "none", "--no_progress"]
    env = registered_env(tiny_project, tmp_path)
    proc = run_script_on_a_full_disk(argv[0], 1 << 30, *argv[1:], env=env)  # the earlier predictions
    assert proc.returncode == 0, proc.stderr
    before = snapshot(tmp_path)
    proc = run_script_on_a_full_disk(argv[0], 1000, *argv[1:], env=env)
    assert_full_disk_line(proc, os.path.join(tmp_path, "preds", "preds.npz"))
    assert snapshot(tmp_path) == before


def test_ensemble(tmp_path):
    probs = np.random.default_rng(0).dirichlet(np.ones(6), 50)
    names = [f"t{i}" for i in range(50)]
    members = []
    for k in range(2):
        members.append(str(tmp_path / f"m{k}.npz"))
        save_preds(members[-1], {"names": names, "classes": CLASSES, "probs": probs, "valid_f1": 0.5})
    before = snapshot(tmp_path)
    proc = run_script_on_a_full_disk("ensemble.py", 500, "--preds", *members, "--out", tmp_path / "out" / "sub.csv")
    assert_full_disk_line(proc, os.path.join(tmp_path, "out", "sub.npz"))
    assert snapshot(tmp_path) == before


def test_mer2025_base(tmp_path):
    classes = CLASSES * 20
    (tmp_path / "labels.csv").write_text("name,discrete\n" + "".join(f"clip_{i:04d},{c}\n" for i, c in enumerate(classes)))
    before = snapshot(tmp_path)
    proc = run_script_on_a_full_disk("preprocess/mer2025_base.py", 1000, "--label_csv", tmp_path / "labels.csv",
                                     "--save_root", tmp_path / "lst")
    assert_full_disk_line(proc, os.path.join(tmp_path, "lst", "seed0.npy"))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG])
def test_cli_reports_a_full_disk_anywhere_as_one_line(capsys, code):
    @cli
    def main(argv=None):
        raise OSError(code, os.strerror(code), "/data/out.bin")

    exit_code, _, err = run_main(main, [], capsys)
    assert_one_line_error(exit_code, err, "cannot write /data/out.bin", os.strerror(code))


def test_other_os_errors_are_not_dressed_up_as_a_full_disk(capsys):
    @cli
    def main(argv=None):
        raise OSError(errno.EIO, "Input/output error", "/data/in.bin")

    with pytest.raises(OSError, match="Input/output error"):
        main([])


def test_a_write_error_names_the_file_where_it_was_headed_not_its_staging_copy(tmp_path):
    from toolkit.runs import RunDir

    with pytest.raises(WriteError) as raised, RunDir(tmp_path / "run") as claim, claim.staged() as stage:
        raise WriteError(os.path.join(stage, "sub", "best.pth"), errno.ENOSPC)
    assert str(raised.value).startswith(f"cannot write {tmp_path / 'run' / 'sub' / 'best.pth'} (No space left on device)")
    assert os.listdir(tmp_path) == []
