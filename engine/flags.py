"""Command lines → TrainConfig: the flags are generated from the TrainConfig fields and the chosen model's config,
a --config YAML file is read under them. Used by train.py and by every script that passes train.py flags on
(the sweep's and tune.py's extra flags after --)."""
import argparse
import sys

from toolkit.errors import ArgumentParser, UserError

TRAIN_DESCRIPTION = "Train and validate a feature-expert model."


MODEL_FLAG_PREFIX = "hp."  # a model setting named like a training setting gets the flag --hp.NAME


def model_flag_prefix(name):
    from engine.config import TRAIN_FIELDS

    return MODEL_FLAG_PREFIX if name in TRAIN_FIELDS or name == "config" else ""


def build_parser(model="moe", description=TRAIN_DESCRIPTION):
    """The flags of TrainConfig, by section, plus one per setting of ``model``'s config."""
    from engine.config import TrainConfig, sections
    from models import model_config_class, model_defaults, model_hparams
    from toolkit.schema import add_flags

    p = ArgumentParser(description=description)
    p.add_argument("--config", default=argparse.SUPPRESS, metavar="YAML",
                   help="settings from a YAML file (TrainConfig fields; the model's under hparams:, or flat); flags on "
                        "the command line win (default: none)")
    for title, names in sections():
        add_flags(p.add_argument_group(title), TrainConfig, only=names)
    config_class = model_config_class(model)
    group = p.add_argument_group(f"hyper-parameters of '{model}' ({config_class.__module__}.{config_class.__name__}; "
                                 "pick another with --model NAME --help)")
    defaults = model_defaults(model)
    for spec in model_hparams(model):
        add_flags(group, config_class, prefix=model_flag_prefix(spec.name), switches=False, only=[spec.name], defaults=defaults)
    return p


def read_config_file(path):
    """The raw settings of a --config YAML file: a mapping, checked as a TrainConfig (errors name the file)."""
    from engine.config import from_dict
    from toolkit.io import read_yaml

    values = read_yaml(path, "--config", "write one 'setting: value' per line (train.py --help lists them)")
    if values is None:
        values = {}
    if not isinstance(values, dict) or not all(isinstance(key, str) for key in values):
        raise UserError(f"--config {path} must map setting names to values, e.g. 'lr: 0.001'")
    from_dict(values, f"--config {path}")  # unknown keys and bad values are reported with the file
    return values


def parse_config(argv=None, description=TRAIN_DESCRIPTION, under=None):
    """The TrainConfig of a command line (not yet resolved against the registry). ``under``: settings the
    command line's --config file and flags override (a caller's own defaults, e.g. the sweep's)."""
    from engine.config import from_dict

    return from_dict(parse_values(argv, description, under), "train.py")


def parse_values(argv=None, description=TRAIN_DESCRIPTION, under=None):
    """The settings a command line gives, over ``under``: {TrainConfig field: value, "hparams": {...}}. Two
    passes: the chosen --model decides which model flags exist (and --help shows them)."""
    from engine.config import TRAIN_FIELDS, merge_sources, split_values

    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model", default=None)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    values = read_config_file(known.config) if known.config else {}
    model = known.model or values.get("model") or (under or {}).get("model") or "moe"
    given = vars(build_parser(model, description).parse_args(argv))
    given.pop("config", None)
    flags = {k: v for k, v in given.items() if k in TRAIN_FIELDS}
    flags["hparams"] = {k.removeprefix(MODEL_FLAG_PREFIX): v for k, v in given.items() if k not in TRAIN_FIELDS}
    train_values, model_values = split_values(values, model) if values else ({}, {})
    merged = merge_sources(dict(under or {}), {**train_values, "hparams": model_values}, flags)
    if "model" in flags and flags["model"] != values.get("model", flags["model"]):
        merged["hparams"] = flags["hparams"]  # another model than the file's: the file's model settings do not apply
    return merged
