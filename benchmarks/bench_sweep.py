"""Wall time of the default unimodal sweep on the demo data (all demo features × seeds 0-4), and of one run.

    python benchmarks/bench_sweep.py [--jobs 1 2] [--repeats 1] [--seeds 0 1 2 3 4] [--no_single]

Each sweep is a fresh `bash run_eval_unimodal.sh` (FORCE=1, its own SAVE_ROOT) with --preset (default
published: lr 1e-4, batch 512, 80 epochs, REPEAT=3, the settings of the table in docs/10-benchmarks.md); "one run" is a fresh
`python train.py` process with the published settings, start-up included. Target: the full demo sweep under
10 minutes on 2 cores. benchmarks/bench_ranking.py times both presets against a tuned reference.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.demo_inputs import ensure_demo  # noqa: E402


def timed(cmd, env=None):
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="a shorter sweep: fewer seeds")
    p.add_argument("--no_single", action="store_true", help="skip the one-run timing")
    p.add_argument("--preset", choices=["published", "default"], default="published", help="the sweep's PRESET")
    opts = p.parse_args()
    ensure_demo(opts.seeds)
    feats = "demo-face-UTT demo-clip-UTT demo-internvl-UTT demo-hubert-UTT demo-wav2vec2-UTT demo-roberta-UTT demo-macbert-UTT"
    tmp = tempfile.mkdtemp(prefix="bench_sweep_")
    try:
        single = [] if opts.no_single else [timed([sys.executable, "train.py", "--feat", "demo-clip-UTT", "--repeat", "3", "--lr", "1e-4",
                         "--batch_size", "512", "--epochs", "80", "--no_progress", "--run_dir", os.path.join(tmp, f"one{i}")])
                  for i in range(3)]
        if single:
            print(f"one run (fresh process, 80 epochs): median {statistics.median(single):.2f}s  runs {[round(t, 2) for t in single]}")
        for jobs in opts.jobs:
            times = []
            for r in range(opts.repeats):
                env = {**os.environ, "PYTHON": sys.executable, "FEATS": feats, "JOBS": str(jobs), "FORCE": "1", "PRESET": opts.preset,
                       "SEEDS": " ".join(map(str, opts.seeds)),
                       "SAVE_ROOT": os.path.join(tmp, f"sweep-j{jobs}-{r}")}
                times.append(timed(["bash", "run_eval_unimodal.sh"], env))
            n = 7 * len(opts.seeds)
            print(f"demo sweep, {n} runs, JOBS={jobs}: median {statistics.median(times):.1f}s "
                  f"({statistics.median(times) / n:.2f}s per run)  runs {[round(t, 1) for t in times]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
