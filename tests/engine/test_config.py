"""engine.TrainConfig, the one description of a run: flags and YAML load into it, a model's settings are nested
under it (so they never collide with training settings), precedence defaults < YAML < flags holds for a flag given
equal to its default, and a run directory records it so that loading gives an equal object."""
import dataclasses
import sys

import pytest
import yaml

import engine
import models
import train
from dataloader.registry import Registry
from engine import TrainConfig
from engine.config import load_run_config
from tests.bad_inputs.helpers import assert_one_line_error, run_main
from toolkit.errors import UserError
from tests.test_train_folds import write_folds

CLASHING = '''"""A model whose own settings are named like training settings (batch_size, lr)."""
import dataclasses

import torch

from models import register_model
from models.base import FeatureExpertModel
from models.hparams import ExpertConfig, hparam


@dataclasses.dataclass
class ClashConfig(ExpertConfig):
    batch_size: int = hparam(3, "frames pooled together inside the model (not the training batch)", min=1)
    lr: float = hparam(0.5, "a mixing weight inside the model (not the learning rate)", min=0, max=1)


@register_model("clash")
class Clash(FeatureExpertModel):
    config_class = ClashConfig

    def __init__(self, feat_dims, num_classes, cfg, feat_levels=None):
        super().__init__(feat_dims, num_classes, cfg, feat_levels)
        self.valence_head = torch.nn.Linear(cfg.hidden_dim, 1)

    def forward(self, feats, present=None):
        data, _ = self.presence(feats, present)
        hiddens, expert_logits = self.encode(feats)
        logits = torch.stack([expert_logits[n] for n in self.feat_names], dim=1).mean(dim=1) * self.cfg.lr
        pooled = torch.stack([hiddens[n] for n in self.feat_names], dim=1).mean(dim=1)
        return {"logits": logits, "expert_logits": expert_logits, "gate": None,
                "valence": self.valence_head(pooled).squeeze(-1), "present": data}
'''


@pytest.fixture
def clash_model(tmp_path, monkeypatch):
    folder = tmp_path / "clash_models"
    folder.mkdir()
    (folder / "clash.py").write_text(CLASHING)
    models.known_models()
    monkeypatch.setattr(models, "__path__", [*models.__path__, str(folder)])
    monkeypatch.setattr(models, "_scanned", False)
    yield "clash"
    models.MODEL_REGISTRY.pop("clash", None)
    sys.modules.pop("models.clash", None)


def test_a_model_setting_named_like_a_training_setting_trains(clash_model, tiny_project, tmp_path, capsys):
    argv = tiny_project["argv"] + ["--model", clash_model, "--epochs", "2", "--no_plots", "--batch_size", "16",
                                   "--hp.batch_size", "5", "--hp.lr", "0.25"]
    args = train.parse_args(argv)
    assert args.batch_size == 16 and args.hparams.batch_size == 5 and args.lr == 6e-3 and args.hparams.lr == 0.25
    code, out, err = run_main(train.main, argv, capsys)
    assert code == 0 and "BEST:" in out, err
    recorded = load_run_config(str(tmp_path / "run"))
    assert recorded.batch_size == 16 and recorded.hparams.batch_size == 5
    code, out, _ = run_main(train.main, ["--model", clash_model, "--help"], capsys)
    assert "--hp.batch_size" in out and "--batch_size" in out


def test_a_misspelled_setting_from_python_is_an_error():
    with pytest.raises(TypeError, match="epoch"):
        TrainConfig(epoch=3)
    cfg = TrainConfig()
    with pytest.raises(AttributeError):
        cfg.epoch = 3  # slots: no silent new attribute
    with pytest.raises(Exception, match="epoch"):
        cfg.replace(epoch=3)


def test_yaml_unknown_key_and_bad_value_are_one_line(tiny_project, tmp_path, capsys):
    for content, culprits in [("epoch: 3\n", ["epoch", "did you mean 'epochs'"]), ("epochs: many\n", ["epochs", "whole number"]),
                              ("hparams: {hiden_dim: 3}\n", ["hiden_dim", "did you mean 'hidden_dim'"])]:
        path = tmp_path / "bad.yaml"
        path.write_text(content)
        code, _, err = run_main(train.main, tiny_project["argv"] + ["--config", str(path)], capsys)
        assert_one_line_error(code, err, str(path), *culprits)


def test_a_flag_equal_to_its_default_still_beats_the_yaml(tiny_project, tmp_path):
    write_folds(tiny_project, 2)
    path = tmp_path / "folds.yaml"
    path.write_text(yaml.safe_dump({"folds": 2, "epochs": 2}))
    from_yaml = train.parse_args(tiny_project["argv"] + ["--config", str(path)])
    assert from_yaml.folds == 2
    for dataset in ("seed0", "seed1"):  # the default's value and another value behave alike
        args = train.parse_args(tiny_project["argv"] + ["--config", str(path), "--dataset", dataset])
        assert (args.dataset, args.folds, args.epochs) == (dataset, None, 2)
    path.write_text(yaml.safe_dump({"dataset": "seed1", "epochs": 2}))
    args = train.parse_args(tiny_project["argv"] + ["--config", str(path), "--folds", "2"])
    assert (args.dataset, args.folds) == ("seed0", 2)


def test_the_run_directory_records_the_resolved_config(tiny_project, tmp_path):
    cfg = TrainConfig(feat=["tiny-video-UTT", "tiny-text-UTT"], epochs=2, no_progress=True, no_plots=True,
                      train_lst=tiny_project["train_lst"], cache_dir=str(tmp_path / "cache"), run_dir=str(tmp_path / "api"),
                      model="auto_attention", hparams={"hidden_dim": 16, "heads": 2})
    result = engine.run(cfg, quiet=True)
    loaded = TrainConfig.load(tmp_path / "api" / "config.yaml")
    assert loaded == cfg.resolved(Registry.from_config())
    assert loaded.hparams.hidden_dim == 16 and type(loaded.hparams).__name__ == "AutoAttentionConfig"
    again = engine.run(dataclasses.replace(loaded, run_dir=str(tmp_path / "again")), quiet=True)
    assert again.summary["f1"] == result.summary["f1"]  # the recorded config reproduces the run


def test_another_models_config_class_is_refused(tiny_project):
    from models import model_config_class

    cfg = TrainConfig(model="moe", hparams=model_config_class("auto_attention")())
    with pytest.raises(UserError, match="AutoAttentionConfig"):
        cfg.resolved(Registry.from_config())


def test_a_split_name_may_hold_a_folder():
    """--dataset demo_clips/seed0 reads <train_lst>/demo_clips/seed0.npy, as it did before the run schema."""
    assert train.parse_config(["--dataset", "demo_clips/seed0"]).dataset == "demo_clips/seed0"
