"""Frame-level (temporal AU) experts and missing modalities on the demo data: mean ± std weighted F1 over seeds.

    python benchmarks/bench_frames.py [--seeds 0 1 2 3 4] [--parts a b c] [--fresh] [-- extra train.py flags]

(a) demo-au-FRM alone: the temporal expert vs the same frames mean-pooled into a 17-d vector
    (config entry with {"pool": "mean"}) fed to an utterance expert.
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

import config  # noqa: E402

DEMO = os.path.join(REPO, "data", "demo")
MISSING = os.path.join(REPO, "data", "demo_missing")
OUT = os.path.join(REPO, "saved", "bench_frames")
MISSING_LST = os.path.join(REPO, config.PATH_TO_TRAIN_LST, "demo_missing")
AU = "demo-au-FRM"
AU_MEAN = "demo-au-mean-UTT"
MISSING_RATE = 0.2
DEFAULT = list(config.DEFAULT_FEATURES)


def sh(*argv):
    subprocess.run([sys.executable, *argv], cwd=REPO, check=True)


def ensure_data(seeds):
    if not os.path.isdir(os.path.join(DEMO, "features", AU)):
        sh("preprocess/make_demo_data.py")
    for seed in seeds:
        if not os.path.exists(os.path.join(REPO, config.PATH_TO_TRAIN_LST, f"seed{seed}.npy")):
            sh("preprocess/mer2025_base.py", "--label_csv", os.path.join(DEMO, "labels.csv"), "--seed", str(seed))
    marker = os.path.join(MISSING, "DEMO_DATA.json")
    if not os.path.exists(marker) or json.load(open(marker)).get("missing_rate") != MISSING_RATE:
        sh("preprocess/make_demo_data.py", "--out", MISSING, "--missing_rate", str(MISSING_RATE), "--no_vlm")


def register():
    """In-process config entries: the mean-pooled AU vector and the demo_missing copies of the default features."""
    folder = config.FEAT_VIDEO_DICT[AU][1]
    config.FEAT_VIDEO_DICT[AU_MEAN] = [17, folder, {"pool": "mean"}]
    dicts = {"video": config.FEAT_VIDEO_DICT, "audio": config.FEAT_AUDIO_DICT, "text": config.FEAT_TEXT_DICT}
    for table in dicts.values():
        for name in [n for n in table if n in DEFAULT]:
            table[f"miss-{name}"] = [table[name][0], os.path.join(MISSING, "features", name)]


def missing_splits(seed):
    """The seed's split (same clip names as data/demo) and its complete-clip variant, in their own folder."""
    from toolkit.io import load_split, save_split

    split = load_split(os.path.join(REPO, config.PATH_TO_TRAIN_LST, f"seed{seed}.npy"))
    full = os.path.join(MISSING_LST, f"seed{seed}.npy")
    save_split(full, split["train_info"], split["valid_info"])
    tr = split["train_info"]
    folders = [os.path.join(MISSING, "features", f) for f in DEFAULT]
    keep = [i for i, n in enumerate(tr["names"]) if all(os.path.exists(os.path.join(f, n + ".npy")) for f in folders)]
    complete = {k: [v[i] for i in keep] for k, v in tr.items() if v is not None}
    save_split(os.path.join(MISSING_LST, f"complete_seed{seed}.npy"), complete, split["valid_info"])
    return len(tr["names"]), len(keep)


def train_f1(row, seed, feats, extra, fresh, dataset=None, train_lst=None):
    import engine
    import train

    run_dir = os.path.join(OUT, row, f"seed{seed}")
    path = os.path.join(run_dir, "summary.json")
    if os.path.exists(path) and not fresh:
        print(f"reusing the finished run {run_dir} (--fresh retrains it)", flush=True)
        return json.load(open(path))["f1"]
    argv = ["--dataset", dataset or f"seed{seed}", "--seed", str(seed), "--feat", ",".join(feats),
            "--run_dir", run_dir, "--no_plots", "--no_progress"] + extra
    if train_lst:
        argv += ["--train_lst", train_lst]
    return engine.run(train.parse_args(argv)).best_f1


def row(label, scores):
    return f"| {label:<58} | {np.mean(scores):.4f} ± {np.std(scores):.4f} | {' '.join(f'{s:.3f}' for s in scores)} |"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--parts", nargs="+", default=["a", "b", "c"], choices=["a", "b", "c"])
    parser.add_argument("--fresh", action="store_true", help="retrain runs that already have a summary.json")
    parser.add_argument("extra", nargs="*", help="extra train.py flags for every run (after --)")
    opts = parser.parse_args()
    ensure_data(opts.seeds)
    register()
    start = time.time()
    lines = ["| row | weighted F1 (mean ± std) | per seed |", "| --- | --- | --- |"]

    def add(label, key, feats, extra=(), **kw):
        scores = [train_f1(key, s, feats, list(extra) + opts.extra, opts.fresh, **{k: (v(s) if callable(v) else v) for k, v in kw.items()})
                  for s in opts.seeds]
        lines.append(row(label, scores))
        print(lines[-1], flush=True)

    if "a" in opts.parts:
        lines.append("| **(a) AU frames alone** | | |")
        add("demo-au-FRM, temporal expert (CLS transformer)", "a_temporal", [AU])
        add("demo-au-FRM mean-pooled → utterance expert", "a_mean", [AU_MEAN])
    if "b" in opts.parts:
        lines.append("| **(b) MoE, default features** | | |")
        add(f"moe, {len(DEFAULT)} default features", "b_without", DEFAULT)
        add(f"moe, {len(DEFAULT)} default features + demo-au-FRM", "b_with", DEFAULT + [AU])
    if "c" in opts.parts:
        counts = [missing_splits(s) for s in opts.seeds]
        lines.append(f"| **(c) {MISSING_RATE:.0%} files missing per modality, default features; all validation clips** | | |")
        miss = [f"miss-{f}" for f in DEFAULT]
        add("--allow_missing", "c_allow", miss, ["--allow_missing"], dataset=lambda s: f"seed{s}", train_lst=MISSING_LST)
        add("--allow_missing --expert_dropout 0.2", "c_allow_drop", miss, ["--allow_missing", "--expert_dropout", "0.2"],
            dataset=lambda s: f"seed{s}", train_lst=MISSING_LST)
        kept = ", ".join(f"{k}/{n}" for n, k in counts)
        add(f"train on complete clips only ({kept} kept), masked at validation", "c_complete", miss, ["--allow_missing"],
            dataset=lambda s: f"complete_seed{s}", train_lst=MISSING_LST)
    extra = " ".join(opts.extra) or "none"
    lines.append(f"\nseeds {opts.seeds}; extra train.py flags: {extra}; {time.time() - start:.0f} s")
    text = "\n".join(lines)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "results.md"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
