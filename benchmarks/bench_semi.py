"""Semi-supervised stage on the demo data, seeds 0-4: stage 1 vs stage 2 on consensus pseudo-labels, and
the VLM's scores as one more expert.

    python benchmarks/bench_semi.py [--seeds 0 1 2 3 4]

For each seed: stage 1 = the default MoE on seed{N}; pseudo-labels on data/demo/unlabeled.csv where stage 1
and the simulated VLM agree (several thresholds / caps); stage 2 = train.py on seed{N}_pl..., from scratch or
initialised from stage 1, with several pseudo-label weights. Validation sets are the labeled ones of each
seed (pseudo-labels never enter them). Prints mean ± std weighted F1 per setting and the pseudo-label,
VLM and model accuracies on the pool (true labels of the demo's unlabeled clips, used for the report only).
"""
import argparse
import contextlib
import io
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

import config  # noqa: E402
from benchmarks.demo_inputs import DEMO, ensure_demo  # noqa: E402

OUT = os.path.join(REPO, "saved", "bench_semi")
VLM_FEATURE = "vlm-scores-UTT"

# (label, pseudo_label.py flags, train.py flags for stage 2)
SETTINGS = [
    ("agreed, scratch", [], []),
    ("agreed, init from stage 1", [], ["--model_pretrain", "{stage1}/best.pth"]),
    ("agreed, scratch, pseudo_weight 0.3", [], ["--pseudo_weight", "0.3"]),
    ("agreed, init, pseudo_weight 0.3", [], ["--model_pretrain", "{stage1}/best.pth", "--pseudo_weight", "0.3"]),
    ("min_conf 0.9, scratch", ["--min_conf", "0.9"], []),
    ("max_per_class 150, scratch", ["--max_per_class", "150"], []),
    ("max_per_class 150, init", ["--max_per_class", "150"], ["--model_pretrain", "{stage1}/best.pth"]),
]


def quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn(*args)


def train_f1(argv):
    import engine
    import train

    return engine.run(train.parse_args(argv + ["--no_plots", "--no_progress"]), quiet=True).best_f1


def pseudo(argv):
    import pseudo_label

    return quiet(lambda: pseudo_label.run(pseudo_label.build_parser().parse_args(argv)))


def ensure_inputs(seeds):
    ensure_demo(seeds)
    subprocess.run([sys.executable, "preprocess/parse_vlm_answers.py", "--answers", os.path.join(DEMO, "vlm_answers"),
                    "--out", os.path.join(DEMO, "vlm.csv"), "--as_feature", os.path.join(DEMO, "features", VLM_FEATURE),
                    "--fill", "uniform"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)


def fmt(values):
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    opts = p.parse_args()
    ensure_inputs(opts.seeds)
    stage1, stage2 = [], {label: [] for label, _, _ in SETTINGS}
    pools = {label: [] for label, _, _ in SETTINGS}
    with_vlm = []
    for seed in opts.seeds:
        run1 = os.path.join(OUT, f"seed{seed}", "stage1")
        stage1.append(train_f1(["--dataset", f"seed{seed}", "--seed", str(seed), "--save_model", "--run_dir", run1]))
        with_vlm.append(train_f1(["--dataset", f"seed{seed}", "--seed", str(seed), "--run_dir", os.path.join(OUT, f"seed{seed}", "with_vlm"),
                                  "--feat", ",".join(config.DEFAULT_FEATURES + [VLM_FEATURE])]))
        for i, (label, pl_flags, train_flags) in enumerate(SETTINGS):
            out_dataset = f"bench_semi_seed{seed}_pl{i}"
            report = pseudo(["--runs", run1, "--vlm", os.path.join(DEMO, "vlm.csv"), "--unlabeled", os.path.join(DEMO, "unlabeled.csv"),
                             "--dataset", f"seed{seed}", "--out_dataset", out_dataset, "--truth", os.path.join(DEMO, "unlabeled_labels.csv"),
                             "--overwrite"] + pl_flags)
            pools[label].append(report)
            flags = [f.format(stage1=run1) for f in train_flags]
            stage2[label].append(train_f1(["--dataset", out_dataset, "--seed", str(seed),
                                           "--run_dir", os.path.join(OUT, f"seed{seed}", f"stage2_{i}")] + flags))
        print(f"seed {seed}: stage 1 {stage1[-1]:.4f}; " + ", ".join(f"{lb}: {v[-1]:.4f}" for lb, v in stage2.items()), flush=True)

    print(f"\nvalidation weighted F1, seeds {opts.seeds} (default moe, features {config.DEFAULT_FEATURES})")
    print("| setting | kept pseudo-labels | pseudo-label acc | weighted F1 | vs stage 1 |\n|---|---:|---:|---|---:|")
    print(f"| stage 1 (labeled only) | 0 | - | {fmt(stage1)} | - |")
    for label, values in stage2.items():
        kept = np.mean([r["kept"] for r in pools[label]])
        acc = np.mean([r["truth"]["pseudo_label_accuracy"] for r in pools[label]])
        print(f"| stage 2: {label} | {kept:.0f} | {acc:.4f} | {fmt(values)} | {np.mean(values) - np.mean(stage1):+.4f} |")
    first = pools[SETTINGS[0][0]]
    print(f"\naccuracy on the unlabeled pool (mean over seeds): model {np.mean([r['truth']['model_accuracy_on_pool'] for r in first]):.4f}, "
          f"VLM {np.mean([r['truth']['vlm_accuracy_on_pool'] for r in first]):.4f}, "
          f"agreed pseudo-labels {np.mean([r['truth']['pseudo_label_accuracy'] for r in first]):.4f}; "
          f"model/VLM agreement {np.mean([r['model_vlm_agreement'] for r in first]):.4f}")
    print(f"\nVLM as an expert: default features {fmt(stage1)} -> with {VLM_FEATURE} {fmt(with_vlm)}")


if __name__ == "__main__":
    main()
