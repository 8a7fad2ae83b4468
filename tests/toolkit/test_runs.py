"""toolkit/runs.py: run directories (claimed, locked, committed in one rename) and checkpoints (plain-data meta,
read back with weights_only)."""
import os
import time

import numpy as np
import pytest
import torch

from toolkit.errors import UserError
from toolkit.runs import (ARGS_FILE, CHECKPOINT_FILE, LOG_FILE, SUMMARY_FILE, RunDir, is_run_dir, load_checkpoint,
                          save_checkpoint)


def write_run(path, text="old"):
    os.makedirs(path, exist_ok=True)
    for name in (ARGS_FILE, SUMMARY_FILE, CHECKPOINT_FILE):
        with open(os.path.join(path, name), "w") as f:
            f.write(text)


def commit(path, overwrite=False, text="new"):
    with RunDir(path, overwrite) as run:
        note = run.note()
        with run.staged() as stage:
            write_run(stage, text)
    return note


def test_a_folder_that_is_not_a_run_is_refused_and_left_as_it_was(tmp_path):
    user = tmp_path / "sweep"
    user.mkdir()
    (user / "results.csv").write_text("keep me")
    with pytest.raises(UserError, match=r"is a folder that is not a run of train.py .* left untouched"):
        commit(user)
    assert os.listdir(user) == ["results.csv"] and sorted(os.listdir(tmp_path)) == ["sweep"]


def test_a_file_is_refused(tmp_path):
    (tmp_path / "run").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        commit(tmp_path / "run")


def test_an_empty_folder_becomes_the_run(tmp_path):
    (tmp_path / "run").mkdir()
    assert "(new)" in commit(tmp_path / "run")
    assert is_run_dir(tmp_path / "run") and sorted(os.listdir(tmp_path)) == ["run"]


def test_the_previous_run_is_kept_unless_overwrite(tmp_path):
    run = tmp_path / "run"
    write_run(run, "first")
    note = commit(run, text="second")
    kept = [d for d in os.listdir(tmp_path) if d.startswith(".run.prev-")]
    assert len(kept) == 1 and kept[0] in note
    assert (tmp_path / kept[0] / CHECKPOINT_FILE).read_text() == "first"
    assert (run / CHECKPOINT_FILE).read_text() == "second"
    assert "replaced (--overwrite)" in commit(run, overwrite=True, text="third")
    assert (run / CHECKPOINT_FILE).read_text() == "third"
    assert sorted(os.listdir(tmp_path)) == sorted(["run"] + kept)  # overwrite kept nothing more, no lock or staging left


def test_a_failed_block_leaves_the_previous_run_as_it_was(tmp_path):
    run = tmp_path / "run"
    write_run(run, "first")
    with pytest.raises(RuntimeError), RunDir(run) as claim, claim.staged() as stage:
        write_run(stage, "half")
        raise RuntimeError("diverged")
    assert (run / CHECKPOINT_FILE).read_text() == "first" and sorted(os.listdir(tmp_path)) == ["run"]


def test_a_second_writer_is_refused_while_the_first_holds_the_run(tmp_path):
    run = tmp_path / "run"
    with RunDir(run):
        with pytest.raises(UserError, match=rf"is being written by another process \(pid {os.getpid()}\)"):
            RunDir(run).__enter__()
    with RunDir(run):  # released: the next one gets it
        pass


def test_staging_folders_of_killed_runs_are_removed(tmp_path):
    stale = tmp_path / f".run.tmp-999999-{int(time.time())}"
    stale.mkdir()
    (stale / LOG_FILE).write_text("half")
    other = tmp_path / ".other.tmp-999999-1"
    other.mkdir()
    commit(tmp_path / "run")
    assert not stale.exists() and other.exists()


def test_meta_is_stored_as_plain_data(tmp_path):
    model = torch.nn.Linear(3, 2)
    meta = {"model": "moe", "classes": ["a", "b"], "feat_dims": {"f-UTT": np.int64(3)}, "feat_levels": {"f-UTT": "utt"},
            "hparams": {"dropout": np.float32(0.25), "fused_head": np.bool_(True), "sizes": (np.int64(4), 5)}}
    save_checkpoint(str(tmp_path / CHECKPOINT_FILE), model, meta)
    raw = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)  # no numpy globals needed
    assert type(raw["feat_dims"]["f-UTT"]) is int and type(raw["hparams"]["dropout"]) is float
    assert raw["hparams"]["fused_head"] is True and raw["hparams"]["sizes"] == (4, 5)
    ckpt = load_checkpoint(str(tmp_path / CHECKPOINT_FILE))
    torch.testing.assert_close(ckpt["state_dict"]["weight"], model.weight.detach())


def test_older_checkpoints_with_numpy_scalars_load(tmp_path):
    state = {"state_dict": {"w": torch.ones(2)}, "hparams": {"dropout": np.float64(0.3), "layers": np.int64(2)}}
    torch.save(state, tmp_path / "new.pth")
    assert load_checkpoint(str(tmp_path / "new.pth"))["hparams"] == {"dropout": 0.3, "layers": 2}
    # as numpy 1.x wrote them: the scalar helper under numpy.core.multiarray (legacy format: one plain pickle stream)
    buffer = __import__("io").BytesIO()
    torch.save(state, buffer, _use_new_zipfile_serialization=False)
    data = buffer.getvalue()
    assert b"cnumpy._core.multiarray\nscalar\n" in data
    (tmp_path / "old.pth").write_bytes(data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    ckpt = load_checkpoint(str(tmp_path / "old.pth"))
    assert ckpt["hparams"] == {"dropout": 0.3, "layers": 2} and ckpt["state_dict"]["w"].tolist() == [1.0, 1.0]


def test_a_checkpoint_with_nan_weights_is_refused(tmp_path):
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    save_checkpoint(str(tmp_path / CHECKPOINT_FILE), model, {"model": "moe"})
    with pytest.raises(UserError, match=rf"{CHECKPOINT_FILE} holds NaN/inf weights \(weight\)"):
        load_checkpoint(str(tmp_path / CHECKPOINT_FILE))
