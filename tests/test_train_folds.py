"""train.py --folds K (every fold in one command) and --config FILE.yaml (flag values from a file)."""
import json
import os

import pandas as pd
import pytest
import yaml

import train
from engine import TrainConfig
from preprocess import mer2025_base
from tests.bad_inputs.helpers import assert_one_line_error, run_main, snapshot


def write_folds(project, k=3):
    """fold0..fold{k-1}.npy of the tiny project, written by mer2025_base.py from a label CSV."""
    csv = os.path.join(project["root"], "labels.csv")
    pd.DataFrame({"name": project["names"], "discrete": project["emos"], "valence": project["vals"]}).to_csv(csv, index=False)
    return mer2025_base.main(["--label_csv", csv, "--folds", str(k), "--save_root", project["train_lst"]])


def argv_with_run_dir(project, run_dir):
    argv = list(project["argv"])
    argv[argv.index("--run_dir") + 1] = str(run_dir)
    return argv


def test_folds_trains_each_fold_and_reports_mean_and_std(tiny_project, tmp_path, capsys):
    write_folds(tiny_project, 3)
    root = tmp_path / "folds"
    summary = train.run(train.parse_args(argv_with_run_dir(tiny_project, root) + ["--folds", "3", "--epochs", "2"]))
    out = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("BEST: ") for line in out) == 3
    assert out[-1].startswith(f"FOLDS: 3 folds, f-score {summary['mean_f1']:.4f} ± {summary['std_f1']:.4f}")
    fold_f1 = [json.load(open(root / f"fold{k}" / "summary.json"))["f1"] for k in range(3)]
    assert summary["fold_f1"] == fold_f1
    assert summary["mean_f1"] == pytest.approx(sum(fold_f1) / 3)
    assert json.load(open(root / "folds_summary.json")) == summary
    datasets = [yaml.safe_load(open(root / f"fold{k}" / "args.yaml"))["dataset"] for k in range(3)]
    assert datasets == ["fold0", "fold1", "fold2"]
    n_valid = [json.load(open(root / f"fold{k}" / "summary.json"))["n_valid"] for k in range(3)]
    assert n_valid == [40, 40, 40], "each fold holds out a third of the 120 clips"


def test_config_file_sets_flags_and_the_command_line_wins(tiny_project, tmp_path):
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump({"model": "auto_attention", "hidden_dim": 32, "heads": 2, "lr": 1e-3, "model_pretrain": None,
                                    "feat": ["tiny-text-UTT", "tiny-audio-UTT"], "no_plots": True, "epochs": 2}))
    args = train.parse_args(tiny_project["argv"] + ["--config", str(path), "--epochs", "3"])
    assert (args.model, args.hparams.hidden_dim, args.hparams.heads, args.lr, args.no_plots) == ("auto_attention", 32, 2, 1e-3, True)
    assert args.feat == ["tiny-text-UTT", "tiny-audio-UTT"] and args.epochs == 3
    train.run(args)
    recorded = yaml.safe_load(open(tmp_path / "run" / "args.yaml"))
    assert recorded["hidden_dim"] == 32 and recorded["hparams"]["hidden_dim"] == 32
    assert TrainConfig.load(tmp_path / "run" / "config.yaml") == args.replace(run_dir=str(tmp_path / "run"))


def test_config_with_folds_matches_the_same_flags(tiny_project, tmp_path):
    write_folds(tiny_project, 2)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"folds": 2, "epochs": 2, "lr": 0.01, "no_plots": True}))
    a = train.run(train.parse_args(argv_with_run_dir(tiny_project, tmp_path / "a") + ["--config", str(path)]))
    b = train.run(train.parse_args(argv_with_run_dir(tiny_project, tmp_path / "b") + ["--folds", "2", "--epochs", "2", "--lr", "0.01"]))
    assert a["fold_f1"] == b["fold_f1"]


@pytest.mark.parametrize("content, culprits", [
    ("hiden_dim: 32\n", ["hiden_dim", "did you mean 'hidden_dim'"]),
    ("lr: -1\n", ["lr must be > 0", "-1"]),
    ("- lr\n", ["must map setting names"]),
    ("lr: [1\n", ["not valid YAML"]),
    ("no_plots: maybe\n", ["no_plots", "true or false"]),
])
def test_bad_config_is_one_line_naming_the_file(tiny_project, tmp_path, capsys, content, culprits):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    before = snapshot(tiny_project["root"])
    code, _, err = run_main(train.main, tiny_project["argv"] + ["--config", str(path)], capsys)
    assert_one_line_error(code, err, str(path), *culprits)
    assert snapshot(tiny_project["root"]) == before


def test_missing_config_file_and_missing_folds(tiny_project, tmp_path, capsys):
    code, _, err = run_main(train.main, tiny_project["argv"] + ["--config", str(tmp_path / "none.yaml")], capsys)
    assert_one_line_error(code, err, "none.yaml", "no such file")
    before = snapshot(tiny_project["root"])
    code, _, err = run_main(train.main, tiny_project["argv"] + ["--folds", "3"], capsys)
    assert_one_line_error(code, err, "fold0.npy", "mer2025_base.py", "--folds 3")
    assert snapshot(tiny_project["root"]) == before
    code, _, err = run_main(train.main, tiny_project["argv"] + ["--folds", "3", "--dataset", "seed0_pl"], capsys)
    assert_one_line_error(code, err, "--folds 3", "--dataset seed0_pl")
