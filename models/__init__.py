"""Model registry: ``get_model(name, args)`` builds a registered model by name (as in timm's create_model).

Hyper-parameter defaults live in ``models/model-tune.yaml``, one section per model; ``train.py`` exposes
every key of the chosen model's section as a command-line flag.
"""
import os

import yaml

from toolkit.errors import UserError

MODEL_REGISTRY = {}
TUNE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model-tune.yaml")


def register_model(name):
    def add(cls):
        MODEL_REGISTRY[name] = cls
        return cls

    return add


def known_models():
    _import_all()
    return sorted(MODEL_REGISTRY)


def _import_all():
    from models import auto_attention, moe  # noqa: F401  (registration side effect)


def model_defaults(name):
    """The hyper-parameter defaults of model ``name`` from model-tune.yaml."""
    with open(TUNE_FILE, encoding="utf-8") as f:
        tune = yaml.safe_load(f) or {}
    check_model_name(name)
    return dict(tune.get(name) or {})


def hparam_help():
    """{key: its comment in model-tune.yaml} (the first comment found for a key, from any section)."""
    notes = {}
    with open(TUNE_FILE, encoding="utf-8") as f:
        for line in f:
            key, _, rest = line.strip().partition(":")
            if line.startswith(" ") and "#" in rest:
                notes.setdefault(key, rest.split("#", 1)[1].strip())
    return notes


def check_model_name(name):
    if name not in known_models():
        raise UserError(f"unknown model '{name}'; known models: {', '.join(known_models())}")


def get_model(name, args):
    """Build model ``name``. ``args`` needs feat_dims {feature: dim}, num_classes and the model's hyper-parameters;
    optional feat_levels {feature: "utt"|"frm"} (default: all utterance level)."""
    check_model_name(name)
    hparams = {key: getattr(args, key) for key in model_defaults(name)}
    levels = dict(getattr(args, "feat_levels", None) or {})
    return MODEL_REGISTRY[name](feat_dims=dict(args.feat_dims), num_classes=args.num_classes, feat_levels=levels, **hparams)
