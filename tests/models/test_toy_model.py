"""Adding a model takes one file and no other edit: a toy model written into a folder on the ``models``
package path is found by the registry, gets its train.py flags, keeps the model contract, trains and is
rebuilt from its checkpoint."""
import sys

import pytest
import torch

import models
import train
from tests.bad_inputs.helpers import assert_one_line_error, run_main
from tests.models.test_contract import CONTRACT, run_check

TOY = '''"""Toy model: the mean of the present experts' logits, divided by a temperature."""
import dataclasses

import torch
import torch.nn as nn

from models import register_model
from models.base import FeatureExpertModel
from models.hparams import ExpertConfig, hparam


@dataclasses.dataclass
class ToyMeanConfig(ExpertConfig):
    temperature: float = hparam(2.0, "divide the mean expert logits by this temperature", min=0, min_open=True)


@register_model("toy_mean")
class ToyMean(FeatureExpertModel):
    config_class = ToyMeanConfig

    def __init__(self, feat_dims, num_classes, cfg, feat_levels=None):
        super().__init__(feat_dims, num_classes, cfg, feat_levels)
        self.valence_head = nn.Linear(cfg.hidden_dim, 1)

    def forward(self, feats, present=None):
        data, fusion = self.presence(feats, present)
        hiddens, expert_logits = self.encode(feats)
        logits = torch.stack([expert_logits[name] for name in self.feat_names], dim=1)  # (B, E, K)
        weights = torch.ones(logits.shape[:2], device=logits.device) if fusion is None else fusion.float()
        weights = weights / weights.sum(dim=1, keepdim=True)
        pooled = (torch.stack([hiddens[name] for name in self.feat_names], dim=1) * weights.unsqueeze(-1)).sum(dim=1)
        return {
            "logits": (logits * weights.unsqueeze(-1)).sum(dim=1) / self.cfg.temperature,
            "expert_logits": expert_logits,
            "gate": weights,
            "valence": self.valence_head(pooled).squeeze(-1),
            "present": data,
        }
'''


@pytest.fixture
def toy_model(tmp_path, monkeypatch):
    """The toy model file in a folder of its own, added to the models package path (removed afterwards)."""
    folder = tmp_path / "more_models"
    folder.mkdir()
    (folder / "toy_mean.py").write_text(TOY)
    shipped = models.known_models()
    assert "toy_mean" not in shipped
    monkeypatch.setattr(models, "__path__", [*models.__path__, str(folder)])
    monkeypatch.setattr(models, "_scanned", False)  # as in a fresh process, where the registry scans on first use
    yield "toy_mean"
    models.MODEL_REGISTRY.pop("toy_mean", None)
    sys.modules.pop("models.toy_mean", None)


def test_the_registry_defaults_and_flags_pick_up_a_new_model_file(toy_model, capsys):
    assert toy_model in models.known_models()
    defaults = models.model_defaults(toy_model)
    assert defaults["temperature"] == 2.0 and defaults["hidden_dim"] == 64 and list(defaults)[-1] == "temperature"
    args = train.parse_config(["--model", toy_model, "--temperature", "0.5", "--hidden_dim", "8"])
    assert args.hparams.temperature == 0.5 and args.hparams.hidden_dim == 8
    code, out, _ = run_main(train.main, ["--model", toy_model, "--help"], capsys)
    assert code == 0 and "--temperature" in out and "divide the mean expert logits" in " ".join(out.split())
    code, _, err = run_main(train.main, ["--model", toy_model, "--temperature", "0"], capsys)
    assert_one_line_error(code, err, "--temperature", "> 0")


@pytest.mark.parametrize("check", CONTRACT, ids=[c.__name__ for c in CONTRACT])
def test_a_new_model_file_is_checked_by_the_contract(toy_model, check, tmp_path):
    run_check(check, toy_model, tmp_path)


def test_a_new_model_trains_and_is_rebuilt_from_its_checkpoint(toy_model, tiny_project, tmp_path, capsys):
    from inference.predictor import load_run

    summary = train.run(train.parse_args(tiny_project["argv"] + ["--model", toy_model, "--epochs", "2", "--no_plots",
                                                                 "--save_model", "--temperature", "0.5"]))
    assert summary["model"] == toy_model
    model, meta = load_run(str(tmp_path / "run"), torch.device("cpu"))
    assert type(model).__name__ == "ToyMean" and model.cfg.temperature == 0.5 and meta["model"] == toy_model
