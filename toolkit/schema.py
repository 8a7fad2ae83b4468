"""Settings as dataclasses: one description of a value (type, default, help, rule) that gives the flags, the
``--help`` text, the YAML loading and the checks, for a run (``engine.config.TrainConfig``) and for every model
(``models.hparams.ExpertConfig`` and its subclasses).

A field is declared with ``setting(default, help, **rule)``; the rule keys are

    min, max   the allowed range (inclusive); ``min_open`` / ``max_open`` exclude the bound itself
    choices    the allowed values
    divides    the name of a width field this one (a head count) must divide evenly
    search     the hyper-parameter search space of the field (tune.py): ``(low, high)`` a uniform range (integers
               for int fields), ``(low, high, "log")`` a log-uniform one, ``[a, b, ...]`` a choice
    legacy     the value that gives what a model did before the field existed (old checkpoints)
    parse      a function from the flag's text to the value (e.g. a feature list); the value is then checked
    flag       False: no command-line flag (a value only YAML files and Python callers set)

Types come from the annotations: ``bool``, ``int``, ``float``, ``str``, ``X | None`` and ``list[str]``.
"""
import argparse
import dataclasses
import math
import types
import typing

from toolkit.errors import UserError, did_you_mean

RULE_KEYS = {"min", "max", "min_open", "max_open", "choices", "divides", "search", "legacy", "parse", "flag"}


def setting(default, help, **rule):
    """A dataclass field with its default, its ``--help`` line and its rule (see the module docstring)."""
    unknown = set(rule) - RULE_KEYS
    if unknown:
        raise TypeError(f"unknown rule {', '.join(sorted(unknown))} for a setting")
    if isinstance(default, list):
        value = list(default)
        return dataclasses.field(default_factory=lambda: list(value), metadata={"help": help, **rule})
    return dataclasses.field(default=default, metadata={"help": help, **rule})


def fields(cls):
    """The settings of a dataclass, in declaration order (a redeclared field keeps its place)."""
    return [f for f in dataclasses.fields(cls) if f.init]


def base_type(spec):
    """(type, optional) of a field: ``int | None`` → (int, True); ``list[str]`` → (list, False)."""
    return _unwrap(spec.type)


def _unwrap(kind):
    if isinstance(kind, str):  # a string annotation: only the plain names are used in this project
        kind = {"int": int, "float": float, "str": str, "bool": bool}.get(kind, object)
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        inner = [a for a in typing.get_args(kind) if a is not type(None)]
        return _unwrap(inner[0])[0], True
    if typing.get_origin(kind) is list:
        return list, False
    return kind, False


def _type_ok(kind, value):
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is list:
        return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    return isinstance(value, kind) if isinstance(kind, type) else True


def _type_name(kind):
    return {float: "a finite number", int: "a whole number", bool: "true or false", str: "a text",
            list: "a list of names"}.get(kind, getattr(kind, "__name__", str(kind)))


def check_value(spec, value, where):
    """Refuse ``value`` for field ``spec`` when its type, range or choices break the field's rule (a UserError
    naming ``where`` and the key)."""
    kind, optional = base_type(spec)
    if value is None and optional:
        return
    if not _type_ok(kind, value):
        raise UserError(f"{where}: {spec.name} must be {_type_name(kind)}{' or null' if optional else ''}, got {value!r}")
    rule = spec.metadata
    if "choices" in rule and value not in rule["choices"]:
        raise UserError(f"{where}: {spec.name} must be one of {', '.join(map(str, rule['choices']))}, got {value!r}")
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


def divisibility_errors(values, cls):
    """[(width key, heads key)] of every head count in ``values`` that does not divide its width."""
    bad = []
    for spec in fields(cls):
        width = spec.metadata.get("divides")
        if width and spec.name in values and width in values and values[width] % values[spec.name]:
            bad.append((width, spec.name))
    return bad


def unknown_key_error(where, key, known, what="key"):
    hint = did_you_mean(key, known)
    return UserError(f"{where}: unknown {what} {key!r}; {hint + ' ' if hint else ''}known: {', '.join(known)}")


def build(cls, values, where, strict=True, what="key"):
    """``cls`` with ``values`` over its defaults, each value checked against its field's rule.

    ``strict`` False (files written by an older or newer version) ignores keys the class does not have."""
    specs = {spec.name: spec for spec in fields(cls)}
    unknown = [key for key in values if key not in specs]
    if unknown and strict:
        raise unknown_key_error(where, unknown[0], list(specs), what)
    given = {key: value for key, value in values.items() if key in specs}
    for key, value in given.items():
        check_value(specs[key], value, where)
        kind, _ = base_type(specs[key])
        if kind is float and value is not None:
            given[key] = float(value)  # a YAML ``1`` for a rate or weight
        elif kind is list and value is not None:
            given[key] = list(value)
    obj = cls(**given)
    bad = divisibility_errors(dataclasses.asdict(obj), cls)
    if bad:
        width, heads = bad[0]
        raise UserError(f"{where}: --{width} {getattr(obj, width)} is not divisible by --{heads} {getattr(obj, heads)}; "
                        "pick a width that is a multiple of the heads")
    return obj


def parse_bool(text):
    if str(text).lower() in ("1", "true", "yes", "y", "on"):
        return True
    if str(text).lower() in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def flag_type(spec):
    """The argparse ``type`` of a field: its ``parse`` rule, else the base type with the range rule checked."""
    from toolkit.errors import bounded

    rule = spec.metadata
    if "parse" in rule:
        return rule["parse"]
    kind, _ = base_type(spec)
    if kind is bool:
        return parse_bool
    if kind in (int, float):
        return bounded(kind, rule.get("min"), rule.get("max"), rule.get("min_open", False), rule.get("max_open", False))
    return kind


def add_flags(group, cls, prefix="", switches=True, skip=(), only=None, defaults=None):
    """One flag ``--<prefix><name>`` per field of ``cls`` (except those in ``skip`` and those with flag=False),
    with its help and default. The parsed value lands under ``dest`` ``<prefix><name>`` only when the flag is
    given (default SUPPRESS), so a caller can tell a flag given equal to its default from an absent one.
    ``switches``: bool fields that default to False are ``--name`` switches; else they take true/false.
    ``only``: just these fields; ``defaults``: {name: value} shown instead of the code defaults (e.g. a
    model's defaults with models/hparams.yaml applied)."""
    for spec in fields(cls):
        if spec.name in skip or spec.metadata.get("flag") is False or (only is not None and spec.name not in only):
            continue
        kind, _ = base_type(spec)
        default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
        default = (defaults or {}).get(spec.name, default)
        name = f"--{prefix}{spec.name}"
        if kind is bool and switches and default is False:
            group.add_argument(name, dest=prefix + spec.name, action="store_true", default=argparse.SUPPRESS,
                               help=spec.metadata["help"])
            continue
        shown = "none" if default is None else ",".join(default) or "none" if isinstance(default, list) else default
        text = spec.metadata["help"] + ("" if "default" in spec.metadata["help"] else f" (default: {shown})")
        group.add_argument(name, dest=prefix + spec.name, type=flag_type(spec), default=argparse.SUPPRESS, help=text,
                           choices=spec.metadata.get("choices"), metavar=_metavar(spec, kind))


def _metavar(spec, kind):
    if "choices" in spec.metadata:
        return "{" + ",".join(map(str, spec.metadata["choices"])) + "}"
    return spec.name.upper() if kind is not bool else "{true,false}"


def to_dict(obj):
    """A settings dataclass (nested ones too) as plain data for YAML or JSON."""
    return {f.name: to_dict(v) if dataclasses.is_dataclass(v) else (list(v) if isinstance(v, tuple) else v)
            for f in fields(type(obj)) for v in [getattr(obj, f.name)]}
