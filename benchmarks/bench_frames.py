"""Frame-level (temporal AU) experts and missing modalities on the demo data: mean ± std weighted F1 over seeds.

    python benchmarks/bench_frames.py [--seeds 0 1 2 3 4] [--parts a b c] [--fresh] [-- extra train.py flags]

(a) demo-au-FRM alone: the temporal expert vs the same frames mean-pooled into a 17-d vector
    (a registry entry with {"pool": "mean"}) fed to an utterance expert.
(b) the default MoE (4 utterance features) with and without the demo-au-FRM expert.
(c) data/demo_missing (make_demo_data.py --missing_rate 0.2: 20% of the clips lose their files per modality),
    default features: --allow_missing, --allow_missing --expert_dropout 0.2, and "drop incomplete clips"
    (train only on clips that have every feature). Every row is scored on ALL validation clips of the seed's
    split; the drop-incomplete model predicts clips with missing files with those experts masked (it is
    trained without masks, so masking is what it meets for the first time at validation).

Runs are kept under saved/bench_frames/<row>/seed<N> and reused unless --fresh, so an interrupted benchmark
resumes. The table is printed and written to saved/bench_frames/results.md.
"""
import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

from benchmarks.demo_inputs import DEMO, ensure_demo  # noqa: E402
from toolkit.io import TRAIN_KEY, VALID_KEY, resolve, split_path  # noqa: E402

MISSING = os.path.join(REPO, "data", "demo_missing")
OUT = os.path.join(REPO, "saved", "bench_frames")
AU = "demo-au-FRM"
AU_MEAN = "demo-au-mean-UTT"
MISSING_RATE = 0.2


def ensure_data(seeds, registry):
    if not os.path.isdir(os.path.join(DEMO, "features", AU)):
        subprocess.run([sys.executable, "preprocess/make_demo_data.py"], cwd=REPO, check=True)
    ensure_demo(seeds, registry)
    marker = os.path.join(MISSING, "DEMO_DATA.json")
    if not os.path.exists(marker) or json.load(open(marker)).get("missing_rate") != MISSING_RATE:
        subprocess.run([sys.executable, "preprocess/make_demo_data.py", "--out", MISSING, "--missing_rate", str(MISSING_RATE),
                        "--no_vlm"], cwd=REPO, check=True)


def frames_registry():
    """config.py's registry plus this benchmark's entries: the mean-pooled AU vector and ``miss-<name>``, the
    demo_missing copies of the default features."""
    import dataclasses

    from dataloader.feature_store import parse_entry
    from dataloader.registry import Registry

    registry = Registry.from_config()
    au = registry.lookup([AU])[0]
    mean = parse_entry(AU_MEAN, [au.dim, au.folder, {"pool": "mean"}], au.modality, f"bench_frames {AU_MEAN}")
    missing = [dataclasses.replace(spec, name=f"miss-{spec.name}", folder=os.path.join(MISSING, "features", spec.name))
               for spec in registry.lookup(list(registry.default_features))]
    return registry.with_features([mean, *missing], source="benchmarks/bench_frames.py")


def missing_lst(registry):
    return os.path.join(resolve(registry.train_lst), "demo_missing")


def missing_splits(registry, seed):
    """The seed's split (same clip names as data/demo) and its complete-clip variant, in their own folder."""
    from toolkit.io import load_split, save_split

    split = load_split(split_path(registry.train_lst, f"seed{seed}"))
    save_split(split_path(missing_lst(registry), f"seed{seed}"), split[TRAIN_KEY], split[VALID_KEY])
    tr = split[TRAIN_KEY]
    folders = [os.path.join(MISSING, "features", f) for f in registry.default_features]
    keep = [i for i, n in enumerate(tr["names"]) if all(os.path.exists(os.path.join(f, n + ".npy")) for f in folders)]
    complete = {k: [v[i] for i in keep] for k, v in tr.items() if v is not None}
    save_split(split_path(missing_lst(registry), f"complete_seed{seed}"), complete, split[VALID_KEY])
    return len(tr["names"]), len(keep)


def train_f1(registry, row, seed, settings, extra, fresh):
    """Best valid F1 of one run: ``settings`` (TrainConfig fields) under the user's train.py flags ``extra``;
    a finished run of the row and seed is reused unless ``fresh``."""
    import engine
    from engine.flags import parse_config

    run_dir = os.path.join(OUT, row, f"seed{seed}")
    from toolkit.runs import SUMMARY_FILE

    path = os.path.join(run_dir, SUMMARY_FILE)
    if os.path.exists(path) and not fresh:
        print(f"reusing the finished run {run_dir} (--fresh retrains it)", flush=True)
        return json.load(open(path))["f1"]
    settings = {"dataset": f"seed{seed}", "seed": seed, "run_dir": run_dir, "no_plots": True, "no_progress": True, **settings}
    return engine.run(parse_config(list(extra), under=settings), registry).best_f1


def row(label, scores):
    return f"| {label:<58} | {np.mean(scores):.4f} ± {np.std(scores):.4f} | {' '.join(f'{s:.3f}' for s in scores)} |"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--parts", nargs="+", default=["a", "b", "c"], choices=["a", "b", "c"])
    parser.add_argument("--fresh", action="store_true", help="retrain runs that already have a summary.json")
    parser.add_argument("extra", nargs="*", help="extra train.py flags for every run (after --)")
    opts = parser.parse_args()
    registry = frames_registry()
    ensure_data(opts.seeds, registry)
    start = time.time()
    lines = ["| row | weighted F1 (mean ± std) | per seed |", "| --- | --- | --- |"]
    default = list(registry.default_features)

    def add(label, key, feats, **settings):
        """One row: ``settings`` (TrainConfig fields; a callable value is called with the seed)."""
        scores = [train_f1(registry, key, s, {"feat": feats, **{k: (v(s) if callable(v) else v) for k, v in settings.items()}},
                           opts.extra, opts.fresh) for s in opts.seeds]
        lines.append(row(label, scores))
        print(lines[-1], flush=True)

    if "a" in opts.parts:
        lines.append("| **(a) AU frames alone** | | |")
        add("demo-au-FRM, temporal expert (CLS transformer)", "a_temporal", [AU])
        add("demo-au-FRM mean-pooled → utterance expert", "a_mean", [AU_MEAN])
    if "b" in opts.parts:
        lines.append("| **(b) MoE, default features** | | |")
        add(f"moe, {len(default)} default features", "b_without", default)
        add(f"moe, {len(default)} default features + demo-au-FRM", "b_with", default + [AU])
    if "c" in opts.parts:
        counts = [missing_splits(registry, s) for s in opts.seeds]
        lines.append(f"| **(c) {MISSING_RATE:.0%} files missing per modality, default features; all validation clips** | | |")
        miss, masked = [f"miss-{f}" for f in default], {"allow_missing": True, "train_lst": missing_lst(registry)}
        add("--allow_missing", "c_allow", miss, **masked)
        add("--allow_missing --expert_dropout 0.2", "c_allow_drop", miss, **masked, hparams={"expert_dropout": 0.2})
        kept = ", ".join(f"{k}/{n}" for n, k in counts)
        add(f"train on complete clips only ({kept} kept), masked at validation", "c_complete", miss, **masked,
            dataset=lambda s: f"complete_seed{s}")
    extra = " ".join(opts.extra) or "none"
    lines.append(f"\nseeds {opts.seeds}; extra train.py flags: {extra}; {time.time() - start:.0f} s")
    text = "\n".join(lines)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "results.md"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
