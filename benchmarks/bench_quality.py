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
import contextlib
import io
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

import config  # noqa: E402
from benchmarks.demo_inputs import ensure_demo  # noqa: E402
from toolkit.errors import ArgumentParser, bounded, cli  # noqa: E402

DEMO_FEATURES = [n for d in (config.FEAT_VIDEO_DICT, config.FEAT_AUDIO_DICT, config.FEAT_TEXT_DICT) for n in d if n.startswith("demo-")]


def train_f1(seed, feats, extra, model="moe"):
    import engine
    import train

    argv = ["--dataset", f"seed{seed}", "--seed", str(seed), "--model", model, "--feat", ",".join(feats),
            "--run_dir", os.path.join(REPO, "saved", "bench_quality", model, "+".join(feats), f"seed{seed}"),
            "--no_plots", "--no_progress"] + extra
    return engine.run(train.parse_args(argv)).best_f1


def logreg_f1(seed, feats):
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from dataloader import lookup_features
    from dataloader.feature_store import load_features
    from toolkit.io import load_split, resolve

    split = load_split(os.path.join(resolve(config.PATH_TO_TRAIN_LST), f"seed{seed}.npy"))
    tr, va = split["train_info"], split["valid_info"]
    arrays, rows = load_features(lookup_features(feats), tr["names"] + va["names"], resolve(config.PATH_TO_CACHE))
    x = np.concatenate([arrays[f][rows] for f in feats], axis=1)
    n = len(tr["names"])
    clf = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=[0.001, 0.003, 0.01, 0.03, 0.1], cv=3, max_iter=2000))
    clf.fit(x[:n], tr["emos"])
    return f1_score(va["emos"], clf.predict(x[n:]), average="weighted")


def row(label, scores):
    return f"| {label:<42} | {np.mean(scores):.4f} ± {np.std(scores):.4f} | {' '.join(f'{s:.3f}' for s in scores)} |"


def set_folds(bench, k):
    """Write (or refresh) the set's stratified fold0..fold{k-1}.npy; returns their folder."""
    from preprocess import mer2025_base

    lst = os.path.join(bench.root, "train_lst")
    with contextlib.redirect_stdout(io.StringIO()):  # its count table; the folds are stratified
        mer2025_base.main(["--label_csv", bench.label_csv, "--folds", str(k), "--stratify", "--emo_rule", bench.emo_rule,
                           "--save_root", lst, "--overwrite"])
    return lst


def fold_run(bench, lst, fold, model, epochs, extra, run_root):
    """Train ``model`` on one fold of ``bench`` in-process; returns (best valid weighted F1, seconds per epoch)."""
    import engine
    import train

    argv = ["--dataset", f"fold{fold}", "--train_lst", lst, "--emo_rule", bench.emo_rule, "--model", model,
            "--feat", ",".join(bench.features), "--epochs", str(epochs), "--seed", "0",
            "--run_dir", os.path.join(run_root, bench.name, model, f"fold{fold}"),
            "--overwrite", "--no_plots", "--no_progress"] + extra
    result = engine.run(train.parse_args(argv), quiet=True)
    return result.best_f1, result.seconds_per_epoch


def compare(benches, models, folds, epochs, extra=(), run_root=None):
    """{(set, model): (F1 per fold, seconds per epoch per fold)} for registered BenchSets; prints a row each."""
    run_root = run_root or os.path.join(REPO, "saved", "bench_quality", "sets")
    results = {}
    for bench in benches:
        lst = set_folds(bench, folds)
        for model in models:
            runs = [fold_run(bench, lst, k, model, epochs, list(extra), run_root) for k in range(folds)]
            results[bench.name, model] = ([r[0] for r in runs], [r[1] for r in runs])
            print(set_row(bench.name, model, *results[bench.name, model]), flush=True)
    return results


def tune_on_set(bench, lst, model, opts, run_root):
    """Optuna search (tune.py, in-process) for ``model`` on the set's first --tune_folds folds; the path of
    its best.yaml, or None when every trial was pruned. An existing study in the same folder is resumed."""
    import tune

    out = os.path.join(run_root, bench.name, model, "tune")
    argv = ["--model", model, "--feat", ",".join(bench.features), "--trials", str(opts.tune), "--folds",
            str(opts.tune_folds), "--epochs", str(opts.tune_epochs), "--sampler_seed", "0", "--study", f"{bench.name}-{model}",
            "--out", out, "--", "--train_lst", lst, "--emo_rule", bench.emo_rule]
    with contextlib.redirect_stdout(io.StringIO()):
        tune.main(argv)
    best = os.path.join(out, "best.yaml")
    return best if os.path.isfile(best) else None


def model_yaml(best_yaml):
    """Where model_only writes the model part of a best.yaml: best.model.yaml beside it."""
    return best_yaml.replace(".yaml", ".model.yaml")


def model_only(best_yaml):
    """The model and optimiser settings of a best.yaml, without its data (features, split folder, classes),
    so the setting tuned on one set can be trained on another; written to model_yaml(best_yaml)."""
    import yaml

    from toolkit.io import save_text

    with open(best_yaml) as f:
        settings = yaml.safe_load(f.read())
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
        lst = set_folds(bench, opts.folds)
        for model in models:
            key = f"{bench.name}|{model}"
            if key not in done:
                default = [fold_run(bench, lst, k, model, opts.epochs, list(opts.extra), run_root) for k in range(opts.folds)]
                best = tune_on_set(bench, lst, model, opts, run_root)
                config_flag = ["--config", model_only(best)] if best else []
                tuned = [fold_run(bench, lst, k, model, opts.epochs, config_flag + list(opts.extra),
                                  os.path.join(run_root, "tuned")) for k in range(opts.folds)] if best else default
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
    settings = {"default": []}
    settings.update({f"tuned on {b.name}": ["--config", model_yaml(results[f"{b.name}|{model}"]["best_yaml"])]
                     for b in benches if results.get(f"{b.name}|{model}", {}).get("best_yaml")})
    table = {}
    for bench in benches:
        lst = set_folds(bench, opts.folds)
        for label, flags in settings.items():
            key = f"{bench.name}|{model}"
            if label == "default" or label == f"tuned on {bench.name}":
                f1s = results[key]["default" if label == "default" else "tuned"][0]
            else:
                root = os.path.join(run_root, "cross", label.replace(" ", "_"))
                f1s = [fold_run(bench, lst, k, model, opts.epochs, flags + list(opts.extra), root)[0] for k in range(opts.folds)]
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
    benches = [datasets.build(name).register() for name in opts.sets]
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
    """The demo table over seeds (the behaviour without --sets)."""
    ensure_demo(opts.seeds)
    start = time.time()
    rows = []
    feats = list(config.DEFAULT_FEATURES)
    rows.append(row(f"moe (default, {len(feats)} features)", [train_f1(s, feats, opts.extra) for s in opts.seeds]))
    rows.append(row("auto_attention (same features)", [train_f1(s, feats, opts.extra, "auto_attention") for s in opts.seeds]))
    rows.append(row("moe, all demo features", [train_f1(s, DEMO_FEATURES, opts.extra) for s in opts.seeds]))
    rows.append(row("logistic regression, default features concat", [logreg_f1(s, feats) for s in opts.seeds]))
    if not opts.skip_single:
        for feat in DEMO_FEATURES:
            rows.append(row(f"single: {feat}", [train_f1(s, [feat], opts.extra) for s in opts.seeds]))
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
