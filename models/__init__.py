"""Model registry: ``get_model(name, args)`` builds a registered model by name (as in timm's create_model).

A model is one file in this package: a config dataclass extending ``models.hparams.ExpertConfig`` (the
hyper-parameters with their defaults, help lines and rules) and a class decorated with
``@register_model("name")`` whose ``config_class`` is that dataclass. Every module of the package is
imported on the first use of the registry, so a new file needs no other edit: ``train.py`` shows its
hyper-parameters as flags and the contract tests (tests/models/test_contract.py) check it.

``models/hparams.yaml`` may override the code defaults per model (a section per model name, keys as in
its config); it is empty unless someone tunes. Checkpoints keep the hyper-parameters of their run, so the
file never changes how a saved model is rebuilt.
"""
import dataclasses
import os
import sys

from models.hparams import ExpertConfig, config_fields, make_config
from toolkit.errors import UserError
from toolkit.plugins import import_submodules, register

MODEL_REGISTRY = {}
HPARAMS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hparams.yaml")
OLD_HPARAMS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model-tune.yaml")  # its name before
_scanned = False
_noted = set()


def register_model(name):
    """Class decorator: register a model under ``name``; the class must name its config dataclass in ``config_class``."""

    def add(cls):
        config_class = getattr(cls, "config_class", None)
        if not (isinstance(config_class, type) and issubclass(config_class, ExpertConfig) and dataclasses.is_dataclass(config_class)):
            raise TypeError(f"model {name!r} ({cls.__qualname__}) needs config_class: a dataclass extending models.hparams.ExpertConfig")
        undocumented = [spec.name for spec in config_fields(config_class) if not spec.metadata.get("help")]
        if undocumented:
            raise TypeError(f"model {name!r}: hyper-parameters {', '.join(undocumented)} need a help line (models.hparams.hparam)")
        return register(MODEL_REGISTRY, name, cls, "model")

    return add


def _import_all():
    """Import every module of this package once, so each ``@register_model`` has run (no hand-kept list)."""
    global _scanned
    if _scanned:
        return
    import_submodules(__name__, __path__)
    _scanned = True


def known_models():
    _import_all()
    return sorted(MODEL_REGISTRY)


def check_model_name(name):
    if name not in known_models():
        raise UserError(f"unknown model '{name}'; known models: {', '.join(known_models())}")


def model_class(name):
    check_model_name(name)
    return MODEL_REGISTRY[name]


def model_config_class(name):
    return model_class(name).config_class


def hparams_file():
    """HPARAMS_FILE, or a user's file under the old name (model-tune.yaml) when only that one exists: it is read,
    with a one-line note (once) to rename it. Both present is refused, so no override is silently dropped."""
    if not os.path.exists(OLD_HPARAMS_FILE):
        return HPARAMS_FILE
    if os.path.exists(HPARAMS_FILE):
        raise UserError(f"{OLD_HPARAMS_FILE} is the old name of {HPARAMS_FILE}: move its sections into "
                        f"{os.path.basename(HPARAMS_FILE)} and delete it")
    if OLD_HPARAMS_FILE not in _noted:
        _noted.add(OLD_HPARAMS_FILE)
        print(f"note: reading {OLD_HPARAMS_FILE}; it is now named {os.path.basename(HPARAMS_FILE)}: rename it", file=sys.stderr)
    return OLD_HPARAMS_FILE


def hparams_overrides(name):
    """Model ``name``'s section of models/hparams.yaml ({} when it has none); a malformed file is a UserError."""
    from toolkit.io import read_yaml

    path = hparams_file()
    overrides = read_yaml(path, "model defaults", "fix or empty it", missing_ok=True) or {}
    if not isinstance(overrides, dict):
        raise UserError(f"{path} must map model names to {{hyper-parameter: value}}; it holds a {type(overrides).__name__}")
    unknown = [key for key in overrides if key not in known_models()]
    if unknown:
        raise UserError(f"{path}: unknown model {unknown[0]!r}; known models: {', '.join(known_models())}")
    section = overrides.get(name) or {}
    if not isinstance(section, dict):
        raise UserError(f"{path}: section {name!r} must map hyper-parameters to values, got {section!r}")
    return section


def model_defaults(name):
    """{hyper-parameter: default} of model ``name``: its config's code defaults with models/hparams.yaml's overrides."""
    config_class = model_config_class(name)
    return dataclasses.asdict(make_config(config_class, hparams_overrides(name), f"{hparams_file()} [{name}]"))


def model_hparams(name):
    """The dataclass fields of model ``name``'s config (name, type, default, metadata help and rule)."""
    return config_fields(model_config_class(name))


def config_from_checkpoint(name, hparams):
    """Model ``name``'s config from a checkpoint's ``hparams``: keys the config no longer has are ignored and
    keys added since the checkpoint was written take their ``legacy`` value where the field has one (what the
    model did before the field existed), else the code default."""
    hparams = dict(hparams or {})
    legacy = {spec.name: spec.metadata["legacy"] for spec in model_hparams(name)
              if "legacy" in spec.metadata and spec.name not in hparams}
    return make_config(model_config_class(name), {**legacy, **hparams}, f"checkpoint hparams of '{name}'", strict=False)


def create_model(name, feat_dims, num_classes, cfg=None, feat_levels=None):
    """Build model ``name`` from its config ``cfg`` (default: model_defaults), ``feat_dims`` {feature: dim} and
    ``feat_levels`` {feature: "utt"|"frm"} (default: all utterance level)."""
    cls = model_class(name)
    if cfg is None:
        cfg = cls.config_class(**model_defaults(name))
    return cls(dict(feat_dims), num_classes, cfg, feat_levels=dict(feat_levels or {}))


def get_model(name, args):
    """Build model ``name``. ``args`` needs feat_dims {feature: dim} and num_classes; its attributes named like
    the model's hyper-parameters set them (others take model_defaults); optional feat_levels."""
    defaults = model_defaults(name)
    values = {key: getattr(args, key, default) for key, default in defaults.items()}
    cfg = make_config(model_config_class(name), values, f"model '{name}'")
    return create_model(name, args.feat_dims, args.num_classes, cfg, getattr(args, "feat_levels", None))
