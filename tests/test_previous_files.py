"""Files users already have, written by the version before TrainConfig and the feature registry, still load:
split dicts, run directories (args.yaml, best.pth), tune.py's best.yaml and a config.py of that form."""
import os
import shutil

import numpy as np
import torch

import train
from dataloader.registry import Registry
from engine.config import load_run_config
from inference.predictor import load_run, predict
from tests.conftest import REPO
from toolkit.io import TRAIN_KEY, VALID_KEY, load_split

PREVIOUS = os.path.join(REPO, "tests", "fixtures", "previous")


def copy_fixtures(tmp_path):
    root = tmp_path / "previous"
    shutil.copytree(PREVIOUS, root)
    return root


def test_a_config_py_of_the_previous_form_reads_into_a_registry(tmp_path):
    root = copy_fixtures(tmp_path)
    registry = Registry.from_config(str(root / "config.py"))
    assert sorted(registry.features) == ["tiny-audio-UTT", "tiny-text-UTT", "tiny-video-UTT"]
    assert registry.features["tiny-video-UTT"].folder == str(root / "features" / "tiny-video-UTT")
    assert registry.default_features == ("tiny-video-UTT", "tiny-audio-UTT", "tiny-text-UTT")


def test_split_files_and_run_directories_still_load_and_predict(tmp_path):
    root = copy_fixtures(tmp_path)
    split = load_split(str(root / "train_lst" / "seed0.npy"))
    assert len(split[TRAIN_KEY]["names"]) == 28 and len(split[VALID_KEY]["names"]) == 12
    model, meta = load_run(str(root / "run"), torch.device("cpu"))
    assert meta["model"] == "auto_attention" and model.cfg.hidden_dim == 16
    out = predict(model, meta, split[VALID_KEY]["names"], "cpu", Registry.from_config(str(root / "config.py")), cache_dir="none")
    saved = np.load(root / "run" / "best_valid_results.npy", allow_pickle=True).item()
    np.testing.assert_allclose(out["probs"], saved["eval_emoprobs"], atol=1e-5)
    cfg = load_run_config(str(root / "run"))  # a run without config.yaml: read from its args.yaml
    assert (cfg.model, cfg.hparams.hidden_dim, cfg.hparams.heads, cfg.epochs) == ("auto_attention", 16, 2, 2)


def test_a_previous_best_yaml_still_configures_train_py(tmp_path):
    root = copy_fixtures(tmp_path)
    args = train.parse_config(["--config", str(root / "best.yaml")])
    assert (args.model, args.folds, args.lr, args.batch_size) == ("moe", 2, 0.004, 64)
    assert (args.hparams.hidden_dim, args.hparams.dropout, args.hparams.input_dropout) == (32, 0.2, 0.5)
    assert args.feat == ["tiny-video-UTT", "tiny-audio-UTT"]
