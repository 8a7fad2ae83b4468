"""K-fold training: fold0..fold{K-1}.npy (preprocess/mer2025_base.py --folds K) into <root>/fold{k}, and the
folds' mean ± std weighted F1 in <root>/folds_summary.json."""
import dataclasses
import os
import statistics

from toolkit.errors import UserError


@dataclasses.dataclass
class FoldsResult:
    """The fold runs' RunResults and the folds' summary (folds_summary.json; None on ranks other than 0)."""

    results: list
    summary: dict
    run_dir: str


def fold_splits(train_lst, folds):
    """The split files fold0..fold{K-1}.npy in ``train_lst``; a missing one is an error that says how to write them."""
    from toolkit.io import split_path

    paths = [split_path(train_lst, f"fold{k}") for k in range(folds)]
    missing = [path for path in paths if not os.path.exists(path)]
    if missing:
        raise UserError(f"no split file {missing[0]} ({len(missing)} of {folds} folds missing); write them with "
                        f"preprocess/mer2025_base.py --label_csv LABELS.csv --folds {folds} --save_root {train_lst}")
    return paths


def folds_root(args):
    """The folder of the fold runs: run_dir, else <save_root>/folds<K>/<model>/run (or run-<time>)."""
    from engine.runner import default_run_dir

    return args.run_dir or default_run_dir(dataclasses.replace(args, dataset=f"folds{args.folds}"))


def run_folds(args, registry, callbacks=(), quiet=False):
    """Train every fold of the resolved config ``args``; print each fold's BEST line and the mean ± std."""
    from engine.runner import run_resolved
    from toolkit.io import save_json

    say = (lambda *a, **k: None) if quiet else print
    fold_splits(args.train_lst, args.folds)
    root = folds_root(args)
    results = []
    for k in range(args.folds):
        say(f"fold {k} of {args.folds}:", flush=True)
        fold = dataclasses.replace(args, dataset=f"fold{k}", folds=None, run_dir=os.path.join(root, f"fold{k}"))
        results.append(run_resolved(fold, registry, callbacks, quiet))
    if results[0].summary is None:
        return FoldsResult(results, None, root)
    f1 = [r.summary["f1"] for r in results]
    summary = {"folds": args.folds, "mean_f1": statistics.fmean(f1), "std_f1": statistics.pstdev(f1), "fold_f1": f1,
               "fold_acc": [r.summary["acc"] for r in results], "best_epochs": [r.summary["best_epoch"] for r in results],
               "run_dirs": [r.run_dir for r in results], "model": args.model, "features": list(args.feat)}
    save_json(os.path.join(root, "folds_summary.json"), summary)
    say(f"FOLDS: {args.folds} folds, f-score {summary['mean_f1']:.4f} ± {summary['std_f1']:.4f} "
        f"({', '.join(f'{v:.4f}' for v in f1)}) → {os.path.join(root, 'folds_summary.json')}")
    return FoldsResult(results, summary, root)
