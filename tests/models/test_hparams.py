"""Model configs: defaults in code, models/hparams.yaml overrides, flags and help from the fields, checkpoints
of older or newer versions."""
import argparse
import dataclasses

import pytest
import torch

import models
import train
from engine.flags import build_parser, model_flag_prefix
from models import config_from_checkpoint, create_model, known_models, model_config_class, model_defaults, model_hparams
from models.hparams import ExpertConfig, hparam
from toolkit.errors import UserError
from toolkit.schema import flag_type


@pytest.mark.parametrize("name", known_models())
def test_defaults_are_the_code_defaults_when_hparams_yaml_overrides_nothing(name):
    assert model_defaults(name) == dataclasses.asdict(model_config_class(name)())


def test_model_defaults_keep_the_tuned_values_of_both_models():
    moe, attention = model_defaults("moe"), model_defaults("auto_attention")
    assert (moe["hidden_dim"], moe["input_dropout"], moe["fused_head"]) == (64, 0.8, True)
    assert (attention["hidden_dim"], attention["input_dropout"], attention["heads"], attention["attn_layers"]) == (128, 0.7, 4, 1)
    assert "fused_head" not in attention and "heads" not in moe


def use_hparams_files(monkeypatch, folder):
    """models/hparams.yaml and its old name (model-tune.yaml) in ``folder``; returns their paths."""
    new, old = folder / "hparams.yaml", folder / "model-tune.yaml"
    monkeypatch.setattr(models, "HPARAMS_FILE", str(new))
    monkeypatch.setattr(models, "OLD_HPARAMS_FILE", str(old))
    monkeypatch.setattr(models, "_noted", set())
    return new, old


def test_hparams_yaml_overrides_the_code_defaults_and_a_flag_wins(tmp_path, monkeypatch):
    tune, _ = use_hparams_files(monkeypatch, tmp_path)
    tune.write_text("moe:\n  hidden_dim: 32\n  aux_weight: 2\n")
    defaults = model_defaults("moe")
    assert defaults["hidden_dim"] == 32 and defaults["aux_weight"] == 2.0 and type(defaults["aux_weight"]) is float
    assert model_defaults("auto_attention")["hidden_dim"] == 128
    assert train.parse_config([]).hparams.hidden_dim == 32 and train.parse_config(["--hidden_dim", "16"]).hparams.hidden_dim == 16
    assert create_model("moe", {"a-UTT": 4}, 6).cfg.hidden_dim == 32


def test_a_users_model_tune_yaml_is_read_with_a_note_to_rename_it(tmp_path, monkeypatch, capsys):
    new, old = use_hparams_files(monkeypatch, tmp_path)
    old.write_text("moe:\n  hidden_dim: 32\n")
    assert model_defaults("moe")["hidden_dim"] == 32 and model_defaults("moe")["hidden_dim"] == 32
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"note: reading {old}; it is now named hparams.yaml: rename it"]  # once per process
    old.rename(new)
    assert model_defaults("moe")["hidden_dim"] == 32 and capsys.readouterr().err == ""


def test_model_tune_yaml_beside_hparams_yaml_is_refused(tmp_path, monkeypatch):
    new, old = use_hparams_files(monkeypatch, tmp_path)
    new.write_text("")
    old.write_text("moe:\n  hidden_dim: 32\n")
    with pytest.raises(UserError, match="model-tune.yaml is the old name of .*hparams.yaml: move its sections into hparams.yaml"):
        model_defaults("moe")


def test_models_config_is_the_old_name_of_models_hparams():
    from models import config, hparams

    public = [name for name in vars(hparams) if not name.startswith("_")]
    assert public and all(getattr(config, name) is getattr(hparams, name) for name in public)


@pytest.mark.parametrize("name", known_models())
def test_help_shows_every_hyper_parameter_with_its_help_and_default(name):
    text = " ".join(build_parser(name).format_help().split())
    defaults = model_defaults(name)
    for spec in model_hparams(name):
        metavar = "{true,false}" if spec.type is bool else spec.name.upper()
        flag = f"--{model_flag_prefix(spec.name)}{spec.name}"
        assert f"{flag} {metavar} {spec.metadata['help']} (default: {defaults[spec.name]})" in text


@pytest.mark.parametrize("name", known_models())
def test_flag_types_follow_each_fields_rule(name):
    for spec in model_hparams(name):
        parse = flag_type(spec)
        assert parse(str(spec.default).lower()) == spec.default
        rule = spec.metadata
        if "min" in rule:
            with pytest.raises(argparse.ArgumentTypeError):
                parse(str(rule["min"] - (0 if rule.get("min_open") else 1)))
        if "max" in rule:
            with pytest.raises(argparse.ArgumentTypeError):
                parse(str(rule["max"] + (0 if rule.get("max_open") else 1)))
        if spec.type is not bool:
            with pytest.raises(argparse.ArgumentTypeError):
                parse("nan")


def test_a_checkpoint_config_ignores_unknown_keys_and_fills_new_ones():
    old = {"hidden_dim": 16, "dropout": 0.1, "retired_knob": 3}  # no fused_head, expert_dropout, ...: written before they existed
    cfg = config_from_checkpoint("moe", old)
    assert (cfg.hidden_dim, cfg.dropout, cfg.fused_head, cfg.expert_dropout) == (16, 0.1, True, 0.0)
    assert not hasattr(cfg, "retired_knob")


def test_load_run_rebuilds_an_older_checkpoint(tmp_path):
    from inference.predictor import load_run
    from toolkit.runs import ARGS_FILE, CHECKPOINT_FILE, load_checkpoint, save_checkpoint

    cfg = model_config_class("auto_attention")(hidden_dim=16, heads=2)
    torch.manual_seed(0)
    model = create_model("auto_attention", {"a-UTT": 5, "b-UTT": 3}, 6, cfg).eval()
    hparams = dataclasses.asdict(cfg)
    del hparams["expert_dropout"]
    hparams["retired_knob"] = True
    meta = {"model": "auto_attention", "feat_dims": {"a-UTT": 5, "b-UTT": 3}, "classes": list("abcdef"), "hparams": hparams}
    (tmp_path / ARGS_FILE).write_text("{}\n")
    save_checkpoint(str(tmp_path / CHECKPOINT_FILE), model, meta)  # no feat_levels either: an old checkpoint
    assert "feat_levels" not in torch.load(str(tmp_path / CHECKPOINT_FILE), weights_only=True)  # the file holds none
    assert load_checkpoint(str(tmp_path / CHECKPOINT_FILE))["feat_levels"] == {"a-UTT": "utt", "b-UTT": "utt"}  # patched on load
    loaded, _ = load_run(str(tmp_path), torch.device("cpu"))
    assert loaded.cfg == cfg
    x = {"a-UTT": torch.randn(3, 5), "b-UTT": torch.randn(3, 3)}
    with torch.no_grad():
        assert torch.equal(model(x)["logits"], loaded(x)["logits"])


def test_register_model_refuses_a_class_without_a_documented_config():
    class NoConfig(torch.nn.Module):
        pass

    with pytest.raises(TypeError, match="config_class"):
        models.register_model("no_config")(NoConfig)

    @dataclasses.dataclass
    class Undocumented(ExpertConfig):
        knob: int = 3

    class WithUndocumented(torch.nn.Module):
        config_class = Undocumented

    with pytest.raises(TypeError, match="knob"):
        models.register_model("undocumented")(WithUndocumented)
    assert "no_config" not in known_models() and "undocumented" not in known_models()


def test_a_name_taken_by_another_class_is_refused():
    @dataclasses.dataclass
    class Other(ExpertConfig):
        extra: int = hparam(1, "an extra knob", min=1)

    class Impostor(torch.nn.Module):
        config_class = Other

    with pytest.raises(ValueError, match="moe"):
        models.register_model("moe")(Impostor)
    assert models.model_class("moe").__name__ == "MoE"


def test_make_config_checks_types_ranges_and_heads():
    from models.hparams import make_config

    config = model_config_class("auto_attention")
    with pytest.raises(UserError, match="where: hidden_dim must be a whole number, got 1.5"):
        make_config(config, {"hidden_dim": 1.5}, "where")
    with pytest.raises(UserError, match=r"dropout must be in \[0, 1\), got 1"):
        make_config(config, {"dropout": 1}, "where")
    with pytest.raises(UserError, match="--hidden_dim 30 is not divisible by --heads 4"):
        make_config(config, {"hidden_dim": 30}, "where")
    with pytest.raises(UserError, match="did you mean 'heads'"):
        make_config(config, {"haeds": 2}, "where")
