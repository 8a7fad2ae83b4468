"""Model hyper-parameters as dataclasses (in the spirit of nanoGPT's ``GPTConfig``): defaults live here, in code.

Each field carries its one-line help and its rule in ``metadata`` (``toolkit.schema``: min, max, min_open,
max_open, divides, search, legacy), so ``train.py`` builds the flags, their ``--help`` text and their checks
from the config alone. ``search`` is the field's hyper-parameter search space (``tune.py``): ``(low, high)``
a uniform range (integers for int fields), ``(low, high, "log")`` a log-uniform one, ``[a, b, ...]`` a choice;
fields without it keep their value during a search.

A model file subclasses ``ExpertConfig`` with its own fields (and may override defaults by redeclaring a
field), and its registered class sets ``config_class`` to it (see ``models/__init__.py``). A run nests the
model's config under its own (``TrainConfig.hparams``), so a model field may share a name with a training field.
"""
import dataclasses

from toolkit.schema import build, check_value, describe_range, divisibility_errors, fields, setting  # noqa: F401 - re-exported


def hparam(default, help, **rule):
    """A config field with its default, its ``--help`` line and its rule (see ``toolkit.schema``). ``legacy``:
    the value that gives what the model did before the field existed, for checkpoints written then."""
    unknown = set(rule) - {"min", "max", "min_open", "max_open", "divides", "search", "legacy", "choices"}
    if unknown:
        raise TypeError(f"unknown rule {', '.join(sorted(unknown))} for a hyper-parameter")
    return setting(default, help, **rule)


def rate(default, help):
    """A probability in [0, 1): dropout rates."""
    return hparam(default, help, min=0, max=1, max_open=True)


def count(default, help, **rule):
    """A positive integer: widths, layers, heads."""
    return hparam(default, help, min=1, **rule)


@dataclasses.dataclass
class ExpertConfig:
    """Hyper-parameters every feature-expert model shares (``models.base.FeatureExpertModel``)."""

    hidden_dim: int = count(64, "width of every expert's hidden vector")
    expert_layers: int = count(1, "hidden layers per expert encoder")
    dropout: float = rate(0.3, "dropout inside experts and heads")
    input_dropout: float = rate(0.8, "dropout on the (standardised) input features: the strongest regulariser here")
    aux_weight: float = hparam(1.0, "weight of the mean per-expert auxiliary loss", min=0)
    frame_dim: int = count(64, "width of the transformer inside each frame-level (temporal) expert")
    frame_layers: int = count(1, "transformer layers of each frame-level (temporal) expert")
    frame_heads: int = count(4, "attention heads over the frames of one clip", divides="frame_dim")
    frame_input_dropout: float = rate(0.1, "dropout on the standardised frames (a few AU channels: keep it light)")
    expert_dropout: float = rate(0.0, "training only: drop each present expert of a clip from the fusion with this probability")


def config_fields(config_class):
    """The hyper-parameter fields of a config class, in declaration order (a redeclared field keeps its place)."""
    return fields(config_class)


def make_config(config_class, values, where, strict=True):
    """``config_class`` with ``values`` over its defaults, each value checked against its field's rule.

    ``strict`` False (checkpoints written by an older or newer version) ignores keys the class does not
    have; missing keys always take the defaults."""
    return build(config_class, values, where, strict, what="hyper-parameter")
