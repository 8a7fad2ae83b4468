"""tune.py: an Optuna study over K folds of the tiny project (resume, workers, pruning, best.yaml)."""
import json
import os

import optuna
import pandas as pd
import pytest
import yaml

import train
import tune
from models import known_models
from stages import search
from tests.bad_inputs.helpers import assert_one_line_error, run_main, run_script, snapshot
from tests.conftest import registered_env
from tests.test_train_folds import write_folds


def tune_argv(project, out, *flags):
    cache = project["argv"][project["argv"].index("--cache_dir") + 1]
    return ["--trials", "3", "--folds", "2", "--epochs", "2", "--sampler", "random", "--pruner", "none", "--out", str(out),
            *flags, "--", "--train_lst", project["train_lst"], "--cache_dir", cache, "--patience", "0"]


def trials_of(out):
    storage = f"sqlite:///{out}/study.db" if os.path.exists(out / "study.db") else search.open_storage(f"journal:{out}/study.journal")
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()


@pytest.fixture
def folds(tiny_project):
    write_folds(tiny_project, 2)
    return tiny_project


def test_every_model_search_space_is_well_formed():
    for model in known_models():
        space = search.search_space(model)
        assert set(search.OPTIM_SPACE) <= set(space)
        for name, values in space.items():
            search.check_space(name, values, model)
    assert "hidden_dim" in search.search_space("moe") and "heads" in search.search_space("auto_attention")
    assert "lr" not in search.search_space("moe", fixed=["lr"])


def test_study_writes_its_outputs_and_best_yaml_reproduces_the_best_trial(folds, tmp_path, capsys):
    out = tmp_path / "study"
    best = tune.main(tune_argv(folds, out))
    printed = capsys.readouterr().out
    assert {"study.db", "best.yaml", "trials.csv", "history.png", "importance.png"} <= set(os.listdir(out))
    table = pd.read_csv(out / "trials.csv")
    assert list(table["number"]) == [0, 1, 2] and set(table["state"]) == {"COMPLETE"}
    assert {"lr", "l2", "batch_size", "hidden_dim", "dropout"} <= set(table.columns)
    assert table["value"].max() == best.value and f"{best.value:.4f}" in printed
    settings = yaml.safe_load(open(out / "best.yaml"))
    assert settings["folds"] == 2 and settings["lr"] == best.params["lr"] and settings["hparams"]["hidden_dim"] == best.params["hidden_dim"]
    assert settings["model"] == "moe" and settings["epochs"] == 2
    summary = train.run(train.parse_args(["--config", str(out / "best.yaml"), "--run_dir", str(tmp_path / "again"), "--no_progress"]))
    assert summary["fold_f1"][0] == best.user_attrs["fold_f1"][0], "same seed and settings: fold 0 trains the same"
    assert summary["mean_f1"] == pytest.approx(best.value, abs=1e-12)


def test_rerun_resumes_the_study_without_repeating_trials(folds, tmp_path, capsys):
    out = tmp_path / "study"
    tune.main(tune_argv(folds, out, "--trials", "2"))
    first = {t.number: t.params for t in trials_of(out)}
    # a killed command leaves its trial running: the next run marks it failed and does not count it
    study = optuna.load_study(study_name=optuna.get_all_study_summaries(f"sqlite:///{out}/study.db")[0].study_name,
                              storage=f"sqlite:///{out}/study.db")
    study.ask()
    tune.main(tune_argv(folds, out, "--trials", "4"))
    trials = trials_of(out)
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == 4 and states.count("FAIL") == 1 and len(trials) == 5
    assert {t.number: t.params for t in trials if t.number in first} == first
    assert len({json.dumps(t.params, sort_keys=True) for t in trials if t.state.name == "COMPLETE"}) == 4
    assert "marked failed" in capsys.readouterr().out
    tune.main(tune_argv(folds, out, "--trials", "4"))
    assert len(trials_of(out)) == 5 and "nothing to run" in capsys.readouterr().out


def test_pruned_trials_stop_early_and_count(folds, tmp_path, capsys):
    out = tmp_path / "study"
    best = tune.main(tune_argv(folds, out, "--pruner", "threshold", "--prune_below", "0.99"))
    assert best is None
    trials = trials_of(out)
    assert [t.state.name for t in trials] == ["PRUNED"] * 3
    assert all(list(t.intermediate_values) == [1] for t in trials), "pruned after the first epoch of fold 0"
    assert not os.path.exists(out / "best.yaml")
    assert "best.yaml not written" in capsys.readouterr().out


def test_threads_after_the_dashes_set_each_workers_count_and_keep_the_study(folds, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    def plan(*train_flags):
        argv = tune_argv(folds, tmp_path / "out", "--jobs", "2") + list(train_flags)
        cut = argv.index("--")
        return search.build_plan(search.build_parser().parse_args(argv[:cut]), argv[cut + 1:])

    given, default = plan("--threads", "3"), plan()
    assert given.threads == (3, "--threads") and default.threads == (1, "OMP_NUM_THREADS=1")
    assert given.study == default.study and "threads" not in given.base


def test_two_workers_share_one_journal_study(folds, tmp_path):
    out = tmp_path / "study"
    proc = run_script("tune.py", *tune_argv(folds, out, "--jobs", "2", "--trials", "4"), env=registered_env(folds, tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert os.path.exists(out / "study.journal") and not os.path.exists(out / "study.db")
    trials = trials_of(out)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 4
    assert len(pd.read_csv(out / "trials.csv")) == 4 and os.path.exists(out / "best.yaml")


@pytest.mark.parametrize("flags, culprits", [
    (["--trials", "0"], ["--trials", "0"]),
    (["--model", "nope"], ["nope", "moe"]),
    (["--storage", "nosuchdb://x/y"], ["--storage nosuchdb://x/y"]),
    (["--storage", "sqlite:////no/such/folder/x.db"], ["--storage sqlite:////no/such/folder/x.db"]),
])
def test_bad_input_is_one_line(folds, tmp_path, capsys, flags, culprits):
    before = snapshot(folds["root"])
    code, _, err = run_main(tune.main, tune_argv(folds, tmp_path / "study", *flags), capsys)
    assert_one_line_error(code, err, *culprits)
    assert snapshot(folds["root"]) == before


def test_missing_folds_and_flags_tune_owns(folds, tmp_path, capsys):
    code, _, err = run_main(tune.main, tune_argv(folds, tmp_path / "s", "--folds", "3"), capsys)
    assert_one_line_error(code, err, "fold2.npy", "mer2025_base.py", "--folds 3")
    code, _, err = run_main(tune.main, tune_argv(folds, tmp_path / "s") + ["--epochs", "5"], capsys)
    assert_one_line_error(code, err, "--epochs", "tune.py")
    assert not os.path.exists(tmp_path / "s")


def test_help_shows_every_default_and_train_never_imports_optuna():
    import subprocess
    import sys

    from tests.conftest import REPO
    from tests.toolkit.test_help import undocumented_defaults

    assert undocumented_defaults(search.build_parser()) == []
    code = "import sys, train, engine; train.parse_args(['--folds', '3']); print(sorted(m for m in sys.modules if 'optuna' in m))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr
