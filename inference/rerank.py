"""Rule-based re-ranking of (ensemble) class probabilities, read from a small YAML file.

Two rules (see rerank_rules.yaml for a commented example), applied in this order:

    offsets   {class: number}  add a log-prior offset: p[c] *= exp(offset), then renormalise.
    scales    {class: number}  the same written as a factor: p[c] *= scale (scale 0.8 = offset log 0.8).
    margins   {class: {margin: m, fallback: [classes]}}  (or {class: m})
              a clip whose top class c has a margin rule keeps c only when p[c] - p[runner-up] >= m;
              otherwise the runner-up wins, if it is in ``fallback`` (default: any class).

``fit_rules`` tunes offsets and margins on labeled validation probabilities by coordinate search.
"""
import dataclasses
import math
import os

import numpy as np

from toolkit.errors import UserError
from toolkit.metrics import weighted_f1

RULE_KEYS = ("offsets", "scales", "margins")
OFFSET_GRID = np.round(np.arange(-1.0, 1.0001, 0.1), 2)
MARGIN_GRID = np.round(np.arange(0.0, 0.5001, 0.05), 2)
TOLERANCE = 1e-9  # a gap equal to the margin (up to rounding) keeps the top class


@dataclasses.dataclass
class Rules:
    offsets: dict = dataclasses.field(default_factory=dict)  # class → log offset
    margins: dict = dataclasses.field(default_factory=dict)  # class → (margin, [fallback classes])

    def describe(self):
        parts = [f"offset {c} {v:+.2f}" for c, v in self.offsets.items()]
        parts += [f"margin {c} {m:.2f} → {'/'.join(fb)}" for c, (m, fb) in self.margins.items()]
        return "; ".join(parts) or "no rules"


def _number(value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise UserError(f"{where} must be a number, got {value!r}")
    return float(value)


def _check_class(name, classes, where):
    if name not in classes:
        raise UserError(f"{where} names class {name!r}, which is not one of {', '.join(classes)}")
    return name


def parse_rules(obj, classes, where="rules"):
    """Rules from the YAML structure; unknown keys, classes or bad numbers are one-line UserErrors."""
    obj = obj or {}
    if not isinstance(obj, dict):
        raise UserError(f"{where} must be a mapping with keys {', '.join(RULE_KEYS)}")
    unknown = [k for k in obj if k not in RULE_KEYS]
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}; use {', '.join(RULE_KEYS)}")
    rules = Rules()
    for key in ("offsets", "scales"):
        section = obj.get(key) or {}
        if not isinstance(section, dict):
            raise UserError(f"{where}: '{key}' must map class names to numbers")
        for name, value in section.items():
            _check_class(name, classes, f"{where}: {key}")
            value = _number(value, f"{where}: {key}.{name}")
            if key == "scales" and value <= 0:
                raise UserError(f"{where}: scales.{name} must be > 0, got {value}")
            rules.offsets[name] = rules.offsets.get(name, 0.0) + (np.log(value) if key == "scales" else value)
    margins = obj.get("margins") or {}
    if not isinstance(margins, dict):
        raise UserError(f"{where}: 'margins' must map class names to {{margin: m, fallback: [classes]}}")
    for name, rule in margins.items():
        _check_class(name, classes, f"{where}: margins")
        rule = rule if isinstance(rule, dict) else {"margin": rule}
        extra = [k for k in rule if k not in ("margin", "fallback")]
        if extra:
            raise UserError(f"{where}: margins.{name} has unknown key {extra[0]!r}; use margin and fallback")
        margin = _number(rule.get("margin"), f"{where}: margins.{name}.margin")
        if not 0 <= margin <= 1:
            raise UserError(f"{where}: margins.{name}.margin must be within 0..1 (a probability difference), got {margin}")
        fallback = rule.get("fallback") or [c for c in classes if c != name]
        if isinstance(fallback, str) or not isinstance(fallback, list):
            raise UserError(f"{where}: margins.{name}.fallback must be a list of classes")
        fallback = [_check_class(c, classes, f"{where}: margins.{name}.fallback") for c in fallback]
        rules.margins[name] = (margin, fallback)
    return rules


def load_rules(path, classes):
    """Rules from a YAML file (see ``parse_rules``)."""
    from toolkit.io import read_yaml

    if not os.path.isfile(path):
        raise UserError(f"rules file {path} not found")
    obj = read_yaml(path, "rules file", "write it as ensemble.py --fit_rerank does (see rerank_rules.yaml)")
    return parse_rules(obj, classes, f"rules file {path}")


def rules_to_yaml(rules, header=""):
    """YAML text of ``rules`` (only non-trivial entries), after ``header`` comment lines."""
    import yaml

    obj = {
        "offsets": {c: round(float(v), 4) for c, v in rules.offsets.items() if v != 0},
        "margins": {c: {"margin": round(float(m), 4), "fallback": list(fb)} for c, (m, fb) in rules.margins.items() if m > 0},
    }
    comments = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comments + yaml.safe_dump(obj, sort_keys=False, default_flow_style=None)


def adjust(probs, rules, classes):
    """Probabilities after the offsets (renormalised)."""
    probs = np.asarray(probs, dtype=np.float64)
    if not rules.offsets:
        return probs
    shift = np.array([rules.offsets.get(c, 0.0) for c in classes])
    scaled = probs * np.exp(shift)
    return scaled / scaled.sum(1, keepdims=True)


def apply_rules(probs, rules, classes):
    """(predicted class ids, {rule: number of predictions it changed}) for (N, K) ``probs``."""
    raw = np.asarray(probs).argmax(1)
    adjusted = adjust(probs, rules, classes)
    order = np.argsort(-adjusted, axis=1, kind="stable")
    top, second = order[:, 0], order[:, 1]
    rows = np.arange(len(adjusted))
    gap = adjusted[rows, top] - adjusted[rows, second]
    preds = top.copy()
    changes = {}
    if rules.offsets:
        changes["offsets"] = int((top != raw).sum())
    for name, (margin, fallback) in rules.margins.items():
        c = classes.index(name)
        hit = (top == c) & (gap < margin - TOLERANCE) & np.isin(second, [classes.index(f) for f in fallback])
        preds[hit] = second[hit]
        changes[f"margin {name}"] = int(hit.sum())
    return preds, changes


def _coordinate_search(rules, score, rounds, min_gain):
    """Improve ``rules`` one value at a time over the grids; returns (rules, score)."""
    best = score(rules)
    for _ in range(rounds):
        improved = False
        coords = [("offsets", c, OFFSET_GRID) for c in rules.offsets] + [("margins", c, MARGIN_GRID) for c in rules.margins]
        for kind, name, grid in coords:
            # Among equal scores prefer the value nearest to "no change" (0): fewer, milder corrections.
            for value in sorted(grid, key=abs):
                trial = Rules(dict(rules.offsets), dict(rules.margins))
                if kind == "offsets":
                    trial.offsets[name] = float(value)
                else:
                    trial.margins[name] = (float(value), rules.margins[name][1])
                f1 = score(trial)
                if f1 > best + min_gain:
                    rules, best, improved = trial, f1, True
        if not improved:
            break
    return rules, best


def fit_rules(probs, labels, classes, template=None, rounds=3, min_gain=1e-3):
    """Offsets (every class) and margins (``template``'s classes and fallbacks, else every class with any
    runner-up) that maximise weighted F1 on labeled ``probs``, by coordinate search over a grid.

    The search starts from no rules and, when given, from ``template``'s values, and keeps the better end;
    a change is accepted only when it raises F1 by ``min_gain``, so the fitted F1 is never below the F1
    without rules. Offsets are shifted so that their median is 0 (adding one constant to all offsets
    changes nothing); rules left at 0 are dropped. Returns (rules, f1 without rules, f1 with them).
    """
    if not (math.isfinite(min_gain) and min_gain >= 0):
        raise ValueError(f"min_gain must be a finite number >= 0, got {min_gain!r}: a negative gain accepts changes that lower F1")
    labels = np.asarray(labels)
    template = template or Rules()
    fallbacks = {c: fb for c, (_, fb) in template.margins.items()} or {c: [o for o in classes if o != c] for c in classes}

    def score(r):
        return weighted_f1(labels, apply_rules(probs, r, classes)[0], len(classes))

    starts = [Rules({c: 0.0 for c in classes}, {c: (0.0, fb) for c, fb in fallbacks.items()})]
    if template.offsets or template.margins:
        starts.append(Rules({c: template.offsets.get(c, 0.0) for c in classes},
                            {c: (template.margins[c][0], fb) for c, fb in fallbacks.items()}))
    ends = [_coordinate_search(start, score, rounds, min_gain) for start in starts]
    rules = max(ends, key=lambda end: end[1])[0]  # the first (no rules) on a tie
    # Offsets only matter relative to each other: shift them so the median class has 0, the readable form.
    shift = float(np.median(list(rules.offsets.values())))
    offsets = {c: round(v - shift, 4) for c, v in rules.offsets.items()}
    rules = Rules({c: v for c, v in offsets.items() if v}, {c: r for c, r in rules.margins.items() if r[0] > 0})
    return rules, score(Rules()), score(rules)
