"""Greedy forward feature selection on validation folds: the fused set chosen by what it adds together, next to
the sweep's per-modality top-n (``train.py --feat_topn N``), which ranks features one by one.

Starting from no feature, each step trains the current set plus each remaining candidate on every fold (the
fused model with train.py's settings; flags after ``--`` change them, as for train.py) and keeps the candidate
whose set has the highest fold-mean validation weighted F1. It stops when no candidate raises that mean by more
than the fold spread of the gain (the population std over folds of the best candidate's F1 minus the current
set's, both on the same validation clips: a gain the folds disagree about is not taken), or at --max_features.
Each step also records the spread of the current set's own fold F1s, a stricter rule (folds of unequal
difficulty widen it) that stopped after one feature on small folds. Outputs in --out: selection.json (every step: each candidate's fold F1s, the gain,
the spread, why it stopped) and selected.yaml (``feat: [...]``, for ``train.py --config``).
"""
import dataclasses
import os
import statistics
import time

from toolkit.errors import UserError

SELECT_FLAGS = ("dataset", "folds", "feat", "feat_topn", "run_dir")  # set per candidate and fold: not train.py flags here


@dataclasses.dataclass
class Selection:
    """The chosen features, the fold F1s of the chosen set, and every step (candidates and their fold F1s)."""

    features: list
    fold_f1: list
    steps: list
    stop: str

    @property
    def mean(self):
        return statistics.fmean(self.fold_f1) if self.fold_f1 else 0.0

    def to_dict(self):
        return {"features": self.features, "fold_f1": self.fold_f1, "mean_f1": self.mean,
                "spread": statistics.pstdev(self.fold_f1) if self.fold_f1 else None, "stop": self.stop, "steps": self.steps}


def fold_config(base, features, fold, registry):
    """The resolved TrainConfig of ``features`` on fold ``fold`` under the caller's settings ``base`` (a dict)."""
    from engine.config import from_dict, merge_sources

    fixed = {"feat": list(features), "dataset": f"fold{fold}", "folds": None, "no_progress": True, "no_plots": True}
    return from_dict(merge_sources(base, fixed), "feature selection").resolved(registry)


def fold_scores(base, features, folds, registry):
    """The best validation weighted F1 of the fused model on ``features`` on each of ``folds`` folds (no run dirs)."""
    import engine

    scores = []
    for fold in range(folds):
        args = fold_config(base, features, fold, registry)
        scores.append(engine.fit(args, engine.load_data(args, registry)).best_f1)
    return scores


def greedy_select(base, candidates, folds, registry, max_features=None, say=print):
    """Greedy forward selection of ``candidates`` (feature names) on ``folds`` folds; returns a Selection."""
    chosen, chosen_f1, steps = [], [], []
    limit = max_features or len(candidates)
    while len(chosen) < limit and len(chosen) < len(candidates):
        tried = {}
        for feature in [c for c in candidates if c not in chosen]:
            start = time.time()
            tried[feature] = fold_scores(base, chosen + [feature], folds, registry)
            say(f"  step {len(chosen) + 1}: {' + '.join(chosen + [feature])}: {statistics.fmean(tried[feature]):.4f} ± "
                f"{statistics.pstdev(tried[feature]):.4f} ({time.time() - start:.1f}s)", flush=True)
        best = max(tried, key=lambda f: (statistics.fmean(tried[f]), -candidates.index(f)))
        current = statistics.fmean(chosen_f1) if chosen_f1 else 0.0
        gains = [new - old for new, old in zip(tried[best], chosen_f1)] if chosen_f1 else tried[best]
        gain, spread = statistics.fmean(tried[best]) - current, statistics.pstdev(gains) if chosen_f1 else 0.0
        steps.append({"candidates": tried, "best": best, "gain": gain, "spread": spread, "added": gain > spread,
                      "current_spread": statistics.pstdev(chosen_f1) if chosen_f1 else 0.0})
        if gain <= spread:
            stop = f"adding {best} raises the fold-mean F1 by {gain:+.4f}, not more than its fold spread {spread:.4f}"
            say(f"stop: {stop}", flush=True)
            return Selection(chosen, chosen_f1, steps, stop)
        chosen, chosen_f1 = chosen + [best], tried[best]
        say(f"step {len(chosen)}: add {best}: fold-mean F1 {current:.4f} -> {statistics.fmean(chosen_f1):.4f} "
            f"({gain:+.4f} > spread {spread:.4f})", flush=True)
    return Selection(chosen, chosen_f1, steps, f"{len(chosen)} features chosen (every candidate, or --max_features)")


def write_selection(out, selection):
    """selection.json and selected.yaml (``feat: [...]``) in ``out``; returns the YAML's path."""
    import yaml

    from toolkit.io import save_json, save_text

    save_json(os.path.join(out, "selection.json"), selection.to_dict())
    path = os.path.join(out, "selected.yaml")
    save_text(path, f"# greedy forward selection: fold-mean F1 {selection.mean:.4f}; {selection.stop}\n"
              + yaml.safe_dump({"feat": list(selection.features)}, sort_keys=False))
    return path


def candidate_features(opts, registry, base):
    """--feats, else the single features of the sweep table --from, else the registry's default features."""
    from engine.config import parse_feature_list

    if opts.feats:
        names = parse_feature_list(opts.feats)
    elif opts.table:
        from toolkit.results import single_feature_rows

        names = single_feature_rows(opts.table, "--from")["features"].tolist()
    else:
        names = list(fold_config(base, registry.default_features, 0, registry).feat)
    registry.lookup(names)  # unknown names: one line with "did you mean"
    if len(set(names)) < 2:
        raise UserError(f"feature selection needs at least 2 candidate features, got {names}; give more with --feats")
    return list(dict.fromkeys(names))


def build_parser(description=__doc__):
    from toolkit.errors import ArgumentParser, bounded

    p = ArgumentParser(description=description, prog="select_features.py",
                       epilog="Flags after -- go to train.py for every candidate, e.g. -- --epochs 60 --hidden_dim 32")
    p.add_argument("--folds", type=bounded(int, 2), default=3, help="splits fold0..fold{K-1}.npy (preprocess/mer2025_base.py --folds K)")
    p.add_argument("--feats", default=None, help="candidate features, as for train.py's --feat (None: --from, else config.DEFAULT_FEATURES)")
    p.add_argument("--from", dest="table", default=None,
                   help="candidates: every single feature of this sweep table (eval_avg_performance.py's unimodal_summary.csv)")
    p.add_argument("--max_features", type=bounded(int, 1), default=None, help="stop after this many features (None: no limit)")
    p.add_argument("--out", default=None, help="output folder (default: <config.PATH_TO_SAVED>/select)")
    return p


def run(argv, description=__doc__):
    """select_features.py's command line (flags, then ``--`` and train.py flags); returns the Selection."""
    import sys

    from dataloader.registry import Registry
    from engine.flags import parse_values
    from engine.folds import fold_splits

    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    opts = build_parser(description).parse_args(argv[:cut])
    base = parse_values(argv[cut + 1:], "train.py flags after --")
    clash = next((name for name in SELECT_FLAGS if name in base), None)
    if clash:
        raise UserError(f"--{clash} after -- : the selection sets it per candidate and fold; give candidates with --feats")
    registry = Registry.from_config(manifests=base.get("manifests", ()))
    candidates = candidate_features(opts, registry, base)
    fold_splits(fold_config(base, candidates[:1], 0, registry).train_lst, opts.folds)
    out = opts.out or os.path.join(registry.save_root, "select")
    print(f"greedy forward selection over {len(candidates)} features on {opts.folds} folds: {', '.join(candidates)}", flush=True)
    start = time.time()
    selection = greedy_select(base, candidates, opts.folds, registry, opts.max_features)
    path = write_selection(out, selection)
    print(f"selected {len(selection.features)} features ({', '.join(selection.features)}), fold-mean F1 {selection.mean:.4f}, "
          f"in {time.time() - start:.0f}s; wrote {out}/selection.json\ntrain them: python train.py --config {path} --folds {opts.folds} --save_model")
    return selection
