import os

import numpy as np
import pytest
import yaml

from tests.conftest import REPO
from toolkit.errors import UserError
from toolkit.metrics import weighted_f1
from inference.rerank import Rules, apply_rules, fit_rules, load_rules, parse_rules, rules_to_yaml

CLASSES = ["neutral", "angry", "happy", "sad", "worried", "surprise"]
N, A, H, S, W, U = range(6)


def rows(*tops):
    """Probability rows from {class index: p} dicts; the rest is spread evenly."""
    out = np.zeros((len(tops), 6))
    for i, top in enumerate(tops):
        rest = (1 - sum(top.values())) / (6 - len(top))
        out[i] = [top.get(k, rest) for k in range(6)]
    return out


def test_margin_rule_changes_exactly_the_close_rows():
    probs = rows(
        {W: 0.45, S: 0.40},  # close, runner-up sad in fallback → sad
        {W: 0.60, S: 0.20},  # clear worried → stays
        {W: 0.42, H: 0.40},  # close but runner-up happy not in fallback → stays
        {W: 0.41, U: 0.40},  # close, surprise in fallback → surprise
        {S: 0.45, W: 0.40},  # top is sad: the rule does not apply
        {W: 0.50, N: 0.40},  # gap exactly 0.10 = margin → keeps worried
    )
    rules = parse_rules({"margins": {"worried": {"margin": 0.1, "fallback": ["sad", "surprise", "neutral"]}}}, CLASSES)
    preds, changes = apply_rules(probs, rules, CLASSES)
    assert preds.tolist() == [S, W, W, U, S, W]
    assert changes == {"margin worried": 2}
    # no fallback list: any runner-up
    preds, _ = apply_rules(probs, parse_rules({"margins": {"worried": 0.1}}, CLASSES), CLASSES)
    assert preds.tolist() == [S, W, H, U, S, W]


def test_offsets_and_scales_adjust_the_prior():
    probs = rows({W: 0.40, N: 0.35}, {W: 0.70, N: 0.10}, {N: 0.4, H: 0.3})
    by_offset, changes = apply_rules(probs, parse_rules({"offsets": {"worried": float(np.log(0.8))}}, CLASSES), CLASSES)
    by_scale, _ = apply_rules(probs, parse_rules({"scales": {"worried": 0.8}}, CLASSES), CLASSES)
    assert by_offset.tolist() == by_scale.tolist() == [N, W, N]
    assert changes == {"offsets": 1}
    both = parse_rules({"offsets": {"worried": -0.1}, "scales": {"worried": float(np.exp(-0.2))}}, CLASSES)
    assert both.offsets["worried"] == pytest.approx(-0.3)


def test_fitting_corrects_overpredicted_worried():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, 600)
    logits = rng.normal(0, 1, (600, 6))
    logits[np.arange(600), labels] += 2.5
    biased = np.isin(labels, [N, S, U]) & (rng.random(600) < 0.4)
    logits[biased, W] = logits[biased, labels[biased]] + rng.uniform(0.01, 0.4, biased.sum())
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    rules, before, after = fit_rules(probs, labels, CLASSES)
    assert before == pytest.approx(weighted_f1(labels, probs.argmax(1), 6))
    assert after > before + 0.05
    assert after == pytest.approx(weighted_f1(labels, apply_rules(probs, rules, CLASSES)[0], 6))
    assert (apply_rules(probs, rules, CLASSES)[0] == W).sum() < (probs.argmax(1) == W).sum()
    # the written YAML reads back as the same rules
    again = parse_rules(yaml.safe_load(rules_to_yaml(rules, "header")), CLASSES)
    assert (apply_rules(probs, again, CLASSES)[0] == apply_rules(probs, rules, CLASSES)[0]).all()


def test_fitting_never_lowers_f1_and_keeps_template_structure():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 6, 200)
    probs = rng.dirichlet(np.ones(6), 200)
    probs[np.arange(200), labels] += 0.3
    probs /= probs.sum(1, keepdims=True)
    template = parse_rules({"margins": {"worried": {"margin": 0.0, "fallback": ["sad"]}}}, CLASSES)
    rules, before, after = fit_rules(probs, labels, CLASSES, template)
    assert after >= before
    assert set(rules.margins) <= {"worried"} and all(fb == ["sad"] for _, fb in rules.margins.values())
    bad_start = parse_rules({"offsets": {"happy": 1.0}, "margins": {"sad": 0.5}}, CLASSES)  # worse than no rules
    _, raw, fitted = fit_rules(probs, labels, CLASSES, bad_start)
    assert raw == pytest.approx(weighted_f1(labels, probs.argmax(1), 6)) and fitted >= raw
    empty, b, a = fit_rules(np.eye(6)[labels], labels, CLASSES)  # already perfect: nothing to fit
    assert a == b == 1.0 and not any(empty.offsets.values())


@pytest.mark.parametrize("obj, message", [
    ({"margins": {"worry": 0.1}}, r"margins names class 'worry', which is not one of neutral, angry"),
    ({"offsets": {"Happy": 0.1}}, r"offsets names class 'Happy'"),
    ({"margins": {"worried": {"margin": 0.1, "fallback": ["sadness"]}}}, r"margins.worried.fallback names class 'sadness'"),
    ({"margin": {"worried": 0.1}}, r"unknown key 'margin'; use offsets, scales, margins"),
    ({"scales": {"sad": 0}}, r"scales.sad must be > 0"),
    ({"margins": {"sad": 2}}, r"must be within 0..1"),
    ({"offsets": {"sad": "high"}}, r"offsets.sad must be a number"),
])
def test_bad_rules_are_one_line_errors(obj, message):
    with pytest.raises(UserError, match=message) as err:
        parse_rules(obj, CLASSES, "rules.yaml")
    assert "\n" not in str(err.value)


def test_example_rules_file_is_valid():
    rules = load_rules(os.path.join(REPO, "rerank_rules.yaml"), CLASSES)
    assert rules.margins["worried"] == (0.15, ["sad", "surprise", "neutral"])
    assert rules.offsets["worried"] < 0
    assert isinstance(Rules().describe(), str)


@pytest.mark.parametrize("min_gain", [-1.0, float("nan"), float("inf")])
def test_fitting_refuses_a_gain_that_is_negative_or_not_finite(min_gain):
    """A negative gain accepts changes that lower F1; NaN would silently accept none."""
    probs = np.full((4, 6), 1 / 6)
    with pytest.raises(ValueError, match="min_gain"):
        fit_rules(probs, [0, 1, 2, 3], CLASSES, min_gain=min_gain)
