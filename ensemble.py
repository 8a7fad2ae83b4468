"""Combine the predictions of several runs into a submission, optionally re-ranked by rules.

    python ensemble.py --preds saved/demo/preds/seed{0,1,2,3,4}/preds.npz --method soft --out saved/demo/submission.csv
    python ensemble.py --preds ... --method vote --rerank rerank_rules.yaml --out submission.csv
    python ensemble.py --preds ... --method soft --out submission.csv \
        --fit_rerank --valid_preds saved/demo/seed{0,1,2,3,4} --rerank_out saved/demo/rules_fitted.yaml

Methods: vote (majority, ties → higher mean probability), soft (mean probability), weighted (mean
weighted by each member's validation F1). The submission has one row per candidate (columns name,
discrete) in the candidates' order; the ensemble's probabilities (before re-ranking) and the final labels
are saved beside it as <out>.npz, which ensemble.py also accepts as a --preds member.

Re-ranking rules (inference/rerank.py, example: rerank_rules.yaml) are applied with --rerank, or fitted with
--fit_rerank on *validation* predictions of the same members (run dirs: their best_valid_results.npy; or
preds.npz files of validation clips with --truth CSV). If the members' validation sets mostly overlap
(runs of one split), the rules are fitted on the ensemble of the members over the shared clips; if not
(runs on different seeds have different validation sets), on each member's own validation predictions,
pooled. Fitting clips that are also candidates are refused, so rules are never fitted on the test set.
With both --rerank and --fit_rerank, only the margins of the given rules (their classes and fallback
lists) are fitted, and the search starts from the given values as well as from no rules.
"""
import collections
import os

import numpy as np

from toolkit.errors import ArgumentParser, UserError, bounded, cli


def build_parser():
    p = ArgumentParser(description=__doc__)
    p.add_argument("--preds", nargs="+", required=True, metavar="NPZ", help="prediction files of the members (predict.py DIR/preds.npz)")
    p.add_argument("--method", choices=["vote", "soft", "weighted"], default="soft", help="how to combine members")
    p.add_argument("--out", required=True, help="submission CSV to write (name,discrete); probabilities go to <out>.npz")
    p.add_argument("--candidates", help="CSV with column 'name': rows and order of the submission (default: the first member's names)")
    p.add_argument("--rerank", metavar="YAML", help="re-ranking rules to apply (with --fit_rerank: the rules to start from)")
    g = p.add_argument_group("fitting re-ranking rules on validation predictions")
    g.add_argument("--fit_rerank", action="store_true", help="fit offsets and margins that maximise validation weighted F1")
    g.add_argument("--valid_preds", nargs="+", metavar="RUN_OR_NPZ", help="validation predictions of the members: run dirs or .npz files")
    g.add_argument("--truth", help="CSV name,discrete with labels of the clips in --valid_preds .npz files")
    g.add_argument("--rerank_out", metavar="YAML", help="where to write the fitted rules")
    g.add_argument("--min_gain", type=bounded(float, 0), default=1e-3,
                   help="smallest validation F1 gain that makes the search change a value (a finite number >= 0)")
    return p


def check_args(args):
    if args.fit_rerank and not (args.valid_preds and args.rerank_out):
        raise UserError("--fit_rerank needs --valid_preds (validation predictions of the members) and --rerank_out (YAML to write)")
    if not args.fit_rerank and (args.valid_preds or args.truth or args.rerank_out):
        raise UserError("--valid_preds, --truth and --rerank_out are only used with --fit_rerank")


def load_validation(path, classes, truth, truth_path):
    """Labeled validation predictions of one member: {path, names, probs, labels, valid_f1}."""
    from inference.predictor import load_preds, read_summary
    from toolkit.tables import encode_labels, index_of

    if os.path.isdir(path):
        summary = read_summary(path)  # refuses a failed run
        if summary.get("classes", classes) != classes:
            raise UserError(f"--valid_preds {path} has classes {', '.join(summary['classes'])}, the members {', '.join(classes)}")
        return {"path": path, **load_valid_results(path, len(classes)), "valid_f1": summary.get("f1")}
    member = load_preds(path)
    check_run_dirs(member)
    if member["classes"] != classes:
        raise UserError(f"--valid_preds {path} has classes {', '.join(member['classes'])}, the members {', '.join(classes)}")
    if truth is None:
        raise UserError(f"--valid_preds {path} is a prediction file: give --truth CSV (name,discrete) with the labels of its clips")
    rows = index_of(truth["name"].tolist(), member["names"], "clips", f"--truth {truth_path}")
    member["labels"] = encode_labels(truth["discrete"].to_numpy()[rows], classes, f"--truth {truth_path}")
    return member


def load_valid_results(run_dir, n_classes):
    """{names, probs, labels} of a run's best_valid_results.npy, read as plain data and checked."""
    from toolkit.io import load_npy_data
    from inference.predictor import check_probs

    path = os.path.join(run_dir, "best_valid_results.npy")
    if not os.path.isfile(path):
        raise UserError(f"--valid_preds {run_dir} has no best_valid_results.npy; pass a run dir written by train.py or a preds.npz")
    results = load_npy_data(path, "validation results", "rerun train.py for that run dir")
    keys = ("eval_names", "eval_emoprobs", "eval_emolabels")
    if not isinstance(results, dict) or any(k not in results for k in keys):
        raise UserError(f"validation results {path} must be a dict with {', '.join(keys)}; rerun train.py for that run dir")
    names = [str(n) for n in results["eval_names"]]
    try:
        probs = np.asarray(results["eval_emoprobs"], dtype=np.float64)
        labels = np.asarray(results["eval_emolabels"], dtype=np.int64)
    except (TypeError, ValueError):
        raise UserError(f"validation results {path}: eval_emoprobs and eval_emolabels must be numeric arrays; rerun train.py") from None
    if probs.shape != (len(names), n_classes) or labels.shape != (len(names),):
        raise UserError(f"validation results {path}: {len(names)} names but probs of shape {probs.shape} and labels of shape "
                        f"{labels.shape} (expected ({len(names)}, {n_classes}) and ({len(names)},)); rerun train.py")
    if ((labels < 0) | (labels >= n_classes)).any():
        raise UserError(f"validation results {path}: labels outside 0..{n_classes - 1}; rerun train.py")
    check_probs(probs, names, f"validation results {path}")
    return {"names": names, "probs": probs, "labels": labels}


def check_run_dirs(member):
    """A prediction file made by a run that is marked failed is no model's prediction."""
    from toolkit.results import failure_of

    for run_dir in member["run_dirs"]:
        why = os.path.isdir(run_dir) and failure_of(run_dir)
        if why:
            raise UserError(f"prediction file {member['path']} comes from run dir {run_dir}, a failed run ({why}); "
                            "leave it out of the ensemble or rerun that run")


def fitting_set(valid, method):
    """(probs, labels, clip names, description) to fit re-ranking rules on."""
    from toolkit.tables import index_of
    from inference.voting import aligned_probs, combine, member_weights

    common = set(valid[0]["names"]).intersection(*(v["names"] for v in valid[1:]))
    smallest = min(len(v["names"]) for v in valid)
    if len(common) >= max(1, smallest // 2):
        names = [n for n in valid[0]["names"] if n in common]
        labels = [v["labels"][index_of(v["names"], names, "clips", v["path"])] for v in valid]
        if any((lab != labels[0]).any() for lab in labels[1:]):
            raise UserError("the members' validation predictions disagree on the labels of shared clips; are they from one label file?")
        probs = combine(aligned_probs(valid, names), method, member_weights(valid, method))
        note = f"fitting on the {len(names)} validation clips common to all {len(valid)} members ({method} ensemble of their predictions)"
        return probs, labels[0], names, note
    names = [n for v in valid for n in v["names"]]
    note = (f"the members' validation sets share only {len(common)} clips (different splits): fitting on each member's own "
            f"validation predictions, pooled ({len(names)} rows from {len(valid)} members)")
    return np.vstack([v["probs"] for v in valid]), np.concatenate([v["labels"] for v in valid]), names, note


def fit(args, classes, candidates, template):
    """Fitted rules and the text of their YAML file; prints what was fitted and on what."""
    from inference.rerank import apply_rules, fit_rules, rules_to_yaml
    from toolkit.tables import read_table

    truth = read_table(args.truth, "truth CSV", ("name", "discrete")) if args.truth else None
    valid = [load_validation(p, classes, truth, args.truth) for p in args.valid_preds]
    probs, labels, names, note = fitting_set(valid, args.method)
    leaked = set(names) & set(candidates)
    if leaked:
        raise UserError(f"{len(leaked)} fitting clips are also candidates (first: {', '.join(sorted(leaked)[:5])}); "
                        "re-ranking is fitted on validation predictions only, never on the clips it is applied to")
    print(note)
    rules, before, after = fit_rules(probs, labels, classes, template, min_gain=args.min_gain)
    _, changes = apply_rules(probs, rules, classes)
    print(f"fitted re-ranking: validation weighted F1 {before:.4f} → {after:.4f} ({rules.describe()})")
    print("  on validation: " + (", ".join(f"{k} changed {v}" for k, v in changes.items()) or "nothing changed"))
    header = (f"Re-ranking rules fitted by ensemble.py --fit_rerank (method {args.method}).\n{note}.\n"
              f"Validation weighted F1 {before:.4f} -> {after:.4f}.\nMembers' validation predictions: {' '.join(args.valid_preds)}")
    return rules, rules_to_yaml(rules, header)


def run(args):
    """Ensemble, re-rank and write the submission; returns {names, classes, probs, labels, changes}."""
    import pandas as pd

    from toolkit.io import remove_stale_temps, save_text
    from inference.predictor import load_preds, save_preds
    from inference.rerank import Rules, apply_rules, load_rules
    from toolkit.tables import read_table
    from inference.voting import aligned_probs, check_same_classes, check_same_names, combine, member_weights

    check_args(args)
    members = [load_preds(p) for p in args.preds]
    for member in members:
        check_run_dirs(member)
    classes = check_same_classes(members)
    if args.candidates:
        candidates = read_table(args.candidates, "candidates CSV")["name"].tolist()
    else:
        check_same_names(members)
        candidates = members[0]["names"]
    weights = member_weights(members, args.method)
    probs = combine(aligned_probs(members, candidates), args.method, weights)
    rules = load_rules(args.rerank, classes) if args.rerank else None
    rules_yaml = None
    if args.fit_rerank:
        rules, rules_yaml = fit(args, classes, candidates, rules)
    labels, changes = apply_rules(probs, rules or Rules(), classes)

    for folder in {os.path.dirname(os.path.abspath(p)) for p in (args.out, args.rerank_out) if p}:
        remove_stale_temps(folder)  # left there by an ensemble.py that was killed while writing
    submission = pd.DataFrame({"name": candidates, "discrete": [classes[i] for i in labels]})
    npz_path = os.path.splitext(args.out)[0] + ".npz"
    if rules_yaml is not None:
        save_text(args.rerank_out, rules_yaml)
    save_preds(npz_path, {"names": candidates, "classes": classes, "probs": probs, "labels": labels, "method": args.method,
                          "members": list(args.preds), "run_dirs": sorted({d for m in members for d in m["run_dirs"]})})
    save_text(args.out, submission.to_csv(index=False))

    weight_note = f" (weights {', '.join(f'{w:.4f}' for w in weights)})" if weights else ""
    print(f"{args.method} ensemble of {len(members)} members{weight_note} over {len(candidates)} candidates")
    if rules is not None:
        print("re-ranking: " + (", ".join(f"{k} changed {v}" for k, v in changes.items()) or "no rules"))
    counts = collections.Counter(submission["discrete"])
    print("predicted: " + ", ".join(f"{c} {counts.get(c, 0)}" for c in classes))
    print(f"wrote {args.out} and {npz_path}" + (f" and {args.rerank_out}" if rules_yaml is not None else ""))
    return {"names": candidates, "classes": classes, "probs": probs, "labels": labels, "changes": changes}


@cli
def main(argv=None):
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
