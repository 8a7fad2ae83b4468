import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, TINY_FEATURES, write_project_config
from stages import sweep


def sweep_argv(project, tmp_path, *extra):
    return ["--seeds", "0", "--epochs", "2", "--lr", "1e-3", "--batch_size", "32", "--train_lst", project["train_lst"],
            "--save_root", str(tmp_path / "unimodal"), "--no_estimate", *extra, "--", "--cache_dir", str(tmp_path / "cache"), "--no_plots"]


def test_sweep_trains_every_feature_and_resumes(tiny_project, tmp_path, capsys):
    sweep.main(sweep_argv(tiny_project, tmp_path))
    out = capsys.readouterr().out
    assert "3 runs (3 features × 1 seeds), 0 already done, 3 to train" in out
    for feature in TINY_FEATURES:
        summary = json.load(open(tmp_path / "unimodal" / feature / "seed0" / "summary.json"))
        assert [f["name"] for f in summary["features"]] == [feature] and summary["repeat"] == 1
    first = os.path.getmtime(tmp_path / "unimodal" / "tiny-text-UTT" / "seed0" / "summary.json")
    os.remove(tmp_path / "unimodal" / "tiny-audio-UTT" / "seed0" / "summary.json")  # as if interrupted there
    sweep.main(sweep_argv(tiny_project, tmp_path))
    assert "2 already done, 1 to train" in capsys.readouterr().out
    assert os.path.getmtime(tmp_path / "unimodal" / "tiny-text-UTT" / "seed0" / "summary.json") == first
    assert (tmp_path / "unimodal" / "tiny-audio-UTT" / "seed0" / "summary.json").exists()
    sweep.main(sweep_argv(tiny_project, tmp_path, "--force", "--feats", "tiny-text-UTT"))
    assert "0 already done, 1 to train" in capsys.readouterr().out


def test_runs_made_with_other_settings_are_trained_again(tiny_project, tmp_path, capsys):
    sweep.main(sweep_argv(tiny_project, tmp_path, "--feats", "tiny-text-UTT"))
    capsys.readouterr()
    argv = sweep_argv(tiny_project, tmp_path, "--feats", "tiny-text-UTT")
    argv[argv.index("--lr") + 1] = "2e-3"
    sweep.main(argv)
    out = capsys.readouterr().out
    assert "0 already done, 1 to train" in out
    assert "1 finished runs were trained with other settings and are trained again (first: tiny-text-UTT seed0: lr 0.001 -> 0.002)" in out
    sweep.main(argv + ["--hidden_dim", "8"])  # a model hyper-parameter passed through to train.py counts too
    assert "hidden_dim 64 -> 8" in capsys.readouterr().out
    sweep.main(argv + ["--hidden_dim", "8", "--no_progress"])  # bookkeeping flags do not
    assert "1 already done, 0 to train" in capsys.readouterr().out


def test_parallel_jobs_match_sequential(tiny_project, tmp_path):
    sweep.main(sweep_argv(tiny_project, tmp_path / "seq", "--repeat", "1"))
    sweep.main(sweep_argv(tiny_project, tmp_path / "par", "--repeat", "1", "--jobs", "2"))
    for feature in TINY_FEATURES:
        seq = json.load(open(tmp_path / "seq" / "unimodal" / feature / "seed0" / "summary.json"))
        par = json.load(open(tmp_path / "par" / "unimodal" / feature / "seed0" / "summary.json"))
        assert seq["f1"] == pytest.approx(par["f1"], abs=1e-9)


def test_failed_run_stops_the_sweep_with_a_message(tiny_project, tmp_path, capsys):
    os.remove(os.path.join(tiny_project["folders"]["tiny-audio-UTT"][2], "clip_0005.npy"))
    with pytest.raises(SystemExit) as stop:
        sweep.main(sweep_argv(tiny_project, tmp_path, "--feats", "tiny-video-UTT tiny-audio-UTT"))
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "sweep stopped: tiny-audio-UTT seed0 failed" in err and "clip_0005" in err and "rerun" in err
    assert (tmp_path / "unimodal" / "tiny-video-UTT" / "seed0" / "summary.json").exists()


def test_feature_that_some_clips_lack_is_ranked_on_the_others_with_allow_missing(tiny_project, tmp_path, capfd):
    folder = tiny_project["folders"]["tiny-audio-UTT"][2]
    for clip in ("clip_0005", "clip_0006", "clip_0090"):
        os.remove(os.path.join(folder, clip + ".npy"))
    sweep.main(sweep_argv(tiny_project, tmp_path, "--feats", "tiny-audio-UTT") + ["--allow_missing"])
    err = capfd.readouterr().err
    assert "clips have no file for any of the run's features and are left out" in err, err
    summary = json.load(open(tmp_path / "unimodal" / "tiny-audio-UTT" / "seed0" / "summary.json"))
    results = np.load(tmp_path / "unimodal" / "tiny-audio-UTT" / "seed0" / "best_valid_results.npy",
                      allow_pickle=True).item()
    assert summary["f1"] > 0 and not {"clip_0005", "clip_0006", "clip_0090"} & set(results["eval_names"])


def path_without_this_python():
    """PATH without the folder of the interpreter running the tests: the script must run with the PYTHON it is
    given, as under conda or a CI whose environment lives elsewhere."""
    own = os.path.realpath(os.path.dirname(sys.executable))
    return os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and os.path.realpath(p) != own)


def test_missing_split_file_is_reported_before_training(tmp_path):
    env = {**os.environ, "SEEDS": "0 7", "FEATS": "demo-clip-UTT", "SAVE_ROOT": str(tmp_path / "u"), "PYTHON": sys.executable,
           "PATH": path_without_this_python()}
    proc = subprocess.run(["bash", "run_eval_unimodal.sh", "--train_lst", str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no split file seed0.npy, seed7.npy in " in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "u").exists()


def test_default_features_skip_other_data_sets(tiny_project, tmp_path, monkeypatch, capsys):
    import numpy as np

    other = tmp_path / "other-UTT"
    other.mkdir()
    np.save(other / "mer_00000000.npy", np.zeros(4, np.float32))
    write_project_config(tiny_project, extra={"other-UTT": ["text", [4, str(other)]],
                                              "absent-UTT": ["text", [4, str(tmp_path / "absent")]]})
    sweep.main(sweep_argv(tiny_project, tmp_path, "--epochs", "1"))
    out = capsys.readouterr().out
    assert "skipping 1 config.py features whose folders do not exist: absent-UTT" in out
    assert "skipping 1 config.py features with no file for the split's clips (another data set): other-UTT" in out
    assert "3 runs (3 features × 1 seeds)" in out


def test_published_preset_gives_frame_features_one_expert_copy_and_every_feature_an_estimate(frame_project, tmp_path, capsys):
    argv = sweep_argv(frame_project, tmp_path, "--feats", "tiny-au-FRM tiny-text-UTT", "--preset", "published")
    argv.remove("--no_estimate")
    sweep.main(argv)
    out = capsys.readouterr().out
    first = out.index("first estimate, from a few timed training steps per feature: ~")
    assert "(all 2 epochs" in out[first:] and first < out.index("[1/2] ") and "left" in out[out.index("[1/2] "):]
    assert "tiny-au-FRM: ~" in out and "(repeat 1) × 1" in out and "tiny-text-UTT: ~" in out and "(repeat 3) × 1" in out
    summary = json.load(open(tmp_path / "unimodal" / "tiny-au-FRM" / "seed0" / "summary.json"))
    assert summary["repeat"] == 1
    sweep.main(sweep_argv(frame_project, tmp_path, "--feats", "tiny-au-FRM", "--preset", "published", "--repeat", "2"))  # asked for: kept
    assert json.load(open(tmp_path / "unimodal" / "tiny-au-FRM" / "seed0" / "summary.json"))["repeat"] == 2


def test_the_probe_takes_the_p95_frame_count_check_feat_dim_prints(frame_project, capsys):
    import re

    from preprocess import check_feat_dim
    from tests.conftest import project_registry

    check_feat_dim.main(["--root", os.path.join(frame_project["root"], "features")])
    p95 = re.search(r"tiny-au-FRM, .*p95 (\d+),", capsys.readouterr().out).group(1)
    spec = project_registry(frame_project).lookup(["tiny-au-FRM"])[0]
    assert sweep.frame_length(spec) == int(p95) >= 20  # T = 3..29: the p95 is near the top


def test_no_seeds_is_one_line(tiny_project, tmp_path, capsys):
    from tests.bad_inputs.helpers import assert_one_line_error, run_main

    code, _, err = run_main(sweep.main, sweep_argv(tiny_project, tmp_path, "--seeds", " "), capsys)
    assert_one_line_error(code, err, "--seeds")
    assert not (tmp_path / "unimodal").exists()


def test_the_threads_flag_reaches_every_job_and_never_makes_a_run_stale(tiny_project, tmp_path, capsys):
    from tests.conftest import registered_env

    argv = sweep_argv(tiny_project, tmp_path, "--feats", "tiny-text-UTT tiny-audio-UTT", "--jobs", "2")
    proc = subprocess.run([sys.executable, "-m", "stages.sweep", *argv, "--threads", "3"], cwd=REPO,
                          env={**registered_env(tiny_project, tmp_path), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "3 CPU threads per job (--threads)" in proc.stdout
    for feature in ("tiny-text-UTT", "tiny-audio-UTT"):
        assert json.load(open(tmp_path / "unimodal" / feature / "seed0" / "summary.json"))["threads"] == 3
    sweep.main(argv)
    assert "2 already done, 0 to train" in capsys.readouterr().out


def test_parallel_sweep_leaks_no_semaphore(tiny_project, tmp_path):
    from tests.conftest import registered_env

    proc = subprocess.run([sys.executable, "-m", "stages.sweep", *sweep_argv(tiny_project, tmp_path, "--seeds", "0", "--jobs", "2",
                                                                              "--repeat", "1")],
                          cwd=REPO, env=registered_env(tiny_project, tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "[3/3]" in proc.stdout and "leaked semaphore" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr


def test_eta_comes_from_the_finished_runs():
    todo = [(None, None, feature, seed, None) for seed in "01" for feature in ("a", "b")]
    progress = sweep.Progress(todo, {"a": 10.0, "b": 20.0}, jobs=1)
    progress.finished("a", 30.0)  # the probe was 3x low
    assert progress.expected("a") == 30.0 and progress.expected("b") == 60.0
    assert progress.eta() == 30.0 + 2 * 60.0
    progress.finished("b", 40.0)
    assert progress.eta() == 30.0 + 40.0
    assert sweep.Progress(todo, {}, jobs=2).eta is not None and sweep.duration(185) == "3m05s"


def test_parallel_sweep_talks_while_it_runs(tiny_project, tmp_path):
    """Through a pipe, without PYTHONUNBUFFERED: each finished run's line (with the time left) and the progress
    lines of runs still training arrive while the sweep is running, not when it ends."""
    from tests.conftest import registered_env

    import shutil

    shutil.copy(os.path.join(tiny_project["train_lst"], "seed0.npy"), os.path.join(tiny_project["train_lst"], "seed1.npy"))
    env = {k: v for k, v in registered_env(tiny_project, tmp_path).items() if k != "PYTHONUNBUFFERED"}
    argv = sweep_argv(tiny_project, tmp_path, "--seeds", "0 1", "--jobs", "2", "--repeat", "1", "--progress_every", "0.001")
    argv[argv.index("--epochs") + 1] = "4"
    proc = subprocess.Popen([sys.executable, "-m", "stages.sweep", *argv], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("[1/6]"):
            assert proc.poll() is None, "the first run's line came only when the sweep had ended"
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    finished = [line for line in lines if line.startswith("[")]
    assert len(finished) == 6 and all(" left" in line for line in finished[:-1]) and " left" not in finished[-1]
    # seed by seed: the runs are handed out seed0 first, so the two workers' first runs, which end first, are seed0's
    # (the third to end may be a seed1 run that a worker took while the other still trained its seed0 run)
    assert [line.split()[2] for line in finished[:2]] == ["seed0:"] * 2
    progress = [line for line in lines if line.startswith("  ... tiny-")]
    assert sum("epoch 1/4 (" in line for line in progress) >= 2  # each worker's first run, after its first epoch
    assert any("epoch 2/4 (" in line and "s each), best f-score" in line for line in progress)


def two_seeds(project):
    import shutil

    shutil.copy(os.path.join(project["train_lst"], "seed0.npy"), os.path.join(project["train_lst"], "seed1.npy"))


def test_best_seed_keeps_its_model_and_the_table_names_it(tiny_project, tmp_path, capsys):
    import pandas as pd

    import eval_avg_performance
    import predict as predict_script
    from toolkit.runs import CHECKPOINT_FILE

    two_seeds(tiny_project)
    sweep.main(sweep_argv(tiny_project, tmp_path, "--seeds", "0 1", "--feats", "tiny-video-UTT tiny-text-UTT"))
    assert "models kept: the best run of each of 2 features holds best.pth (2 of other seeds removed" in capsys.readouterr().out
    root = tmp_path / "unimodal"
    eval_avg_performance.main(["--root", str(root)])
    table = pd.read_csv(root / "unimodal_summary.csv")
    for row in table.itertuples():
        f1 = {seed: json.load(open(root / row.features / seed / "summary.json"))["f1"] for seed in ("seed0", "seed1")}
        best = max(f1, key=lambda seed: (f1[seed], seed == "seed0"))
        assert row.best_run == str(root / row.features / best) and row.best_f1 == pytest.approx(f1[best], abs=1e-6) and row.best_run_model
        assert {seed for seed in f1 if (root / row.features / seed / CHECKPOINT_FILE).exists()} == {best}
    assert f"{table.best_run[0]} ({table.best_f1[0]:.4f}) |" in (root / "unimodal_summary.md").read_text()
    pd.DataFrame({"name": tiny_project["names"][:30], "discrete": tiny_project["emos"][:30]}).to_csv(tmp_path / "names.csv", index=False)
    _, metrics = predict_script.main(["--run", table.best_run[0], "--names", str(tmp_path / "names.csv"), "--out", str(tmp_path / "preds"),
                                      "--cache_dir", str(tmp_path / "cache"), "--no_progress"])
    assert 0 <= metrics["f1"] <= 1 and (tmp_path / "preds" / "preds.csv").exists()
    sweep.main(sweep_argv(tiny_project, tmp_path, "--seeds", "0 1", "--feats", "tiny-video-UTT", "--keep", "all"))
    assert "1 already done, 1 to train" in capsys.readouterr().out  # the run whose model was removed is trained again
    assert (root / "tiny-video-UTT" / "seed0" / CHECKPOINT_FILE).exists() and (root / "tiny-video-UTT" / "seed1" / CHECKPOINT_FILE).exists()


def test_best_run_without_a_model_is_trained_again_to_keep_it(tiny_project, tmp_path, capsys):
    from toolkit.runs import CHECKPOINT_FILE

    sweep.main(sweep_argv(tiny_project, tmp_path, "--feats", "tiny-text-UTT", "--keep", "none"))
    run = tmp_path / "unimodal" / "tiny-text-UTT" / "seed0"
    f1 = json.load(open(run / "summary.json"))["f1"]
    assert not (run / CHECKPOINT_FILE).exists()
    sweep.main(sweep_argv(tiny_project, tmp_path, "--feats", "tiny-text-UTT"))
    assert "has no best.pth (trained without keeping models); training it again" in capsys.readouterr().out
    assert (run / CHECKPOINT_FILE).exists() and json.load(open(run / "summary.json"))["f1"] == f1


def test_presets_set_the_runs_settings(tiny_project, tmp_path):
    """default: train.py's settings, one expert copy, a batch of at most a quarter of the training set (90 clips here:
    22); published: the published script's; flags given override either."""
    from dataloader.registry import Registry
    from engine.config import TRAIN_FIELDS

    registry = Registry.from_config()

    def settings(*extra):
        opts, _ = sweep.parse_options(["--train_lst", tiny_project["train_lst"], *extra])
        cfg = sweep.run_config(opts, registry, "tiny-text-UTT", "0", str(tmp_path / "run"))
        return cfg.lr, cfg.batch_size, cfg.epochs, cfg.patience, cfg.repeat

    default = (TRAIN_FIELDS["lr"].default, 22, TRAIN_FIELDS["epochs"].default, TRAIN_FIELDS["patience"].default, 1)
    assert settings() == default
    assert settings("--preset", "published") == (1e-4, 512, 80, TRAIN_FIELDS["patience"].default, 3)
    assert settings("--preset", "published", "--lr", "2e-3", "--repeat", "2") == (2e-3, 512, 80, TRAIN_FIELDS["patience"].default, 2)
    assert settings("--batch_size", "64", "--", "--patience", "5") == (TRAIN_FIELDS["lr"].default, 64, TRAIN_FIELDS["epochs"].default, 5, 1)
    env = {**os.environ, "PRESET": "publishd", "PYTHON": sys.executable}  # PRESET reaches --preset
    proc = subprocess.run(["bash", "run_eval_unimodal.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--preset" in proc.stderr and "'publishd'" in proc.stderr


def test_heartbeat_speaks_after_the_first_epoch_of_a_process_then_every_interval(monkeypatch, capsys):
    from engine import EpochEnd

    monkeypatch.setattr(sweep.Heartbeat, "started", False)
    end = lambda epoch: EpochEnd(epoch, 1.0, 1.0, 0.5, 0.4, 0.25, 1, 0.4)  # noqa: E731
    first, second = sweep.Heartbeat("a seed0", 100, every=1000), sweep.Heartbeat("b seed0", 100, every=1000)
    first(end(1)), first(end(2)), second(end(1))
    assert capsys.readouterr().out.splitlines() == ["  ... a seed0: epoch 1/100 (0.25s each), best f-score 0.4000 at epoch 1 (0s)"]
    monkeypatch.setattr(sweep.Heartbeat, "started", False)
    sweep.Heartbeat("c seed0", 100, every=0)(end(1))  # 0: only a line per finished run
    assert capsys.readouterr().out == ""


def test_eta_scales_the_probe_by_how_far_off_it_was_over_all_measured_features():
    todo = [(None, None, feature, "0", None) for feature in ("a", "b", "c")]
    progress = sweep.Progress(todo, {"a": 1.0, "b": 9.0, "c": 10.0}, jobs=1)
    progress.finished("a", 5.0)  # a small feature: its fixed costs make the probe 5x low
    progress.finished("b", 15.0)
    assert progress.eta() == pytest.approx(10.0 * (5.0 + 15.0) / (1.0 + 9.0))
