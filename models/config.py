"""Model hyper-parameters as dataclasses (in the spirit of nanoGPT's ``GPTConfig``): defaults live here, in code.

Each field carries its one-line help and its rule in ``metadata``, so ``train.py`` builds the flags, their
``--help`` text and their checks from the config alone:

    help      what the value does (shown by ``--help``)
    min, max  the allowed range (inclusive); ``min_open`` / ``max_open`` exclude the bound itself
    divides   the name of a width field this one (a head count) must divide evenly
    search    the hyper-parameter search space of the field (``tune.py``): ``(low, high)`` a uniform range
              (integers for int fields), ``(low, high, "log")`` a log-uniform one, ``[a, b, ...]`` a choice;
              fields without it keep their value during a search

A model file subclasses ``ExpertConfig`` with its own fields (and may override defaults by redeclaring a
field), and its registered class sets ``config_class`` to it (see ``models/__init__.py``).
"""
import dataclasses
import math

from toolkit.errors import UserError, did_you_mean


def hparam(default, help, **rule):
    """A config field with its default, its ``--help`` line and its rule (min, max, min_open, max_open, divides,
    search). ``legacy``: the value that gives what the model did before the field existed, for checkpoints
    written then, when it differs from the default."""
    unknown = set(rule) - {"min", "max", "min_open", "max_open", "divides", "search", "legacy"}
    if unknown:
        raise TypeError(f"unknown rule {', '.join(sorted(unknown))} for a hyper-parameter")
    return dataclasses.field(default=default, metadata={"help": help, **rule})


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
    return list(dataclasses.fields(config_class))


def check_value(spec, value, where):
    """Refuse ``value`` for field ``spec`` when its type or range breaks the field's rule (UserError naming ``where``)."""
    kind = spec.type if isinstance(spec.type, type) else type(spec.default)
    ok_type = (isinstance(value, bool) if kind is bool else
               isinstance(value, int) and not isinstance(value, bool) if kind is int else
               isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) if kind is float else
               isinstance(value, kind))
    if not ok_type:
        raise UserError(f"{where}: {spec.name} must be {'a finite number' if kind is float else kind.__name__}, got {value!r}")
    rule = spec.metadata
    low, high = rule.get("min"), rule.get("max")
    too_low = low is not None and (value <= low if rule.get("min_open") else value < low)
    too_high = high is not None and (value >= high if rule.get("max_open") else value > high)
    if too_low or too_high:
        raise UserError(f"{where}: {spec.name} must be {describe_range(rule)}, got {value!r}")


def describe_range(rule):
    low, high = rule.get("min"), rule.get("max")
    lo = "" if low is None else f"{'(' if rule.get('min_open') else '['}{low}"
    hi = "" if high is None else f"{high}{')' if rule.get('max_open') else ']'}"
    if lo and hi:
        return f"in {lo}, {hi}"
    if lo:
        return f"{'>' if rule.get('min_open') else '>='} {low}"
    return f"{'<' if rule.get('max_open') else '<='} {high}" if hi else "any value"


def divisibility_errors(values, config_class):
    """[(width key, heads key)] of every head count in ``values`` that does not divide its width."""
    bad = []
    for spec in config_fields(config_class):
        width = spec.metadata.get("divides")
        if width and spec.name in values and width in values and values[width] % values[spec.name]:
            bad.append((width, spec.name))
    return bad


def make_config(config_class, values, where, strict=True):
    """``config_class`` with ``values`` over its defaults, each value checked against its field's rule.

    ``strict`` False (checkpoints written by an older or newer version) ignores keys the class does not
    have; missing keys always take the defaults."""
    names = {spec.name: spec for spec in config_fields(config_class)}
    unknown = [key for key in values if key not in names]
    if unknown and strict:
        hint = did_you_mean(unknown[0], names)
        hint = f"{hint} " if hint else ""
        raise UserError(f"{where}: unknown hyper-parameter {unknown[0]!r}; {hint}known: {', '.join(names)}")
    given = {key: value for key, value in values.items() if key in names}
    for key, value in given.items():
        check_value(names[key], value, where)
        if names[key].type is float:
            given[key] = float(value)  # a YAML or checkpoint ``1`` for a rate or weight
    values = {**dataclasses.asdict(config_class()), **given}
    bad = divisibility_errors(values, config_class)
    if bad:
        width, heads = bad[0]
        raise UserError(f"{where}: {width} {values[width]} is not divisible by {heads} {values[heads]}; "
                        "pick a width that is a multiple of the heads")
    return config_class(**given)
