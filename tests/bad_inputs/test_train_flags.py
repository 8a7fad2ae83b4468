"""train.py: bad flag values are refused before anything is loaded, a diverged run writes nothing,
Ctrl-C is one line."""
import os
import signal
import subprocess
import sys
import time

import pytest

import train
from tests.bad_inputs.helpers import REPO, assert_one_line_error, run_main, snapshot
from tests.conftest import registered_env

BAD_FLAGS = [
    (["--lr", "0"], "--lr"), (["--lr", "-1e-3"], "--lr"), (["--lr", "nan"], "--lr"), (["--lr", "inf"], "--lr"),
    (["--l2", "-1"], "--l2"), (["--l2", "nan"], "--l2"),
    (["--dropout", "1"], "--dropout"), (["--input_dropout", "-0.1"], "--input_dropout"), (["--dropout", "nan"], "--dropout"),
    (["--label_smoothing", "1"], "--label_smoothing"), (["--label_smoothing", "-0.5"], "--label_smoothing"),
    (["--patience", "-1"], "--patience"), (["--hidden_dim", "0"], "--hidden_dim"), (["--expert_layers", "0"], "--expert_layers"),
    (["--warmup_epochs", "nan"], "--warmup_epochs"), (["--warmup_epochs", "-1"], "--warmup_epochs"),
    (["--feat", ""], "--feat"), (["--feat", "[]"], "--feat"), (["--feat", " , "], "--feat"), (["--feat", "[1, 2]"], "--feat"),
    (["--feat", "['a',"], "--feat"), (["--feat_topn", "-2"], "--feat_topn"), (["--seed", "-1"], "--seed"), (["--num_workers", "-1"], "--num_workers"),
    (["--batch_size", "0"], "--batch_size"), (["--epochs", "0"], "--epochs"), (["--repeat", "0"], "--repeat"),
    (["--max_frames", "0"], "--max_frames"), (["--val_weight", "-1"], "--val_weight"), (["--pseudo_weight", "nan"], "--pseudo_weight"),
    (["--expert_dropout", "1.0"], "--expert_dropout"), (["--aux_weight", "inf"], "--aux_weight"),
    (["--lr", "fast"], "--lr"), (["--epochs", "2.5"], "--epochs"), (["--fused_head", "maybe"], "--fused_head"),
    (["--frame_dim", "30"], "--frame_dim"), (["--model", "auto_attention", "--hidden_dim", "30"], "--hidden_dim"),
    (["--model", "nosuchmodel"], "nosuchmodel"), (["--emo_rule", "NOPE"], "NOPE"), (["--no_such_flag"], "--no_such_flag"),
    (["--device", "tpu"], "--device"), (["--gpu", "-1"], "--gpu"),
]


@pytest.mark.parametrize("flags,culprit", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_flag_values_are_one_line_before_any_loading(tiny_project, tmp_path, capsys, flags, culprit):
    before = snapshot(tmp_path)
    code, out, err = run_main(train.main, tiny_project["argv"] + ["--epochs", "1"] + flags, capsys)
    assert_one_line_error(code, err, culprit)
    assert snapshot(tmp_path) == before  # no cache, no run dir: nothing was loaded or written


def test_a_diverged_run_writes_nothing_and_keeps_the_previous_run(tiny_project, tmp_path, capsys):
    argv = tiny_project["argv"] + ["--epochs", "3", "--no_plots", "--save_model"]
    assert run_main(train.main, argv, capsys)[0] == 0
    before = snapshot(tmp_path / "run")
    code, out, err = run_main(train.main, argv + ["--lr", "1e6", "--val_weight", "1e30"], capsys)
    line = assert_one_line_error(code, err, "diverged", "--lr")
    assert "no run was written" in line and "BEST" not in out
    assert snapshot(tmp_path / "run") == before
    assert sorted(os.listdir(tmp_path)) == ["cache", "config.py", "features", "run", "train_lst"]


def test_a_folder_of_the_user_is_not_deleted(tiny_project, tmp_path, capsys):
    sweep = tmp_path / "my-sweep"
    sweep.mkdir()
    for i in range(5):
        (sweep / f"result{i}.csv").write_text(str(i))
    before = snapshot(sweep)
    code, _, err = run_main(train.main, tiny_project["argv"] + ["--epochs", "1", "--run_dir", str(sweep)], capsys)
    assert_one_line_error(code, err, str(sweep), "not a run of train.py")
    assert snapshot(sweep) == before


def test_rerunning_keeps_the_previous_checkpoint(tiny_project, tmp_path, capsys):
    argv = tiny_project["argv"] + ["--epochs", "2", "--no_plots", "--save_model"]
    run_main(train.main, argv, capsys)
    first = snapshot(tmp_path / "run")
    code, out, _ = run_main(train.main, argv + ["--seed", "1"], capsys)
    kept = [d for d in os.listdir(tmp_path) if d.startswith(".run.prev-")]
    assert code == 0 and len(kept) == 1 and f"kept as {tmp_path / kept[0]}" in out
    assert snapshot(tmp_path / kept[0]) == first
    with open(tmp_path / "run" / "info.log") as log:
        assert f"kept as {tmp_path / kept[0]}" in log.read()


SLOW_RUN = "import sys; sys.argv[0] = 'train.py'; import train; train.main(sys.argv[1:])"


def test_ctrl_c_prints_one_line_and_exits_130(tiny_project, tmp_path):
    env = registered_env(tiny_project, tmp_path)
    argv = tiny_project["argv"] + ["--epochs", "100000", "--patience", "0", "--feat", "tiny-text-UTT"]
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RUN, *argv], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not any(p.startswith(".run.tmp") for p in os.listdir(tmp_path)) and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip() == "interrupted", err
    assert not any(p.startswith((".run", "run")) for p in os.listdir(tmp_path))  # no staging folder, lock or run


def test_temporary_cache_files_of_a_killed_run_are_removed(tiny_project, tmp_path, capsys):
    from toolkit.io import atomic_path

    cache = tmp_path / "cache"
    cache.mkdir()
    killed = subprocess.run([sys.executable, "-c", "import os, sys; sys.path.insert(0, sys.argv[1]); from toolkit.io import atomic_path\n"
                             "with atomic_path(os.path.join(sys.argv[2], 'feat.npy')) as tmp: open(tmp, 'w').write('half'); os._exit(9)",
                             REPO, str(cache)], capture_output=True)
    assert killed.returncode == 9
    (left,) = [p for p in os.listdir(cache) if p.endswith(".tmp.npy")]
    os.utime(cache / left, (time.time() - 3600, time.time() - 3600))
    with atomic_path(str(cache / "mine.npy")) as live:  # a live process's temp file stays
        code, _, _ = run_main(train.main, tiny_project["argv"] + ["--epochs", "1", "--no_plots"], capsys)
        assert code == 0 and not (cache / left).exists() and os.path.exists(live)
