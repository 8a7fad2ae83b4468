"""Does the unimodal sweep rank the features right? Per set, the sweep's ranking (its default preset and the
published one) against a reference ranking, side by side: Spearman, top-2 agreement per modality, time, and
the reference's agreement with itself between its even- and odd-indexed seeds (a ceiling for the others).

    OMP_NUM_THREADS=1 python benchmarks/bench_ranking.py --sets demo demo-alt demo-small demo-clips --seeds 0 1 2 3 4

Sets: ``demo`` and ``demo-alt`` (benchmarks/datasets.py; the demo under data/demo), ``demo-small`` (the demo's
splits cut to 100 training clips, stratified, the same 300 validation clips) and ``demo-clips`` (the raw-clip
demo's six features extracted from a larger release of its clips, ``--clips`` of them, about 3/4 labeled: made
once under data/bench/demo-clips-N by `CLIPS=N DATA=... EXTRACT_ONLY=1 bash run_demo_clips.sh`, about 3 minutes
for 400; the labeled clips with every feature count). The raw-clip demo's own 96 clips leave 15 validation
clips per split, where one clip moves a feature's F1 by about 0.07: too few to order features 0.01 apart. Each
set's splits <set>/train_lst/seed{N}.npy are written once (preprocess/mer2025_base.py --stratify).

Reference: every feature trained alone (one expert, the model's defaults) with settings tuned for it: learning
rates 1e-3, 3e-3 and 1e-2, each for up to 200 epochs with early stopping on validation (patience 40: the best
epoch is the search over epochs), batch 256 or a quarter of the training set when that is smaller; a feature
scores its best learning rate's mean over the seeds of the best-epoch validation weighted F1, on the sweep's
own split files and seeds. Trained in-process (engine.fit); its runs are kept in <out>/reference.json, so a
rerun only trains what is missing.
Sweep: `bash run_eval_unimodal.sh` in a child process that reads the set's registry (FORCE=1, JOBS=1,
PRESET=default or published); a feature scores its mean F1 over the seeds. Times are wall-clock seconds on one
thread each (set OMP_NUM_THREADS=1); the feature caches are built before anything is timed.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks import datasets  # noqa: E402

REFERENCE_LRS = (1e-3, 3e-3, 1e-2)
REFERENCE_EPOCHS, REFERENCE_PATIENCE, REFERENCE_BATCH = 200, 40, 256
SMALL_TRAIN = 100  # training clips of demo-small
PRESETS = ("default", "published")
DEMO_ROOT = os.path.join(REPO, "data", "demo")
CLIPS = 400  # clips of the demo-clips release
CLIPS_DONE = "EXTRACTED"  # written in its root once its features are extracted


def seed_splits(bench, seeds):
    """Write the set's stratified seed splits that are missing (in a process that reads its registry)."""
    from toolkit.io import split_path

    for seed in seeds:
        if not os.path.exists(split_path(bench.train_lst, f"seed{seed}")):
            datasets.run_script(bench, ["preprocess/mer2025_base.py", "--label_csv", bench.label_csv, "--seed", str(seed),
                                        "--stratify", "--save_root", bench.train_lst])


def cut_split(source, target, n_train, seed):
    """``source``'s split with its training part cut to ``n_train`` clips, every class in proportion (at least 2
    each), the validation part unchanged; written to ``target``."""
    from toolkit.io import TRAIN_KEY, VALID_KEY, load_split, save_split

    split = load_split(source)
    train = split[TRAIN_KEY]
    emos = np.array(train["emos"])
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(emos, return_counts=True)
    quota = np.maximum(2, np.round(counts / counts.sum() * n_train).astype(int))
    while quota.sum() > n_train:
        quota[np.argmax(quota)] -= 1
    keep = sorted(i for c, q in zip(classes, quota) for i in rng.choice(np.flatnonzero(emos == c), q, replace=False))
    save_split(target, {key: [values[i] for i in keep] for key, values in train.items()}, split[VALID_KEY])


def demo_small(seeds):
    """The demo with ``SMALL_TRAIN`` training clips per split (its own split folder)."""
    from toolkit.io import split_path

    demo = datasets.demo(DEMO_ROOT)
    seed_splits(demo, seeds)
    folder = os.path.join(datasets.BENCH_ROOT, "demo-small", "train_lst")
    for seed in seeds:
        target = split_path(folder, f"seed{seed}")
        if not os.path.exists(target):
            cut_split(split_path(demo.train_lst, f"seed{seed}"), target, SMALL_TRAIN, seed)
    return datasets.BenchSet("demo-small", demo.root, demo.label_csv, demo.emo_rule, demo.classes, demo.features, folder)


def demo_clips(clips):
    """The raw-clip demo's features on a release of ``clips`` clips, made (once) by the demo's own script."""
    from dataloader.registry import MANIFEST_NAME, read_manifest

    root = os.path.join(datasets.BENCH_ROOT, f"demo-clips-{clips}")
    manifest = os.path.join(root, "features", MANIFEST_NAME)
    if not os.path.exists(os.path.join(root, CLIPS_DONE)):
        print(f"demo-clips: making a release of {clips} clips and extracting its features in {root}", flush=True)
        env = {**os.environ, "PYTHON": sys.executable, "CLIPS": str(clips), "DATA": root, "EXTRACT_ONLY": "1"}
        done = subprocess.run(["bash", "run_demo_clips.sh"], cwd=REPO, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"demo-clips: run_demo_clips.sh failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
        from toolkit.io import save_text

        save_text(os.path.join(root, CLIPS_DONE), "features extracted by run_demo_clips.sh\n")
    specs = list(read_manifest(manifest).values())
    return datasets.BenchSet(f"demo-clips-{clips}", root, complete_labels(root, specs), "MER",
                             list(datasets.make_demo_data.CLASSES), {s.name: (s.modality, s.dim) for s in specs})


def complete_labels(root, specs):
    """<root>/labels_complete.csv: the labeled clips that have a file of every feature in ``specs`` (one clip
    has no audio stream, one no subtitle: a unimodal run of that feature could not train on them)."""
    import pandas as pd

    from toolkit.io import save_text

    path = os.path.join(root, "labels_complete.csv")
    labels = pd.read_csv(os.path.join(root, "track1_train_disdim.csv"))
    complete = labels[[all(os.path.exists(os.path.join(s.folder, f"{name}.npy")) for s in specs) for name in labels["name"]]]
    save_text(path, complete.to_csv(index=False))
    return path


def bench_set(name, seeds, clips):
    if name == "demo-small":
        return demo_small(seeds)
    bench = demo_clips(clips) if name == "demo-clips" else datasets.demo(DEMO_ROOT) if name == "demo" else datasets.build(name)
    seed_splits(bench, seeds)
    return bench


def reference_config(bench, registry, feature, seed):
    """The resolved TrainConfig of one reference run (its learning rate is set per fit)."""
    from engine import TrainConfig

    return TrainConfig(feat=[feature], dataset=f"seed{seed}", seed=seed, emo_rule=bench.emo_rule, epochs=REFERENCE_EPOCHS,
                       patience=REFERENCE_PATIENCE, batch_size=min(REFERENCE_BATCH, max(1, n_train(bench, seed) // 4)), no_progress=True,
                       no_plots=True).resolved(registry)


def run_key(bench, feature, seed, lr):
    """The key of one reference run in the store."""
    return f"{bench.name}|{feature}|{seed}|{lr:g}"


def reference(bench, seeds, store):
    """{feature: (best mean F1, its lr)} and the seconds the missing runs took; ``store`` (a dict kept on disk)
    holds every run's F1 and seconds under "set|feature|seed|lr"."""
    import dataclasses

    from engine import fit, load_data

    registry = bench.registry()
    for feature in bench.features:
        for seed in seeds:
            keys = {lr: run_key(bench, feature, seed, lr) for lr in REFERENCE_LRS}
            if all(key in store for key in keys.values()):
                continue
            cfg = reference_config(bench, registry, feature, seed)
            data = load_data(cfg, registry)
            for lr, key in keys.items():
                start = time.perf_counter()
                result = fit(dataclasses.replace(cfg, lr=lr), data)
                store[key] = {"f1": result.best_f1, "seconds": time.perf_counter() - start, "best_epoch": result.best_epoch}
                print(f"  reference {bench.name} {feature} seed{seed} lr {lr:g}: {result.best_f1:.4f} "
                      f"(epoch {result.best_epoch}, {store[key]['seconds']:.1f}s)", flush=True)
            store.save()
    seconds = sum(store[run_key(bench, feature, seed, lr)]["seconds"]
                  for feature in bench.features for seed in seeds for lr in REFERENCE_LRS)
    return reference_scores(bench, seeds, store), seconds


def reference_scores(bench, seeds, store):
    """{feature: (its best learning rate's mean F1 over ``seeds``, that lr)} from the stored reference runs."""
    scores = {}
    for feature in bench.features:
        means = {lr: np.mean([store[run_key(bench, feature, seed, lr)]["f1"] for seed in seeds]) for lr in REFERENCE_LRS}
        lr = max(REFERENCE_LRS, key=means.get)
        scores[feature] = (float(means[lr]), lr)
    return scores


def self_agreement(bench, seeds, store):
    """Spearman of the reference on the even-indexed seeds against the reference on the odd-indexed ones: how
    well the reference ranking reproduces on other splits, a ceiling for any ranking's agreement with it (on
    half the seeds each, so a little below the ceiling at all seeds). None with fewer than 4 seeds."""
    if len(seeds) < 4:
        return None
    halves = [{f: v for f, (v, _) in reference_scores(bench, half, store).items()} for half in (seeds[0::2], seeds[1::2])]
    return spearman(*halves)


class Store(dict):
    """A dict saved as JSON (written to a temporary name, then renamed)."""

    def __init__(self, path):
        super().__init__(json.load(open(path, encoding="utf-8")) if os.path.exists(path) else {})
        self.path = path

    def save(self):
        from toolkit.io import save_json

        save_json(self.path, dict(self))


def sweep(bench, preset, seeds, save_root):
    """({feature: mean F1}, wall seconds) of `bash run_eval_unimodal.sh` with ``preset`` on the set."""
    from toolkit.results import find_runs, summarize_runs

    env = {**bench.child_env(), "PYTHON": sys.executable, "FEATS": " ".join(bench.features), "SEEDS": " ".join(map(str, seeds)),
           "SAVE_ROOT": save_root, "FORCE": "1", "JOBS": "1", "PRESET": preset}
    start = time.perf_counter()
    subprocess.run(["bash", "run_eval_unimodal.sh"], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    table = summarize_runs(find_runs([save_root]))
    return dict(zip(table["features"], table["f1_mean"])), seconds


def warm_caches(bench, seeds):
    """Build the packed feature caches of every split before anything is timed."""
    from engine import TrainConfig, load_data

    registry = bench.registry()
    for seed in seeds:
        cfg = TrainConfig(feat=list(bench.features), dataset=f"seed{seed}", emo_rule=bench.emo_rule).resolved(registry)
        load_data(cfg, registry)


def ranks(scores):
    """{feature: rank} (1 = best; ties share the mean rank)."""
    import pandas as pd

    series = pd.Series(scores)
    return series.rank(ascending=False, method="average").to_dict()


def spearman(a, b):
    """Spearman's rank correlation of two {feature: score} dicts over their common features."""
    common = sorted(set(a) & set(b))
    ra, rb = ranks({f: a[f] for f in common}), ranks({f: b[f] for f in common})
    x, y = np.array([ra[f] for f in common]), np.array([rb[f] for f in common])
    return float(np.corrcoef(x, y)[0, 1])


def top_two(features, scores):
    return set(sorted(features, key=lambda f: -scores[f])[:2])


def top2_agreement(bench, scores, ref):
    """(modalities whose 2 best features are the same set as the reference's, modalities with more than 2
    features, where that can differ)."""
    same = total = 0
    for modality in sorted({modality for modality, _ in bench.features.values()}):
        feats = [f for f, (m, _) in bench.features.items() if m == modality]
        if len(feats) > 2:
            total += 1
            same += top_two(feats, scores) == top_two(feats, ref)
    return same, total


def report_set(bench, ref, sides):
    """Print the set's features side by side and return its summary row."""
    ref_scores = {f: v for f, (v, _) in ref.items()}
    ref_rank = ranks(ref_scores)
    side_ranks = {name: ranks(scores) for name, (scores, _) in sides.items()}
    print(f"\n{bench.name}: reference ranking (tuned per feature) against the sweep's presets (mean F1 over seeds, rank)")
    head = " | ".join(f"{name} F1 (rank)" for name in sides)
    print(f"| feature | modality | reference F1 (rank, lr) | {head} |")
    print("|---|---|---|" + "---|" * len(sides))
    for feature in sorted(ref_scores, key=lambda f: ref_rank[f]):
        cells = " | ".join(f"{sides[name][0][feature]:.4f} ({side_ranks[name][feature]:g})" for name in sides)
        print(f"| {feature} | {bench.features[feature][0]} | {ref_scores[feature]:.4f} ({ref_rank[feature]:g}, {ref[feature][1]:g}) | {cells} |")
    return {name: (spearman(scores, ref_scores), top2_agreement(bench, scores, ref_scores), seconds)
            for name, (scores, seconds) in sides.items()}


def n_train(bench, seed):
    from toolkit.io import TRAIN_KEY, load_split, split_path

    return len(load_split(split_path(bench.train_lst, f"seed{seed}"))[TRAIN_KEY]["names"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", default=["demo", "demo-alt", "demo-small", "demo-clips"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--clips", type=int, default=CLIPS, help="clips of the demo-clips release (about 3/4 labeled)")
    p.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    p.add_argument("--out", default=os.path.join(REPO, "saved", "bench_ranking"), help="folder of reference.json")
    opts = p.parse_args()
    from toolkit.threads import apply_threads

    apply_threads(1, "one thread, as the figures were measured")  # kept by the runs of this process
    store = Store(os.path.join(opts.out, "reference.json"))
    rows = []
    for name in opts.sets:
        bench = bench_set(name, opts.seeds, opts.clips)
        warm_caches(bench, opts.seeds)
        ref, ref_seconds = reference(bench, opts.seeds, store)
        ceiling = self_agreement(bench, opts.seeds, store)
        with tempfile.TemporaryDirectory(prefix="bench_ranking_") as tmp:
            sides = {preset: sweep(bench, preset, opts.seeds, os.path.join(tmp, preset)) for preset in opts.presets}
        rows.append((bench, ref_seconds, ceiling, report_set(bench, ref, sides)))
    print(f"\nsummary (seeds {' '.join(map(str, opts.seeds))}; Spearman and top-2 against the reference; wall seconds)")
    print("| set | train clips | features | " + " | ".join(f"{p}: Spearman | {p}: top-2 | {p}: s" for p in opts.presets)
          + " | reference: s | reference vs itself (even vs odd seeds) |")
    print("|---|---:|---:|" + "---:|---|---:|" * len(opts.presets) + "---:|---:|")
    for bench, ref_seconds, ceiling, result in rows:
        cells = " | ".join(f"{rho:.3f} | {same}/{total} | {seconds:.0f}" for rho, (same, total), seconds in result.values())
        itself = "–" if ceiling is None else f"{ceiling:.3f}"
        print(f"| {bench.name} | {n_train(bench, opts.seeds[0])} | {len(bench.features)} | {cells} | {ref_seconds:.0f} | {itself} |")


if __name__ == "__main__":
    main()
