"""Combine the class probabilities of several models of the same clips.

    vote      hard majority vote; ties go to the class with the higher mean probability. Its probability
              matrix is (votes + mean probability) / (members + 1): rows sum to 1 and the argmax is the vote.
    soft      mean probability
    weighted  mean probability weighted by each member's validation F1
"""
import numpy as np

from toolkit.errors import UserError
from toolkit.tables import index_of

METHODS = ("vote", "soft", "weighted")


def combine(probs, method, weights=None):
    """(N, K) ensemble probabilities of a list of (N, K) member probabilities."""
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in probs])  # (M, N, K)
    if method == "soft":
        return stack.mean(0)
    if method == "weighted":
        w = np.asarray(weights, dtype=np.float64)
        return np.tensordot(w / w.sum(), stack, axes=1)
    if method == "vote":
        num_classes = stack.shape[2]
        votes = np.eye(num_classes)[stack.argmax(2)].sum(0)  # (N, K) number of members voting each class
        return (votes + stack.mean(0)) / (len(stack) + 1)
    raise UserError(f"unknown ensemble method {method!r}; use one of {', '.join(METHODS)}")


def member_weights(members, method):
    """Weights of the members for ``method`` (their validation F1 for 'weighted', else None)."""
    if method != "weighted":
        return None
    missing = [m["path"] for m in members if m.get("valid_f1") is None or not m["valid_f1"] > 0]
    if missing:
        raise UserError(f"--method weighted needs each member's validation F1, but {missing[0]} has none "
                        f"({len(missing)} members lack it); write the predictions with predict.py from run dirs that have "
                        "summary.json, or use soft")
    return [m["valid_f1"] for m in members]


def check_same_classes(members):
    first = members[0]
    for m in members[1:]:
        if m["classes"] != first["classes"]:
            raise UserError(f"{m['path']} has classes {', '.join(m['classes'])} but {first['path']} has "
                            f"{', '.join(first['classes'])}; ensemble only predictions over the same class list")
    return list(first["classes"])


def check_same_names(members):
    """Without a candidates list, every member must predict exactly the first member's clips."""
    first = set(members[0]["names"])
    for m in members[1:]:
        names = set(m["names"])
        if names != first:
            lacking, extra = sorted(first - names), sorted(names - first)
            shown = ", ".join((lacking or extra)[:5])
            raise UserError(f"prediction files hold different clips: {m['path']} lacks {len(lacking)} of "
                            f"{members[0]['path']}'s names and has {len(extra)} others (first: {shown}); "
                            "predict the same names CSV with every member, or pass --candidates")


def aligned_probs(members, names):
    """Each member's probabilities in the order of ``names``; a missing clip is a UserError."""
    return [m["probs"][index_of(m["names"], names, "candidates", f"prediction file {m['path']}")] for m in members]
