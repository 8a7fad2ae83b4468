"""engine.fit and engine.run: the same run as train.py, derived values on the result, the epoch hook."""
import os

import pandas as pd
import pytest
import yaml

import engine
import train
from engine import Prune, Stop
from tests.bad_inputs.helpers import run_main
from tests.conftest import project_registry
from toolkit.runs import ARGS_FILE, LOG_FILE, METRICS_FILE, run_file


def parsed(project, *extra):
    return train.parse_args(project["argv"] + ["--no_plots"] + list(extra))


def data_of(project, args):
    return engine.load_data(args, project_registry(project))


def history_frame(result):
    return pd.DataFrame([e.row() for e in result.history]).drop(columns="seconds")


def test_train_main_and_engine_fit_give_the_same_metrics(tiny_project, tmp_path, capsys):
    code, out, _ = run_main(train.main, tiny_project["argv"] + ["--no_plots", "--epochs", "4"], capsys)
    assert code == 0
    written = pd.read_csv(run_file(tmp_path / "run", METRICS_FILE)).drop(columns="seconds")
    args = parsed(tiny_project, "--epochs", "4", "--run_dir", str(tmp_path / "unused"))
    result = engine.fit(args, data_of(tiny_project, args))
    pd.testing.assert_frame_equal(written, history_frame(result), check_exact=False, rtol=0, atol=5e-7)  # csv keeps 6 decimals
    assert f"BEST: epoch:{result.best_epoch}, loss:{result.best_loss:.4f}" in out.strip().splitlines()[-1]
    assert result.best_f1 == pytest.approx(written["valid_f1"].max(), abs=1e-6)
    assert not (tmp_path / "unused").exists(), "fit writes nothing"
    assert result.stopped_by is None and result.summary is None


def test_derived_values_live_on_the_result_and_in_args_yaml(tiny_project, tmp_path):
    args = parsed(tiny_project, "--epochs", "2", "--save_model")
    result = engine.run(args)
    for key in ("n_train", "feat_dims", "feat_levels", "num_classes", "start_time"):
        assert not hasattr(args, key), f"{key} was stored on args"
    assert result.n_train == 90 and result.num_classes == 6 and result.experts == list(result.feat_dims)
    assert result.feat_dims == {"tiny-video-UTT": 12, "tiny-audio-UTT": 8, "tiny-text-UTT": 6}
    stored = yaml.safe_load(open(run_file(tmp_path / "run", ARGS_FILE)))
    assert stored["n_train"] == 90 and stored["feat_dims"] == result.feat_dims and stored["num_classes"] == 6
    assert stored["feat_levels"] == {k: "utt" for k in result.feat_dims} and stored["run_dir"] == str(tmp_path / "run")
    from inference.predictor import load_run

    _, meta = load_run(str(tmp_path / "run"), "cpu")
    assert meta["feat_dims"] == result.feat_dims and meta["valid_f1"] == result.summary["f1"]


class StopAfter:
    def __init__(self, epochs):
        self.epochs = epochs

    def on_epoch_end(self, epoch_end):
        return Stop(f"{self.epochs} epochs are enough") if epoch_end.epoch >= self.epochs else None


def test_a_callback_stops_the_run_and_the_result_says_so(tiny_project, tmp_path):
    result = engine.run(parsed(tiny_project, "--epochs", "6", "--patience", "0"), callbacks=[StopAfter(2)], quiet=True)
    assert [e.epoch for e in result.history] == [1, 2]
    assert result.stopped_by == "StopAfter" and result.stop.reason == "2 epochs are enough" and not result.pruned
    assert result.summary["epochs_run"] == 2 and result.summary["stopped_by"] == "StopAfter"
    assert len(pd.read_csv(run_file(tmp_path / "run", METRICS_FILE))) == 2
    assert "stopped by StopAfter: 2 epochs are enough" in open(run_file(tmp_path / "run", LOG_FILE)).read()


def test_a_callback_gets_every_epoch_in_order_and_can_prune(tiny_project):
    seen = []

    def watch(epoch_end):
        seen.append(epoch_end)
        if epoch_end.epoch == 3:
            raise Prune("not promising")

    args = parsed(tiny_project, "--epochs", "5", "--patience", "0")
    result = engine.fit(args, data_of(tiny_project, args), callbacks=[watch])
    assert seen == result.history and [e.epoch for e in seen] == [1, 2, 3]
    assert result.pruned and result.stopped_by == "watch"
    best = max(seen, key=lambda e: (e.valid_f1, -e.epoch))
    assert (result.best_epoch, result.best_f1) == (best.epoch, best.valid_f1) == (seen[-1].best_epoch, seen[-1].best_f1)
    assert result.best_probs.shape == (30, 6) and result.best_state is not None and result.seconds_per_epoch > 0


def test_patience_is_early_stopping_by_callback(tiny_project):
    args = parsed(tiny_project, "--epochs", "40", "--patience", "1", "--lr", "1e-5")
    result = engine.fit(args, data_of(tiny_project, args))
    assert len(result.history) < 40, "a learning rate this small cannot improve the F1 every epoch"
    assert result.stopped_by == "EarlyStopping" and len(result.history) == result.best_epoch + 1
    assert result.history[-1].valid_f1 <= result.best_f1


def test_a_diverged_fit_raises_and_no_callback_sees_it(tiny_project):
    from toolkit.errors import UserError

    seen = []
    args = parsed(tiny_project, "--epochs", "3", "--lr", "1e12", "--scheduler", "none", "--patience", "0")
    with pytest.raises(UserError, match="diverged at epoch"):
        engine.fit(args, data_of(tiny_project, args), callbacks=[seen.append])
    assert len(seen) < 3
    assert not os.path.exists(args.run_dir)
