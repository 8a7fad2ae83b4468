"""Semi-supervised stage, seeds 0-4: stage 1 vs stage 2 on consensus pseudo-labels, with the options of
pseudo_label.py (soft targets, class-balanced selection) and several rounds, on two data sets.

    python benchmarks/bench_semi.py --set demo      [--seeds 0 1 2 3 4] [--rounds 2]
    python benchmarks/bench_semi.py --set demo-alt

demo: data/demo (made when missing), splits train_lst/seed{N}.npy, config.py's DEFAULT_FEATURES.
demo-alt: preprocess/make_demo_data.py's --structure alt (reversed class prior, four noisier correlated
features) written to data/demo_alt *with* simulated VLM answers (the CLI writes none for alt; here the
generator is called with vlm=True), splits in data/demo_alt/train_lst, all four alt-* features, registered
by the manifest data/demo_alt/features/features.yaml besides config.py's features.

For each seed: stage 1 = the default MoE on the labeled split; pseudo-labels on the unlabeled pool where
stage 1 and the simulated VLM agree; stage 2 = train.py from scratch on the labeled split + pseudo-labels,
once per setting. Rounds: the pool is relabeled with the stage-2 model of the previous round (hard labels)
and the labeled split is extended again. Validation sets are the labeled ones of each seed. Each seed's
results go to saved/bench_semi/<set>/results.json as soon as it ends (a rerun skips the seeds there).
Prints mean ± std weighted F1 per setting and the pseudo-label accuracy (true labels of the pool, used for
the report only).
"""
import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

from benchmarks.demo_inputs import DEMO, ensure_demo  # noqa: E402

OUT = os.path.join(REPO, "saved", "bench_semi")
ALT = os.path.join(REPO, "data", "demo_alt")

# (label, pseudo_label.py flags); stage 2 always trains from scratch with the default flags
SETTINGS = [
    ("agreed (hard labels)", []),
    ("--soft", ["--soft"]),
    ("--balance equal", ["--balance", "equal"]),
    ("--balance prior", ["--balance", "prior"]),
    ("--soft --balance equal", ["--soft", "--balance", "equal"]),
]


def quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn(*args)


def train_f1(registry, settings, extra):
    """Best valid F1 of one run: ``settings`` (TrainConfig fields) under the user's train.py flags ``extra``."""
    import engine
    from engine.flags import parse_config

    cfg = parse_config(list(extra), under={**settings, "no_plots": True, "no_progress": True})
    return engine.run(cfg, registry, quiet=True).best_f1


def pseudo(argv):
    import pseudo_label

    return quiet(lambda: pseudo_label.run(pseudo_label.build_parser().parse_args(argv)))


def parse_vlm(answers, out):
    subprocess.run([sys.executable, "preprocess/parse_vlm_answers.py", "--answers", answers, "--out", out],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)


def make_alt():
    """data/demo_alt: the alt structure with simulated VLM answers (written once)."""
    from preprocess import make_demo_data

    if os.path.exists(os.path.join(ALT, make_demo_data.MARKER)):
        return
    data = make_demo_data.generate("demo", structure="alt", vlm=True)
    os.makedirs(os.path.dirname(ALT), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".demo_alt.tmp-", dir=os.path.dirname(ALT))
    quiet(make_demo_data.write_dataset, data, tmp)
    os.replace(tmp, ALT)


def bench_inputs(name, seeds):
    """{root, train_lst, feat, manifests, vlm, unlabeled, truth} of a benchmark set, made when missing;
    ``manifests``: what its features need registered besides config.py's."""
    from dataloader.registry import Registry
    from toolkit.io import resolve

    if name == "demo":
        registry = Registry.from_config()
        ensure_demo(seeds, registry)
        root, lst, feats, manifests = DEMO, resolve(registry.train_lst), list(registry.default_features), []
    else:
        from benchmarks.datasets import BenchSet
        from preprocess import make_demo_data

        make_alt()
        root, lst = ALT, os.path.join(ALT, "train_lst")
        utt, _ = make_demo_data.feature_specs("demo", "alt")
        bench = BenchSet(name, root, os.path.join(root, "labels.csv"), "MER", list(make_demo_data.CLASSES),
                         {f: (modality, dim) for f, (modality, _, dim, _) in utt.items()})
        feats, manifests = list(utt), [bench.write_manifest()]
        for seed in seeds:
            if not os.path.exists(os.path.join(lst, f"seed{seed}.npy")):
                subprocess.run([sys.executable, "preprocess/mer2025_base.py", "--label_csv", os.path.join(root, "labels.csv"),
                                "--seed", str(seed), "--save_root", lst], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    vlm = os.path.join(root, "vlm.csv")
    if not os.path.exists(vlm):
        parse_vlm(os.path.join(root, "vlm_answers"), vlm)
    return {"root": root, "train_lst": lst, "feat": feats, "manifests": manifests, "vlm": vlm,
            "unlabeled": os.path.join(root, "unlabeled.csv"), "truth": os.path.join(root, "unlabeled_labels.csv")}


def run_seed(inputs, seed, rounds, out, extra=()):
    """{"stage1": f1, "settings": {label: f1}, "pools": {label: pseudo_label report}} of one seed.

    ``extra``: the user's train.py flags for every run (tests pass a few epochs). The features are config.py's
    (the one $MER_CONFIG names) plus ``inputs["manifests"]``, for the runs and for pseudo_label.py alike."""
    from dataloader.registry import Registry

    manifests = list(inputs.get("manifests", []))
    registry = Registry.from_config(manifests=manifests)
    common = {"train_lst": inputs["train_lst"], "feat": list(inputs["feat"]), "seed": seed}
    dataset = f"seed{seed}"
    run1 = os.path.join(out, f"seed{seed}", "stage1")
    result = {"stage1": train_f1(registry, {**common, "dataset": dataset, "save_model": True, "run_dir": run1}, extra),
              "settings": {}, "pools": {}}

    def stage2(label, runs, tag, flags, save=False):
        report = pseudo(["--runs", runs, "--vlm", inputs["vlm"], "--unlabeled", inputs["unlabeled"], "--dataset", dataset,
                         "--out_dataset", f"bench_semi_{dataset}_{tag}", "--train_lst", inputs["train_lst"], "--truth", inputs["truth"],
                         "--manifests", ",".join(manifests), "--overwrite", *flags])
        run_dir = os.path.join(out, f"seed{seed}", f"stage2_{tag}")
        result["pools"][label] = report
        result["settings"][label] = train_f1(registry, {**common, "dataset": f"bench_semi_{dataset}_{tag}", "run_dir": run_dir,
                                                        "save_model": save}, extra)
        return run_dir

    previous = None
    for i, (label, flags) in enumerate(SETTINGS):
        run_dir = stage2(label, run1, f"pl{i}", flags, save=i == 0 and rounds > 1)
        previous = previous or run_dir
    for r in range(2, rounds + 1):
        previous = stage2(f"{r} rounds (hard labels)", previous, f"round{r}", [], save=r < rounds)
    return result


def fmt(values):
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def print_table(name, seeds, results, feats):
    stage1 = [results[s]["stage1"] for s in seeds]
    labels = list(results[seeds[0]]["settings"])
    print(f"\n{name}: validation weighted F1, seeds {seeds} (default moe, features {feats}, stage 2 from scratch)")
    print("| setting | kept pseudo-labels | pseudo-label acc | weighted F1 | vs stage 1 (per-seed difference) | seeds better |\n"
          "|---|---:|---:|---|---|---:|")
    print(f"| stage 1 (labeled only) | 0 | - | {fmt(stage1)} | - | - |")
    for label in labels:
        values = [results[s]["settings"][label] for s in seeds]
        pools = [results[s]["pools"][label] for s in seeds]
        kept = np.mean([r["kept"] for r in pools])
        acc = np.mean([r["truth"]["pseudo_label_accuracy"] for r in pools])
        diff = np.subtract(values, stage1)
        print(f"| stage 2: {label} | {kept:.0f} | {acc:.4f} | {fmt(values)} | {np.mean(diff):+.4f} ± {np.std(diff):.4f} | "
              f"{int((diff > 0).sum())}/{len(diff)} |")
    first = [results[s]["pools"][labels[0]] for s in seeds]
    print(f"\naccuracy on the unlabeled pool (mean over seeds): model {np.mean([r['truth']['model_accuracy_on_pool'] for r in first]):.4f}, "
          f"VLM {np.mean([r['truth']['vlm_accuracy_on_pool'] for r in first]):.4f}, "
          f"agreed pseudo-labels {np.mean([r['truth']['pseudo_label_accuracy'] for r in first]):.4f}; "
          f"model/VLM agreement {np.mean([r['model_vlm_agreement'] for r in first]):.4f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", choices=["demo", "demo-alt"], default="demo")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--rounds", type=int, default=2, help="rounds of pseudo-labelling (1: stage 2 only)")
    p.add_argument("extra", nargs="*", help="extra train.py flags for every run (after --), e.g. -- --fused_dim 0")
    opts = p.parse_args()
    from toolkit.io import save_json

    inputs = bench_inputs(opts.set, opts.seeds)
    out = os.path.join(OUT, opts.set)
    path = os.path.join(out, "results.json")
    results = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            results = {int(k): v for k, v in json.load(f).items() if v.get("rounds") == opts.rounds and v.get("extra", []) == opts.extra}
    for seed in opts.seeds:
        if seed not in results:
            results[seed] = {**run_seed(inputs, seed, opts.rounds, out, opts.extra), "rounds": opts.rounds, "extra": opts.extra}
            os.makedirs(out, exist_ok=True)
            save_json(path, results)
        r = results[seed]
        print(f"seed {seed}: stage 1 {r['stage1']:.4f}; " + ", ".join(f"{lb}: {v:.4f}" for lb, v in r["settings"].items()), flush=True)
    print_table(opts.set, opts.seeds, results, inputs["feat"])


if __name__ == "__main__":
    main()
