"""Training-speed benchmark on MER2025-sized synthetic data (7,369 clips; features of 1024, 1280, 4096 dims).

    python benchmarks/bench_train.py [--epochs 10] [--repeats 3]

Prints, as medians: (a) seconds per epoch (train + valid) of train.py's own loop; (b) the same model's pure
compute per epoch on tensors already in memory; (c) one pass of a per-sample-file torch DataLoader
(2 workers, batch 512) over the same files, the design train.py replaces; (d) the cold start (building the
packed cache from the .npy files); (e) the warm start (loading the packed cache: a stat per file for the
freshness key, the read, and the cache checks), (f) the same with --mmap, (g) the cache checks alone (crc32
and finiteness over every packed byte, part of (e) and (f)); and the peak RSS of a whole train.py run against
the features' bytes. The warm epoch is (a).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from toolkit.io import TRAIN_KEY, VALID_KEY  # noqa: E402

FEATS = ["chinese-hubert-large-UTT", "whisper-large-v2-UTT", "InternVL_2_5-UTT"]
DATA = os.path.join(REPO, "data", "mer")
SPLITS = os.path.join(DATA, "train_lst")
CACHE = os.path.join(DATA, "bench_cache")
MANIFEST = os.path.join(DATA, "features", "features.yaml")  # written by write_mer_scale_manifest()
# epochs dropped before timing (a) and (b): the first ones grow the heap and fault its pages in, and (b)
# runs in the process (a) already warmed, so both skip the same warm-up
WARMUP = 2


def write_mer_scale_manifest():
    """Write MANIFEST for the synthetic MER-scale features (make_demo_data.py --scale mer): they are registered
    through it, here and in the timed train.py process, not in config.py, so their real-model names stay free
    for a user's features."""
    from dataloader.registry import write_manifest

    write_manifest(os.path.dirname(MANIFEST), mer_scale_entries(), "benchmarks/bench_train.py")


def mer_scale_entries():
    """The manifest entries of the MER-scale features: {name: {dim, modality, level, folder}}."""
    from preprocess.make_demo_data import FEATURES

    return {name: {"dim": dim, "modality": modality, "level": "utt", "folder": name}
            for name, (modality, _, dim, _) in FEATURES["mer"].items()}


def ensure_data():
    if not os.path.exists(os.path.join(DATA, "labels.csv")):
        subprocess.run([sys.executable, "preprocess/make_demo_data.py", "--scale", "mer", "--out", DATA], cwd=REPO, check=True)
    if not os.path.exists(os.path.join(SPLITS, "seed0.npy")):
        subprocess.run([sys.executable, "preprocess/mer2025_base.py", "--label_csv", os.path.join(DATA, "labels.csv"),
                        "--seed", "0", "--save_root", SPLITS], cwd=REPO, check=True)


def train_config(epochs, run_dir, **changes):
    """The benchmarked run: the three features on the CPU, ``epochs`` epochs without early stopping, replacing
    the previous run in ``run_dir`` (the benchmark's scratch folder)."""
    from engine import TrainConfig

    return TrainConfig(dataset="seed0", train_lst=SPLITS, cache_dir=CACHE, feat=list(FEATS), manifests=[MANIFEST],
                       epochs=epochs, patience=0,
                       run_dir=run_dir, overwrite=True, no_plots=True, no_progress=True, device="cpu").replace(**changes)


def write_config(cfg, path):
    """``cfg`` as a YAML file for ``train.py --config`` (a run timed as a whole process); returns ``path``."""
    import yaml

    from toolkit.io import save_text

    save_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return path


def loop_seconds(registry, epochs, run_dir):
    """(a): train.py's own per-epoch seconds (train + valid + metrics), as the engine measured them."""
    import engine

    result = engine.run(train_config(epochs, run_dir), registry)
    return [e.seconds for e in result.history][WARMUP:]


def compute_seconds(registry, epochs):
    """(b): the same model, optimizer and batches (engine.fit's, built once) on pre-built tensors: forward,
    backward, step; valid forward."""
    from engine import load_data
    from engine.fit import make_trainer, seed_everything
    from toolkit.distributed import Dist

    cpu = torch.device("cpu")
    args = train_config(epochs, None).resolved(registry)
    data = load_data(args, registry, device=cpu)
    seed_everything(args.seed)
    trainer = make_trainer(args, data, cpu, Dist())
    model, optimizer = trainer.core, trainer.optimizer
    train_batches, valid_batches = list(trainer.train_batches), list(trainer.valid_batches)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for b in train_batches:
            loss = model.loss(model(b["feats"], b["present"]), b["labels"], b["vals"], b["weights"], args.val_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for b in valid_batches:
                model(b["feats"], b["present"])
        times.append(time.perf_counter() - start)
    return times[WARMUP:]


class PerSampleFiles(torch.utils.data.Dataset):
    """The replaced design: every item opens one .npy per feature."""

    def __init__(self, names, folders):
        self.names, self.folders = names, folders

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        return [torch.from_numpy(np.load(os.path.join(f, self.names[i] + ".npy"))) for f in self.folders]


def per_file_pass_seconds(names, folders, repeats):
    loader = torch.utils.data.DataLoader(PerSampleFiles(names, folders), batch_size=512, num_workers=2)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _batch in loader:
            pass
        times.append(time.perf_counter() - start)
    return times


def cold_start_seconds(specs, names, repeats):
    from dataloader.feature_store import load_features

    times = []
    for _ in range(repeats):
        shutil.rmtree(CACHE + "-cold", ignore_errors=True)
        start = time.perf_counter()
        load_features(specs, names, CACHE + "-cold")
        times.append(time.perf_counter() - start)
    shutil.rmtree(CACHE + "-cold", ignore_errors=True)
    return times


def warm_start_seconds(specs, names, repeats, mmap=False):
    """(e), (f): load_store on a warm cache, checks included."""
    from dataloader.feature_store import load_store

    load_store(specs, names, CACHE)  # built if absent
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        load_store(specs, names, CACHE, mmap=mmap)
        times.append(time.perf_counter() - start)
    return times


def check_seconds(specs, names, repeats):
    """(g): the checks a warm start runs over the packed bytes (one crc32 + finiteness pass per feature)."""
    from dataloader.feature_store import _scan, load_store
    from dataloader.kinds import kind_of_packed

    arrays = load_store(specs, names, CACHE).arrays.values()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for packed in arrays:
            _scan(kind_of_packed(packed).parts(packed))
        times.append(time.perf_counter() - start)
    return times


# Runs train.py as __main__ and writes the process's VmHWM (peak resident set, kB) to argv[1] at exit. The
# peak is read from /proc after exec: the rusage of a child also counts the pages of this (large) benchmark
# process that the child shared between fork and exec.
_REPORT_PEAK = """
import atexit, runpy, sys
out = sys.argv[1]
def report():
    with open('/proc/self/status') as f:
        peak = next(line.split()[1] for line in f if line.startswith('VmHWM'))
    with open(out, 'w') as f:
        f.write(peak)
atexit.register(report)
sys.argv = ['train.py'] + sys.argv[2:]
runpy.run_path('train.py', run_name='__main__')
"""


def peak_rss_mb(epochs, plots=False):
    """Peak RSS (MiB) of a separate, whole train.py process (warm cache), given its settings by --config."""
    cfg = train_config(epochs, os.path.join(DATA, "bench_run_rss"), no_plots=not plots)
    config = write_config(cfg, os.path.join(DATA, "bench_run_rss.yaml"))
    report = os.path.join(DATA, "bench_peak_rss.txt")
    done = subprocess.run([sys.executable, "-c", _REPORT_PEAK, report, "--config", config], cwd=REPO, capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(f"train.py failed ({done.returncode}): {done.stderr[-2000:]}")
    with open(report) as f:
        return int(f.read()) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10, help="timed epochs of (a) and (b) (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of (c) to (g) (default: %(default)s)")
    opts = parser.parse_args()
    ensure_data()
    from dataloader.registry import Registry
    from toolkit.io import load_split, split_path

    write_mer_scale_manifest()
    registry = Registry.from_config(manifests=[MANIFEST])
    split = load_split(split_path(SPLITS, "seed0"))
    names = split[TRAIN_KEY]["names"] + split[VALID_KEY]["names"]
    specs = registry.lookup(FEATS)
    feature_mb = len(names) * sum(s.dim for s in specs) * 4 / 2**20
    print(f"data: {len(names)} clips, features {', '.join(f'{s.name}({s.dim})' for s in specs)}, {feature_mb:.0f} MB float32; "
          f"torch threads {torch.get_num_threads()}")

    cold = cold_start_seconds(specs, names, opts.repeats)
    warm, warm_mmap = warm_start_seconds(specs, names, opts.repeats), warm_start_seconds(specs, names, opts.repeats, mmap=True)
    checks = check_seconds(specs, names, opts.repeats)
    per_file = per_file_pass_seconds(names, [s.folder for s in specs], opts.repeats)
    loop = loop_seconds(registry, opts.epochs + WARMUP, os.path.join(DATA, "bench_run"))
    compute = compute_seconds(registry, opts.epochs + WARMUP)
    rss, rss_plots = peak_rss_mb(2), peak_rss_mb(2, plots=True)
    a, b, c, d = (statistics.median(x) for x in (loop, compute, per_file, cold))
    print(f"(a) train.py loop, s/epoch (train+valid):         {a:.3f}   runs {[round(x, 3) for x in loop]}")
    print(f"(b) pure compute, s/epoch:                        {b:.3f}   runs {[round(x, 3) for x in compute]}")
    print(f"(c) per-sample-file DataLoader pass (2 workers):  {c:.3f}   runs {[round(x, 3) for x in per_file]}")
    print(f"(d) cold start, cache build:                      {d:.3f}   runs {[round(x, 3) for x in cold]}")
    e, f, g = (statistics.median(x) for x in (warm, warm_mmap, checks))
    print(f"(e) warm start, cache load + checks:              {e:.3f}   runs {[round(x, 3) for x in warm]}")
    print(f"(f) warm start with --mmap, + checks:             {f:.3f}   runs {[round(x, 3) for x in warm_mmap]}")
    print(f"{f'(g) cache checks alone ({feature_mb:.0f} MB, crc32+finite):':<50}{g:.3f}   runs {[round(x, 3) for x in checks]}")
    print(f"a/b = {a / b:.3f} (target <= 1.1)   a/c = {a / c:.3f} (target <= 0.5)   d/c = {d / c:.3f} (target <= 2)")
    limit = 1.5 * feature_mb + 400
    print(f"peak RSS of a train.py run: {rss:.0f} MB, {rss_plots:.0f} MB with its plots "
          f"(target <= 1.5 x {feature_mb:.0f} + 400 = {limit:.0f} MB)")


if __name__ == "__main__":
    main()
