"""Which fused feature set does best on held-out clips: all features, the sweep's top-1 or top-2 per modality,
or greedy forward selection (select_features.py)?

    OMP_NUM_THREADS=1 python benchmarks/bench_selection.py --sets demo demo-alt demo-small

Per set, 3 stratified folds of the labeled clips (preprocess/mer2025_base.py --folds 3 --stratify): the unimodal
sweep (default preset) on the folds ranks the features for top-n; greedy forward selection runs on the same folds.
Each chosen set trains the default `moe` on the 3 folds (train.py's settings); the folds' mean validation F1 is
what chose it, and the held-out figure is the weighted F1 of the 3 fold models' averaged probabilities on the
set's test clips (demo, demo-alt: 1,000 clips never used for training or choosing; demo-small: its 100 labeled
clips are a cut of the demo's, tested on the demo's test clips).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks import bench_ranking, datasets  # noqa: E402

FOLDS = 3


def labeled_set(name):
    """The BenchSet whose label CSV is the labeled pool; demo-small: the 100 training clips of its seed0 cut."""
    if name != "demo-small":
        return bench_ranking.bench_set(name, [0])
    import pandas as pd

    from toolkit.io import TRAIN_KEY, load_split, save_text, split_path

    small = bench_ranking.demo_small([0])
    train = load_split(split_path(small.train_lst, "seed0"))[TRAIN_KEY]
    folder = os.path.join(datasets.BENCH_ROOT, "demo-small")
    path = os.path.join(folder, "labels.csv")
    save_text(path, pd.DataFrame({"name": train["names"], "discrete": train["emos"], "valence": train["vals"]}).to_csv(index=False))
    return datasets.BenchSet("demo-small", small.root, path, small.emo_rule, small.classes, small.features,
                             os.path.join(folder, "folds"))


def write_folds(bench):
    from toolkit.io import split_path

    if not os.path.exists(split_path(bench.train_lst, f"fold{FOLDS - 1}")):
        datasets.run_script(bench, ["preprocess/mer2025_base.py", "--label_csv", bench.label_csv, "--folds", str(FOLDS),
                                    "--stratify", "--save_root", bench.train_lst])


def sweep_table(bench, root):
    """The default-preset sweep on the folds; returns its summary table's path."""
    env = {**bench.child_env(), "PYTHON": sys.executable, "FEATS": " ".join(bench.features), "DATASET_PREFIX": "fold",
           "SEEDS": " ".join(map(str, range(FOLDS))), "SAVE_ROOT": root, "FORCE": "1", "KEEP": "none"}
    subprocess.run(["bash", "run_eval_unimodal.sh"], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    datasets.run_script(bench, ["eval_avg_performance.py", "--root", root])
    return os.path.join(root, "unimodal_summary.csv")


def test_clips(bench):
    """(names, labels) of the held-out test clips (the demo's for demo-small)."""
    import pandas as pd

    root = bench_ranking.DEMO_ROOT if bench.name == "demo-small" else bench.root
    table = pd.read_csv(os.path.join(root, "test_labels.csv"))
    return table["name"].tolist(), table["discrete"].tolist()


def evaluate(bench, features, root):
    """(fold-mean valid F1, held-out weighted F1) of `moe` on ``features``, trained on the folds into ``root``."""
    import torch

    import engine
    from inference.predictor import load_runs, predict_runs
    from toolkit.metrics import emotion_metrics
    from toolkit.tables import encode_labels

    registry = bench.registry()
    cfg = engine.TrainConfig(feat=list(features), folds=FOLDS, emo_rule=bench.emo_rule, run_dir=root, save_model=True,
                             no_plots=True, no_progress=True)
    result = engine.run(cfg, registry, quiet=True)
    names, labels = test_clips(bench)
    runs = load_runs([r.run_dir for r in result.results], torch.device("cpu"))
    preds = predict_runs(runs, names, torch.device("cpu"), registry)
    y = encode_labels(labels, preds["classes"], "test labels")
    return result.summary["mean_f1"], emotion_metrics(y, preds["probs"].argmax(1), preds["classes"])["f1"]


def strategies(bench, root):
    """{strategy: (features, seconds to choose them)}."""
    from stages.selection import greedy_select
    from toolkit.results import MODALITY_LETTERS, top_features

    start = time.perf_counter()
    table = sweep_table(bench, os.path.join(root, "sweep"))
    sweep_seconds = time.perf_counter() - start
    letters = "".join(sorted({MODALITY_LETTERS[m] for m, _ in bench.features.values()}))
    chosen = {"all": (list(bench.features), 0.0)}
    for n in (1, 2):
        chosen[f"top-{n} per modality"] = (top_features(table, n, letters), sweep_seconds)
    start = time.perf_counter()
    selection = greedy_select({}, list(bench.features), FOLDS, bench.registry(), say=lambda *a, **k: None)
    chosen["greedy"] = (selection.features, time.perf_counter() - start)
    strict = strict_rule(selection)
    if strict is not None and strict != selection.features:
        chosen["greedy, current-set spread"] = (strict, chosen["greedy"][1])
    return chosen


def strict_rule(selection):
    """What the stricter stop rule (a gain above the current set's own fold spread) would have chosen on the same
    path, or None when the path stopped before that rule would have."""
    features = []
    for step in selection.steps:
        if step["gain"] <= step["current_spread"]:
            return features
        if not step["added"]:
            return None
        features.append(step["best"])
    return features


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", default=["demo", "demo-alt", "demo-small"])
    opts = p.parse_args()
    from toolkit.threads import apply_threads

    apply_threads(1, "one thread, as the figures were measured")  # kept by the runs of this process
    rows = []
    for name in opts.sets:
        bench = labeled_set(name)
        write_folds(bench)
        with tempfile.TemporaryDirectory(prefix="bench_selection_") as tmp:
            for strategy, (features, seconds) in strategies(bench, tmp).items():
                valid, test = evaluate(bench, features, os.path.join(tmp, strategy.replace(" ", "_")))
                rows.append((name, strategy, features, valid, test, seconds))
                print(f"{name} {strategy}: {len(features)} features, fold-mean valid F1 {valid:.4f}, held-out F1 {test:.4f} "
                      f"({', '.join(features)}; chosen in {seconds:.0f}s)", flush=True)
    print("\n| set | strategy | features | fold-mean valid F1 | held-out F1 | choice took |")
    print("|---|---|---|---:|---:|---:|")
    for name, strategy, features, valid, test, seconds in rows:
        print(f"| {name} | {strategy} | {len(features)}: {', '.join(features)} | {valid:.4f} | {test:.4f} | {seconds:.0f}s |")


if __name__ == "__main__":
    main()
