"""Throughput of train.py on MER2025-sized synthetic data (python preprocess/make_demo_data.py --scale mer).

    python benchmarks/bench_scale.py [--epochs 4] [--repeats 2] [--only cpu|gpu]

Every configuration is a fresh train.py process (the same three features as bench_train.py: 7,369 clips ×
6,400 dims); its throughput is training clips per second of epoch wall time (an epoch = the training pass
plus the full validation pass), the median over every epoch but each run's first and over the repeats.
Peak RSS is that of the largest process of the run (one rank under DDP).

CPU: one process vs 2-process DDP (torchrun, gloo, one thread per rank; the global batch is the same),
float32 vs float16 packed features, in memory vs memory-mapped cache. GPU (only when CUDA is present):
fp32 vs --amp bf16 / fp16, with and without --compile.
"""
import argparse
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.bench_train import DATA, FEATS, SPLITS, ensure_data, train_config, write_config  # noqa: E402
from toolkit.io import TRAIN_KEY, VALID_KEY  # noqa: E402

# (label, processes, TrainConfig changes)
CPU_CONFIGS = [
    ("1 process, float32, in memory", 1, {}),
    ("1 process, float16, in memory", 1, {"cache_dtype": "float16"}),
    ("1 process, float32, mmap", 1, {"mmap": True}),
    ("1 process, float16, mmap", 1, {"cache_dtype": "float16", "mmap": True}),
    ("2-process DDP (gloo), float32, in memory", 2, {}),
    ("2-process DDP (gloo), float16, mmap", 2, {"cache_dtype": "float16", "mmap": True}),
]
GPU_CONFIGS = [
    ("GPU fp32", 1, {}),
    ("GPU --amp bf16", 1, {"amp": "bf16"}),
    ("GPU --amp fp16", 1, {"amp": "fp16"}),
    ("GPU --compile", 1, {"compile": True}),
    ("GPU --amp bf16 --compile", 1, {"amp": "bf16", "compile": True}),
]


def one_run(procs, cfg):
    """(epoch seconds but the first, peak RSS MB of its largest process) of one fresh train.py process (under
    torchrun when ``procs`` > 1) that reads the TrainConfig ``cfg`` from a --config file."""
    import pandas as pd

    launcher = [sys.executable] if procs == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                    f"--nproc_per_node={procs}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"} if procs > 1 else dict(os.environ)
    config = write_config(cfg, os.path.join(DATA, "bench_scale_run.yaml"))
    with open(os.path.join(DATA, "bench_scale.log"), "a") as log:
        proc = subprocess.Popen(launcher + ["train.py", "--config", config], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"run failed ({cfg.device}, cache {cfg.cache_dtype}{', mmap' if cfg.mmap else ''}, amp {cfg.amp}"
                         f"{', compile' if cfg.compile else ''}, {procs} procs); see {os.path.join(DATA, 'bench_scale.log')}")
    return pd.read_csv(os.path.join(cfg.run_dir, "metrics.csv"))["seconds"].tolist()[1:], usage.ru_maxrss / 1024


def measure(configs, opts, device, n_train):
    for label, procs, changes in configs:
        seconds, rss = [], []
        batch = {} if opts.batch_size is None else {"batch_size": opts.batch_size}
        cfg = train_config(opts.epochs + 1, os.path.join(DATA, "bench_scale_run"), device=device, **batch, **changes)
        for _ in range(opts.repeats):
            s, m = one_run(procs, cfg)
            seconds += s
            rss.append(m)
        med = statistics.median(seconds)
        print(f"{label:<44} {n_train / med:8.0f} clips/s   {med:.3f} s/epoch   peak RSS {max(rss):6.0f} MB   "
              f"epochs {[round(x, 3) for x in seconds]}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=4, help="measured epochs per run (one more is run and dropped)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--batch_size", type=int, default=None,
                   help="the global batch (split across DDP processes); default: train.py's")
    p.add_argument("--only", choices=["cpu", "gpu"], default=None)
    opts = p.parse_args()
    ensure_data()
    import torch

    from engine import TrainConfig
    from toolkit.io import load_split, split_path

    split = load_split(split_path(SPLITS, "seed0"))
    n_train = len(split[TRAIN_KEY]["names"])
    batch = opts.batch_size or TrainConfig().batch_size
    print(f"data: {n_train} train + {len(split[VALID_KEY]['names'])} valid clips, features {', '.join(FEATS)}; "
          f"global batch {batch}; {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    if opts.only != "gpu":
        measure(CPU_CONFIGS, opts, "cpu", n_train)
    if opts.only != "cpu":
        if torch.cuda.is_available():
            measure(GPU_CONFIGS, opts, "cuda", n_train)
        else:
            print("GPU section skipped: no CUDA device")


if __name__ == "__main__":
    main()
