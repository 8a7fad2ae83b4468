"""Model quality: mean ± std weighted F1 on the validation part of each split.

    python benchmarks/bench_quality.py [--seeds 0 1 2 3 4] [--skip_single] [-- extra train.py flags]
    python benchmarks/bench_quality.py --sets demo demo-alt mfeat --models moe lf_dnn --folds 5 --epochs 40

With --tune N (and --sets): each model is also tuned on each set (tune.py: N trials, --tune_folds folds,
--tune_epochs epochs) and its best setting trained on the same K folds; the table gives default and tuned
side by side, then the default moe and the moe tuned on each set are trained on every set and ranked
(mean rank across sets: the rule for choosing defaults). Results go to
saved/bench_quality/tuned_sets/results.json, so a rerun resumes. Tuning reads folds the tuned row is then
scored on, so "tuned" is the best a search finds on them, an upper bound for a fresh split.

With --sets: for every set (benchmarks/datasets.py: written under data/bench/<set>/ or reused) its
stratified K folds (preprocess/mer2025_base.py --folds K, seed 0) are written to data/bench/<set>/train_lst,
each model is trained on each fold with all of the set's features, and a table gives per set and model
the mean ± std over folds of the best validation weighted F1 and the seconds per epoch.

Without --sets, on the demo data over seeds 0-4:

Rows: the default `moe` on the default features, `auto_attention` on the same features, every demo
feature alone (default `moe` with one expert), and a standardised scikit-learn logistic regression on all
default features concatenated (C chosen by 3-fold CV on the training part), the simplest strong baseline.
"""
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

from benchmarks.demo_inputs import ensure_demo  # noqa: E402
from toolkit.errors import ArgumentParser, bounded, cli  # noqa: E402
from toolkit.io import TRAIN_KEY, VALID_KEY  # noqa: E402


def demo_features(registry):
    """Every registered demo feature (config.py's ``demo-*`` names), in registration order."""
    return [name for name in registry.features if name.startswith("demo-")]


def run_config(settings, extra):
    """The TrainConfig of one run: the benchmark's ``settings`` (TrainConfig fields; the model's under
    "hparams"), under the user's train.py flags ``extra`` (given after --)."""
    from engine.flags import parse_config

    return parse_config(list(extra), under=settings)


def train_f1(registry, seed, feats, extra, model="moe"):
    import engine

    settings = {"dataset": f"seed{seed}", "seed": seed, "model": model, "feat": list(feats), "no_plots": True, "no_progress": True,
                "run_dir": os.path.join(REPO, "saved", "bench_quality", model, "+".join(feats), f"seed{seed}")}
    return engine.run(run_config(settings, extra), registry).best_f1


def logreg_f1(registry, seed, feats):
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from dataloader.feature_store import load_features
    from toolkit.io import cache_folder, load_split, split_path

    split = load_split(split_path(registry.train_lst, f"seed{seed}"))
    tr, va = split[TRAIN_KEY], split[VALID_KEY]
    arrays, rows = load_features(registry.lookup(feats), tr["names"] + va["names"], cache_folder(registry.cache_dir))
    x = np.concatenate([arrays[f][rows] for f in feats], axis=1)
    n = len(tr["names"])
    clf = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=[0.001, 0.003, 0.01, 0.03, 0.1], cv=3, max_iter=2000))
    clf.fit(x[:n], tr["emos"])
    return f1_score(va["emos"], clf.predict(x[n:]), average="weighted")


def row(label, scores):
    return f"| {label:<42} | {np.mean(scores):.4f} ± {np.std(scores):.4f} | {' '.join(f'{s:.3f}' for s in scores)} |"


def set_folds(bench, k):
    """Write (or refresh) the set's stratified fold0..fold{k-1}.npy (preprocess/mer2025_base.py, in a process
    that reads the set's registry for its classes); returns their folder."""
    from benchmarks.datasets import run_script

    run_script(bench, ["preprocess/mer2025_base.py", "--label_csv", bench.label_csv, "--folds", str(k), "--stratify",
                       "--emo_rule", bench.emo_rule, "--save_root", bench.train_lst, "--overwrite"])
    return bench.train_lst


def fold_run(bench, fold, model, epochs, extra, run_root, tuned=None):
    """Train ``model`` on one fold of ``bench`` in-process (the set's own registry); returns (best valid weighted
    F1, seconds per epoch). ``tuned``: a model-only YAML (``model_only``) whose settings the run takes."""
    import engine
    from engine.flags import read_config_file

    settings = {"dataset": f"fold{fold}", "train_lst": bench.train_lst, "emo_rule": bench.emo_rule, "model": model,
                "feat": list(bench.features), "epochs": epochs, "seed": 0,
                "run_dir": os.path.join(run_root, bench.name, model, f"fold{fold}"), "overwrite": True, "no_plots": True,
                "no_progress": True}
    base = read_config_file(tuned) if tuned else {}
    result = engine.run(run_config({**base, **settings}, extra), bench.registry(), quiet=True)
    return result.best_f1, result.seconds_per_epoch


def compare(benches, models, folds, epochs, extra=(), run_root=None):
    """{(set, model): (F1 per fold, seconds per epoch per fold)} for BenchSets; prints a row each."""
    run_root = run_root or os.path.join(REPO, "saved", "bench_quality", "sets")
    results = {}
    for bench in benches:
        set_folds(bench, folds)
        for model in models:
            runs = [fold_run(bench, k, model, epochs, extra, run_root) for k in range(folds)]
            results[bench.name, model] = ([r[0] for r in runs], [r[1] for r in runs])
            print(set_row(bench.name, model, *results[bench.name, model]), flush=True)
    return results


def tune_on_set(bench, model, opts, run_root):
    """Optuna search (tune.py, in a process that reads the set's registry) for ``model`` on the set's first
    --tune_folds folds; the path of its best.yaml, or None when every trial was pruned. An existing study in
    the same folder is resumed."""
    from benchmarks.datasets import run_script

    out = os.path.join(run_root, bench.name, model, "tune")
    run_script(bench, ["tune.py", "--model", model, "--feat", ",".join(bench.features), "--trials", str(opts.tune), "--folds",
                       str(opts.tune_folds), "--epochs", str(opts.tune_epochs), "--sampler_seed", "0", "--study",
                       f"{bench.name}-{model}", "--out", out, "--", "--train_lst", bench.train_lst, "--emo_rule", bench.emo_rule])
    best = os.path.join(out, "best.yaml")
    return best if os.path.isfile(best) else None


def model_yaml(best_yaml):
    """Where model_only writes the model part of a best.yaml: best.model.yaml beside it."""
    return best_yaml.replace(".yaml", ".model.yaml")


def model_only(best_yaml):
    """The model and optimiser settings of a best.yaml, without its data (features, split folder, classes),
    so the setting tuned on one set can be trained on another; written to model_yaml(best_yaml)."""
    import yaml

    from toolkit.io import read_yaml, save_text

    settings = read_yaml(best_yaml, "tune.py result", "rerun the tuning")
    data_keys = {"feat", "train_lst", "emo_rule", "folds", "epochs", "seed", "dataset", "run_dir"}
    out_path = model_yaml(best_yaml)
    save_text(out_path, yaml.safe_dump({k: v for k, v in settings.items() if k not in data_keys}, sort_keys=False))
    return out_path


def default_and_tuned(benches, models, opts, run_root):
    """{(set, model): {"default": (f1s, secs), "tuned": (f1s, secs), "best_yaml": path}}, kept in
    results.json under run_root so an interrupted benchmark resumes where it stopped."""
    import json

    from toolkit.io import save_json

    path = os.path.join(run_root, "results.json")
    settings = {k: getattr(opts, k) for k in ("folds", "epochs", "tune", "tune_folds", "tune_epochs", "extra")}
    done = json.load(open(path)) if os.path.isfile(path) else {}
    if done.get("settings") != settings:  # results of other settings are not resumed
        done = {"settings": settings}
    for bench in benches:
        set_folds(bench, opts.folds)
        for model in models:
            key = f"{bench.name}|{model}"
            if key not in done:
                default = [fold_run(bench, k, model, opts.epochs, opts.extra, run_root) for k in range(opts.folds)]
                best = tune_on_set(bench, model, opts, run_root)
                tuned = [fold_run(bench, k, model, opts.epochs, opts.extra, os.path.join(run_root, "tuned"), model_only(best))
                         for k in range(opts.folds)] if best else default
                done[key] = {"default": list(zip(*default)), "tuned": list(zip(*tuned)), "best_yaml": best}
                save_json(path, done)
            print(tuned_row(bench.name, model, done[key]), flush=True)
    return done


def tuned_row(name, model, result):
    (f1s, secs), (tuned, _) = result["default"], result["tuned"]
    return (f"| {name:<9} | {model:<15} | {np.mean(f1s):.4f} ± {np.std(f1s):.4f} | {np.mean(tuned):.4f} ± {np.std(tuned):.4f} | "
            f"{np.mean(secs):7.3f} |")


def cross_sets(benches, results, opts, run_root, model="moe"):
    """The default and each set's tuned ``model`` setting trained on every set: mean F1 over folds, the rank
    of each setting on each set, and the mean rank (the rule for choosing defaults)."""
    settings = {"default": None}
    settings.update({f"tuned on {b.name}": model_yaml(results[f"{b.name}|{model}"]["best_yaml"])
                     for b in benches if results.get(f"{b.name}|{model}", {}).get("best_yaml")})
    table = {}
    for bench in benches:
        set_folds(bench, opts.folds)
        for label, tuned in settings.items():
            key = f"{bench.name}|{model}"
            if label == "default" or label == f"tuned on {bench.name}":
                f1s = results[key]["default" if label == "default" else "tuned"][0]
            else:
                root = os.path.join(run_root, "cross", label.replace(" ", "_"))
                f1s = [fold_run(bench, k, model, opts.epochs, opts.extra, root, tuned)[0] for k in range(opts.folds)]
            table[label, bench.name] = (np.mean(f1s), np.std(f1s))
    names = [b.name for b in benches]
    ranks = {label: [1 + sum(table[o, n][0] > table[label, n][0] for o in settings) for n in names] for label in settings}
    print(f"\n{model} settings across sets (mean ± std over {opts.folds} folds; rank per set; mean rank)")
    print("| setting | " + " | ".join(names) + " | mean rank |\n|---|" + "---|" * len(names) + "---:|")
    for label in sorted(settings, key=lambda s: np.mean(ranks[s])):
        cells = " | ".join(f"{table[label, n][0]:.4f} ± {table[label, n][1]:.4f} ({r})" for n, r in zip(names, ranks[label]))
        print(f"| {label} | {cells} | {np.mean(ranks[label]):.2f} |")


def set_row(name, model, f1s, secs):
    return (f"| {name:<9} | {model:<15} | {np.mean(f1s):.4f} ± {np.std(f1s):.4f} | {np.mean(secs):7.3f} | "
            f"{' '.join(f'{f:.3f}' for f in f1s)} |")


def across_sets(opts):
    """The --sets table: set × model → mean ± std weighted F1 over folds, seconds per epoch."""
    from benchmarks import datasets

    start = time.time()
    benches = [datasets.build(name) for name in opts.sets]
    if opts.tune:
        run_root = opts.run_root or os.path.join(REPO, "saved", "bench_quality", "tuned_sets")
        results = default_and_tuned(benches, opts.models, opts, run_root)
        print(f"\nbest validation weighted F1 over {opts.folds} stratified folds, at most {opts.epochs} epochs; tuned: "
              f"{opts.tune} Optuna trials on {opts.tune_folds} folds × {opts.tune_epochs} epochs ({time.time() - start:.0f}s)")
        print("| set | model | default | tuned | s/epoch |\n|---|---|---|---|---:|")
        print("\n".join(tuned_row(*key.split("|"), r) for key, r in results.items() if key != "settings"))
        if "moe" in opts.models:
            cross_sets(benches, results, opts, run_root)
        return
    results = compare(benches, opts.models, opts.folds, opts.epochs, opts.extra, opts.run_root)
    print(f"\nbest validation weighted F1 over {opts.folds} stratified folds, at most {opts.epochs} epochs "
          f"({time.time() - start:.0f}s)")
    print(f"| {'set':<9} | {'model':<15} | mean ± std      | s/epoch | per fold |\n"
          f"|{'-' * 11}|{'-' * 17}|-----------------|---------|----------|")
    print("\n".join(set_row(name, model, *r) for (name, model), r in results.items()))


def on_demo(opts):
    """The demo table over seeds (the behaviour without --sets), on config.py's registry."""
    from dataloader.registry import Registry

    registry = Registry.from_config()
    ensure_demo(opts.seeds, registry)
    start = time.time()
    rows = []
    feats, demo = list(registry.default_features), demo_features(registry)
    rows.append(row(f"moe (default, {len(feats)} features)", [train_f1(registry, s, feats, opts.extra) for s in opts.seeds]))
    rows.append(row("auto_attention (same features)", [train_f1(registry, s, feats, opts.extra, "auto_attention") for s in opts.seeds]))
    rows.append(row("moe, all demo features", [train_f1(registry, s, demo, opts.extra) for s in opts.seeds]))
    rows.append(row("logistic regression, default features concat", [logreg_f1(registry, s, feats) for s in opts.seeds]))
    if not opts.skip_single:
        for feat in demo:
            rows.append(row(f"single: {feat}", [train_f1(registry, s, [feat], opts.extra) for s in opts.seeds]))
    print(f"\nweighted F1 on the validation split, seeds {opts.seeds} ({time.time() - start:.0f}s)")
    print(f"| {'model':<42} | mean ± std      | per seed |\n|{'-' * 44}|-----------------|----------|")
    print("\n".join(rows))


@cli
def main(argv=None):
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="demo table: the split seeds")
    parser.add_argument("--skip_single", action="store_true", help="skip the single-feature rows")
    parser.add_argument("--sets", nargs="+", default=None, choices=["demo", "demo-alt", "mfeat"],
                        help="benchmark these data sets over folds instead of the demo table")
    parser.add_argument("--models", nargs="+", default=["moe"], help="models trained on each set (with --sets)")
    parser.add_argument("--folds", type=bounded(int, 2), default=5, help="stratified folds per set (with --sets)")
    parser.add_argument("--epochs", type=bounded(int, 1), default=100, help="most epochs per fold (with --sets)")
    parser.add_argument("--tune", type=bounded(int, 1), default=None, metavar="N",
                        help="with --sets: also tune each model (N Optuna trials) and train its best setting on the K folds")
    parser.add_argument("--run_root", default=None, help="folder of the runs (and with --tune results.json; default "
                        "saved/bench_quality/sets, with --tune .../tuned_sets); one per process when several run at once")
    parser.add_argument("--tune_folds", type=bounded(int, 2), default=3, help="folds each trial trains (with --tune)")
    parser.add_argument("--tune_epochs", type=bounded(int, 1), default=30, help="most epochs per fold in a trial (with --tune)")
    parser.add_argument("extra", nargs="*", help="extra train.py flags for the neural rows (after --)")
    opts = parser.parse_args(argv)
    if opts.sets:
        across_sets(opts)
    else:
        on_demo(opts)


if __name__ == "__main__":
    main()
