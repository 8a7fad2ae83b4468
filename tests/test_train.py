import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

import train
from tests.conftest import REPO
from toolkit.errors import UserError

RUN_FILES = {"info.log", "args.yaml", "config.yaml", "metrics.csv", "best_valid_results.npy", "summary.json",
             "loss.png", "emoacc.png", "emofscore.png", "confusion.png"}


def run_train(project, *extra):
    return train.run(train.parse_args(project["argv"] + list(extra)))


def test_run_writes_the_whole_run_dir(tiny_project, capsys):
    summary = run_train(tiny_project, "--epochs", "4", "--save_model")
    run_dir = tiny_project["argv"][tiny_project["argv"].index("--run_dir") + 1]
    assert RUN_FILES | {"best.pth"} <= set(os.listdir(run_dir))
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"BEST: epoch:\d+, loss:[\d.]+, acc:[\d.]+, f-score:[\d.]+", last)
    assert f"f-score:{summary['f1']:.4f}" in last
    metrics = pd.read_csv(os.path.join(run_dir, "metrics.csv"))
    assert list(metrics.columns) == ["epoch", "train_loss", "valid_loss", "valid_acc", "valid_f1", "seconds"]
    assert len(metrics) == 4 and metrics["valid_f1"].max() == pytest.approx(summary["f1"], abs=1e-6)
    results = np.load(os.path.join(run_dir, "best_valid_results.npy"), allow_pickle=True).item()
    assert {"eval_names", "eval_loss", "eval_emoprobs", "eval_emolabels", "eval_emoacc", "eval_emofscore"} <= set(results)
    assert results["eval_emoprobs"].shape == (30, 6)
    saved = json.load(open(os.path.join(run_dir, "summary.json")))
    assert saved["classes"][0] == "neutral" and len(saved["confusion"]) == 6
    assert [f["name"] for f in saved["features"]] == ["tiny-video-UTT", "tiny-audio-UTT", "tiny-text-UTT"]
    assert saved["f1"] > 0.5, "the tiny data is easy; a working model learns it"
    args = yaml.safe_load(open(os.path.join(run_dir, "args.yaml")))
    assert args["model"] == "moe" and args["hidden_dim"] == 64


def test_same_seed_same_metrics(tiny_project, tmp_path):
    a = run_train(tiny_project, "--epochs", "3", "--run_dir", str(tmp_path / "a"))
    b = run_train(tiny_project, "--epochs", "3", "--run_dir", str(tmp_path / "b"))
    run_train(tiny_project, "--epochs", "3", "--run_dir", str(tmp_path / "c"), "--seed", "1")
    drop = lambda d: pd.read_csv(d / "metrics.csv").drop(columns="seconds")  # noqa: E731
    pd.testing.assert_frame_equal(drop(tmp_path / "a"), drop(tmp_path / "b"))
    assert a["f1"] == b["f1"] and a["loss"] == b["loss"]
    assert not drop(tmp_path / "a").equals(drop(tmp_path / "c"))


def test_auto_attention_and_cli_hyperparameters(tiny_project):
    summary = run_train(tiny_project, "--model", "auto_attention", "--epochs", "2", "--hidden_dim", "16", "--heads", "2")
    assert summary["model"] == "auto_attention"
    args = train.parse_args(tiny_project["argv"] + ["--fused_head", "false", "--feat", "['tiny-text-UTT']"])
    assert args.hparams.fused_head is False and args.feat == ["tiny-text-UTT"]


def test_early_stopping(tiny_project):
    summary = run_train(tiny_project, "--epochs", "30", "--patience", "2")
    assert summary["epochs_run"] == 30 or summary["epochs_run"] == summary["best_epoch"] + 2


def test_pretrained_init_checks_features(tiny_project, tmp_path):
    run_train(tiny_project, "--epochs", "2", "--save_model", "--run_dir", str(tmp_path / "stage1"))
    ckpt = str(tmp_path / "stage1" / "best.pth")
    stage2 = run_train(tiny_project, "--epochs", "1", "--model_pretrain", ckpt, "--run_dir", str(tmp_path / "stage2"))
    assert stage2["f1"] > 0
    with pytest.raises(UserError, match="feat_dims"):
        run_train(tiny_project, "--epochs", "1", "--model_pretrain", ckpt, "--feat", "tiny-text-UTT")


def test_pretrained_weights_of_another_shape_name_the_flags(tiny_project, tmp_path):
    run_train(tiny_project, "--epochs", "1", "--save_model", "--fused_dim", "0", "--run_dir", str(tmp_path / "stage1"))
    with pytest.raises(UserError, match=r"do not fit this model; it was trained with --fused_dim 0; pass them too"):
        run_train(tiny_project, "--epochs", "1", "--model_pretrain", str(tmp_path / "stage1" / "best.pth"),
                  "--run_dir", str(tmp_path / "stage2"))


def test_checkpoints_older_than_a_hyper_parameter_rebuild_what_they_trained():
    """A checkpoint written before ``fused_dim`` existed had a linear fused head: its ``legacy`` value."""
    from models import config_from_checkpoint, model_defaults

    assert model_defaults("moe")["fused_dim"] == 256
    assert config_from_checkpoint("moe", {"hidden_dim": 64}).fused_dim == 0
    assert config_from_checkpoint("moe", {"fused_dim": 128}).fused_dim == 128


def test_failed_run_keeps_the_previous_run_dir(tiny_project, tmp_path):
    run_train(tiny_project, "--epochs", "1")
    run_dir = tmp_path / "run"
    before = (run_dir / "summary.json").read_text()
    with pytest.raises(UserError):
        run_train(tiny_project, "--epochs", "1", "--dataset", "missing-split")
    assert (run_dir / "summary.json").read_text() == before
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".run")]


@pytest.mark.parametrize("argv, message", [
    (["--feat", "['no-such-feature']"], r"unknown feature 'no-such-feature'.*known: .*demo-clip-UTT"),
    (["--dataset", "no-such-split"], r"split file .*no-such-split.npy not found"),
    (["--model", "resnet"], r"unknown model 'resnet'; known models: .*auto_attention.*moe"),
    (["--emo_rule", "XYZ"], r"--emo_rule 'XYZ' is not in config.EMO_RULE"),
])
def test_bad_input_is_one_line_without_traceback(tmp_path, argv, message):
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "train.py", "--run_dir", str(run_dir), "--train_lst", str(tmp_path)] + argv,
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), proc.stderr
    assert not run_dir.exists()


def test_top_n_on_a_release_without_text_features(tmp_path, monkeypatch, capsys):
    """A release with audio and video features only: sweep, table, then --feat_topn with the default modalities
    (AVT) fuses the audio and video features and says, in one line, that there is no text row."""
    import shutil

    import eval_avg_performance
    from dataloader.registry import CONFIG_VARIABLE
    from stages import sweep
    from tests.conftest import make_tiny_project, write_project_config
    from toolkit.io import save_split

    project = make_tiny_project(tmp_path)
    shutil.rmtree(project["folders"].pop("tiny-text-UTT")[2])
    monkeypatch.setenv(CONFIG_VARIABLE, write_project_config(project, default_features=list(project["folders"])))
    info = lambda sl: {k: project[k][sl] for k in ("names", "emos", "vals")}  # noqa: E731
    save_split(os.path.join(project["train_lst"], "seed1.npy"), info(slice(0, 90)), info(slice(90, 120)))
    cache, unimodal = str(tmp_path / "cache"), str(tmp_path / "unimodal")
    sweep.main(["--seeds", "0 1", "--epochs", "3", "--train_lst", project["train_lst"], "--save_root", unimodal,
                "--no_estimate", "--", "--cache_dir", cache, "--no_plots"])
    eval_avg_performance.main(["--root", unimodal])
    table = os.path.join(unimodal, "unimodal_summary.csv")
    assert sorted(pd.read_csv(table)["modality"]) == ["A", "V"]
    capsys.readouterr()
    train.main(["--feat_topn", "2", "--topn_from", table, "--epochs", "3", "--train_lst", project["train_lst"],
                "--cache_dir", cache, "--run_dir", str(tmp_path / "fused"), "--no_progress", "--no_plots"])
    captured = capsys.readouterr()
    assert captured.err.count("note:") == 1 and "no single-feature rows of modality T" in captured.err
    assert "--topn_modalities AV" in captured.err and captured.out.splitlines()[-1].startswith("BEST:")
    summary = json.load(open(tmp_path / "fused" / "summary.json"))
    assert [f["name"] for f in summary["features"]] == ["tiny-audio-UTT", "tiny-video-UTT"]
    with pytest.raises(SystemExit) as refused:  # no requested modality has a row: an error that says what the table holds
        train.main(["--feat_topn", "2", "--topn_from", table, "--topn_modalities", "T", "--train_lst", project["train_lst"]])
    err = capsys.readouterr().err
    assert refused.value.code == 2 and err.count("\n") == 1 and table in err and "use --topn_modalities AV" in err
