"""Thread counts on an idle and on a loaded machine: seconds per training epoch and per prediction of the demo.

    python benchmarks/bench_threads.py [--repeats 3] [--epochs 5] [--warmup 30]

Each measurement is a fresh process (as ``train.py`` and ``predict.py`` are) that trains the default model on the
demo's seed0 split (``data/demo``, made as run_demo.sh makes it when absent) for ``--epochs`` epochs without
early stopping, then predicts the demo's test clips with the run (once to warm up, then the median of 3). It
does so with three thread settings: the old default (PyTorch's, one thread per CPU: ``--threads`` set to
os.cpu_count()), the automatic choice (``--threads auto``, toolkit/threads.py; the table lists the counts it
chose) and 1 thread. OMP_NUM_THREADS and MKL_NUM_THREADS are removed from the measuring processes'
environment.

Conditions: idle (no load added by the benchmark: only what else the machine runs, which the load average
column shows) and loaded: the benchmark starts as many busy-looping
processes as this process may use CPUs and waits ``--warmup`` seconds, so the 1-minute load average has
risen as on a machine that stays busy, before it measures; the loop processes are killed when the block ends
(also on an error or Ctrl-C). The repeats alternate an idle block and a loaded block, and each block runs
the three settings in a rotated order. Printed: medians over the repeats, and the 1-minute load average at the
start of each measurement.
"""
import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

DEMO = os.path.join(REPO, "data", "demo")
SPLIT = os.path.join(REPO, "train_lst", "seed0.npy")
SETTINGS = (("old default (os.cpu_count())", os.cpu_count() or 1), ("auto", 0), ("1 thread", 1))
CONDITIONS = ("idle", "loaded")


def ensure_demo():
    """The demo features and split files, made as run_demo.sh makes them."""
    if not os.path.exists(os.path.join(DEMO, "labels.csv")):
        subprocess.run([sys.executable, "preprocess/make_demo_data.py", "--out", DEMO], cwd=REPO, check=True)
    if not os.path.exists(SPLIT):
        subprocess.run(["bash", "preprocess/make_lst.sh"], cwd=REPO, check=True, env={**os.environ, "PYTHON": sys.executable})


def measure_here(threads, epochs, folder):
    """(In a measuring process.) Train and predict with ``threads`` (0: auto); returns the figures."""
    import pandas as pd
    import torch

    import engine
    from dataloader.registry import Registry
    from inference.predictor import load_runs, predict_runs

    registry = Registry.from_config()
    run_dir = os.path.join(folder, "run")
    cfg = engine.TrainConfig(dataset="seed0", epochs=epochs, patience=0, threads=threads, run_dir=run_dir, save_model=True,
                             no_plots=True, no_progress=True, device="cpu")
    result = engine.run(cfg, registry, quiet=True)
    names = pd.read_csv(os.path.join(DEMO, "test.csv"))["name"].tolist()
    runs = load_runs([run_dir], torch.device("cpu"))
    seconds = []
    for _ in range(4):  # the first one warms up
        start = time.perf_counter()
        predict_runs(runs, names, torch.device("cpu"), registry)
        seconds.append(time.perf_counter() - start)
    return {"threads": torch.get_num_threads(), "epoch_s": result.seconds_per_epoch, "predict_s": statistics.median(seconds[1:]),
            "clips": len(names)}


def measure(threads, epochs):
    """One measuring process (no OMP_NUM_THREADS/MKL_NUM_THREADS in its environment) → its figures and the load."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_threads_") as folder:
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--measure", str(threads), "--epochs", str(epochs),
                               "--folder", folder], cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the measuring process failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load": load}


@contextlib.contextmanager
def busy_load(count, warmup):
    """``count`` busy-looping processes (yielded) for the block, killed at its end whatever happens."""
    procs = []
    try:
        for _ in range(count):
            procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        time.sleep(warmup)
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def run_blocks(opts):
    """{(condition, setting label): [figures per repeat]}, idle and loaded blocks alternating."""
    from toolkit.threads import usable_cpus

    figures = {}
    for repeat in range(opts.repeats):
        for condition in CONDITIONS:
            load = busy_load(usable_cpus(), opts.warmup) if condition == "loaded" else contextlib.nullcontext()
            with load:
                shift = (repeat + CONDITIONS.index(condition)) % len(SETTINGS)
                for label, threads in SETTINGS[shift:] + SETTINGS[:shift]:
                    got = measure(threads, opts.epochs)
                    figures.setdefault((condition, label), []).append(got)
                    print(f"  repeat {repeat + 1} {condition:6} {label:30} threads {got['threads']}: {got['epoch_s']:.3f} s/epoch, "
                          f"predict {got['predict_s']:.3f} s (load average {got['load']:.2f})", flush=True)
    return figures


def print_table(figures, opts):
    def cell(condition, label):
        runs = figures[(condition, label)]
        used = sorted({r["threads"] for r in runs})
        return (f"{','.join(map(str, used))} | {statistics.median(r['epoch_s'] for r in runs):.3f} | "
                f"{statistics.median(r['predict_s'] for r in runs):.3f} | "
                f"{min(r['load'] for r in runs):.1f}-{max(r['load'] for r in runs):.1f}")

    clips = next(iter(figures.values()))[0]["clips"]
    print(f"\nmedians of {opts.repeats} repeats; {opts.epochs} epochs of the demo (seed0) per measurement, prediction of "
          f"{clips} test clips; {os.cpu_count()} CPUs; idle: no load added, loaded: as many busy loops as usable CPUs; "
          "load avg: the 1-minute load average at the start of the measurements (lowest-highest)")
    print("| setting | " + " | ".join(f"{c}: threads | {c}: s/epoch | {c}: predict s | {c}: load avg" for c in CONDITIONS) + " |")
    print("|---|" + "---:|---:|---:|---:|" * len(CONDITIONS))
    for label, _ in SETTINGS:
        print(f"| {label} | " + " | ".join(cell(c, label) for c in CONDITIONS) + " |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="idle and loaded blocks (each measures the three settings once)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs per measurement (their median is taken)")
    p.add_argument("--warmup", type=float, default=30.0, help="seconds the busy loops run before a loaded block measures")
    p.add_argument("--measure", type=int, default=None, help=argparse.SUPPRESS)  # a measuring process: its --threads
    p.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    opts = p.parse_args()
    if opts.measure is not None:
        print(json.dumps(measure_here(opts.measure, opts.epochs, opts.folder)))
        return
    ensure_demo()
    measure(1, 1)  # builds the packed feature cache, so every measurement starts warm
    print_table(run_blocks(opts), opts)


if __name__ == "__main__":
    main()
