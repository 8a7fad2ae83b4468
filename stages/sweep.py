"""Unimodal sweep: train every feature × seed inside one (or JOBS) long-lived processes.

Called by run_eval_unimodal.sh. Runs share the interpreter, so torch and the packed feature caches are
loaded once per process instead of once per run. A run whose summary.json exists and whose args.yaml
holds the same training settings is skipped unless --force, so an interrupted sweep resumes where it
stopped; a run made with other settings (another --lr, epochs, model default, ...) is trained again.
"""
import os
import sys
import time

import config
from toolkit.errors import ArgumentParser, UserError, bounded, cli
from toolkit.io import resolve


def all_features():
    from dataloader import feature_registry

    return list(feature_registry().values())


def default_features(split_path):
    """Every config.py feature whose folder exists and holds the split's first clip (others are listed)."""
    from toolkit.io import load_split

    first = load_split(split_path)["train_info"]["names"][0]
    usable, absent, other = [], [], []
    for spec in all_features():
        if not os.path.isdir(spec.folder):
            absent.append(spec.name)
        elif not os.path.exists(os.path.join(spec.folder, first + ".npy")):
            other.append(spec.name)
        else:
            usable.append(spec)
    if absent:
        print(f"skipping {len(absent)} config.py features whose folders do not exist: {', '.join(absent)}")
    if other:
        print(f"skipping {len(other)} config.py features with no file for the split's clips (another data set): {', '.join(other)}")
    if not usable:
        raise UserError(f"no feature in config.py has files for the clips of {split_path}; make the demo data, fix the paths or set FEATS")
    return usable


def plan_runs(opts):
    """[(feature, seed, run_dir)] to do, checking features and split files before anything trains."""
    from dataloader import lookup_features

    seeds = opts.seeds.split()
    if not seeds:
        raise UserError("--seeds (SEEDS) names no seed; give at least one, e.g. SEEDS=\"0 1 2\"")
    missing = [f"{opts.dataset_prefix}{s}.npy" for s in seeds
               if not os.path.exists(os.path.join(resolve(opts.train_lst), f"{opts.dataset_prefix}{s}.npy"))]
    if missing:
        raise UserError(f"no split file {', '.join(missing)} in {opts.train_lst}; write them with preprocess/make_lst.sh "
                        f"(or preprocess/mer2025_base.py --folds K for DATASET_PREFIX=fold)")
    if opts.feats.split():
        specs = lookup_features(opts.feats.split())
        absent = [s for s in specs if not os.path.isdir(s.folder)]
        if absent:
            raise UserError(f"feature folder {absent[0].folder} of '{absent[0].name}' does not exist; fix config.py or drop it from FEATS")
    else:
        specs = default_features(os.path.join(resolve(opts.train_lst), f"{opts.dataset_prefix}{seeds[0]}.npy"))
    return [(s.name, seed, os.path.join(opts.save_root, s.name, f"{opts.dataset_prefix}{seed}")) for s in specs for seed in seeds]


FRAME_REPEAT = 1  # a temporal expert costs ~20x an utterance expert: one copy unless --repeat says otherwise
UTT_REPEAT = 3


def feature_repeat(opts, feature):
    """Expert copies for ``feature``: --repeat when given, else 3 (utterance level) or 1 (frame level)."""
    from dataloader import lookup_features

    if opts.repeat is not None:
        return opts.repeat
    return FRAME_REPEAT if lookup_features([feature])[0].frame_level else UTT_REPEAT


def train_argv(opts, feature, seed, run_dir):
    return ["--feat", feature, "--dataset", f"{opts.dataset_prefix}{seed}", "--seed", str(seed),
            "--repeat", str(feature_repeat(opts, feature)),
            "--epochs", str(opts.epochs), "--lr", str(opts.lr), "--batch_size", str(opts.batch_size),
            "--train_lst", opts.train_lst, "--run_dir", run_dir, "--no_progress"] + opts.train_args


# flags that do not change what a run learns: a finished run with other values still counts as done
BOOKKEEPING = {"run_dir", "save_root", "save_as_time", "no_progress", "no_plots", "num_workers", "device", "gpu", "cache_dir",
               "train_lst", "save_model"}


def changed_settings(opts, feature, seed, run_dir):
    """[(flag, stored value, wanted value)] where the finished run in ``run_dir`` differs from what this sweep
    would train; None when the run has not finished (no summary.json or no readable args.yaml)."""
    import yaml

    import train

    if not os.path.exists(os.path.join(run_dir, "summary.json")):
        return None
    try:
        with open(os.path.join(run_dir, "args.yaml")) as f:
            stored = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None
    wanted = vars(train.parse_args(train_argv(opts, feature, seed, run_dir)))
    return [(key, stored.get(key), value) for key, value in sorted(wanted.items())
            if key not in BOOKKEEPING and stored.get(key) != value]


def run_one(task):
    """Train one (feature, seed) into its run dir; returns (feature, seed, f1 or None, seconds, error message or None)."""
    import engine
    import train

    opts, feature, seed, run_dir = task
    start = time.time()
    try:
        result = engine.run(train.parse_args(train_argv(opts, feature, seed, run_dir)), quiet=True)
        return feature, seed, result.summary["f1"], time.time() - start, None
    except UserError as err:
        return feature, seed, None, time.time() - start, str(err)
    except Exception as err:  # noqa: BLE001 - reported as a failed run, the sweep stops cleanly
        return feature, seed, None, time.time() - start, f"{err.__class__.__name__}: {err}"


def frame_length(spec, files=20):
    """Typical frames per clip of a frame-level feature: the p95 of T over up to ``files`` file headers."""
    import numpy as np

    from dataloader.npyfile import npy_header

    names = sorted(os.listdir(spec.folder))
    headers = [npy_header(os.path.join(spec.folder, name)) for name in names[:: max(1, len(names) // files)][:files]]
    lengths = [h[1][0] for h in headers if h is not None and len(h[1]) == 2]
    return int(np.percentile(lengths, 95)) if lengths else 1


def probe_seconds_per_epoch(opts, feature, n_train, n_valid):
    """Seconds per epoch of one run of ``feature``, from timing a few training steps of its model on random
    inputs of the real shapes (an estimate: data loading and early stopping are not counted)."""
    import argparse as _argparse

    import torch

    import train
    from dataloader import lookup_features
    from dataloader.batches import Frames
    from dataloader.feature_store import expert_names
    from models import get_model
    from engine.optim import adamw

    spec = lookup_features([feature])[0]
    args = train.parse_args(train_argv(opts, feature, 0, "unused"))
    experts = expert_names([feature], args.repeat)
    hp = _argparse.Namespace(**vars(args), feat_dims={k: spec.dim for k in experts},
                             feat_levels={k: spec.level for k in experts}, num_classes=len(config.EMO_RULE[args.emo_rule]))
    model = get_model(args.model, hp)
    optimizer = adamw(model.parameters(), args.lr, args.l2, torch.device("cpu"))
    batch = min(args.batch_size, max(1, n_train))
    if spec.frame_level:
        length = min(frame_length(spec), args.max_frames)
        x = Frames(torch.randn(batch, length, spec.dim), torch.ones(batch, length, dtype=torch.bool))
    else:
        x = torch.randn(batch, spec.dim)
    feats = {k: x for k in experts}
    labels = torch.randint(0, hp.num_classes, (batch,))

    def step():
        loss = model.loss(model(feats, None), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    per_clip = min(times) / batch  # the least disturbed step: other processes only ever add time
    return per_clip * (n_train + 0.4 * n_valid)  # validation: forward passes only


def print_estimates(opts, todo):
    """Before training: the estimated time of each feature's runs (frame-level features are the slow ones)."""
    from toolkit.io import load_split

    if not todo:
        return
    split = load_split(os.path.join(resolve(opts.train_lst), f"{opts.dataset_prefix}{todo[0][2]}.npy"))
    n_train, n_valid = len(split["train_info"]["names"]), len(split["valid_info"]["names"])
    runs = {}
    for _, feature, _, _ in todo:
        runs[feature] = runs.get(feature, 0) + 1
    lines, total = [], 0.0
    for feature, count in runs.items():
        per_run = probe_seconds_per_epoch(opts, feature, n_train, n_valid) * opts.epochs
        total += per_run * count
        lines.append((per_run, f"  {feature}: ~{per_run:.{0 if per_run >= 10 else 1}f}s per run (repeat {feature_repeat(opts, feature)}) × {count}"))
    print(f"estimated time (all {opts.epochs} epochs; early stopping ends runs sooner): ~{total / max(1, opts.jobs) / 60:.1f} min")
    for _, line in sorted(lines, reverse=True):
        print(line)


FEATURE_DICTS = ("FEAT_VIDEO_DICT", "FEAT_AUDIO_DICT", "FEAT_TEXT_DICT")


def init_worker(threads, feature_dicts):
    """Worker set-up: its share of the cores, and the parent's feature registry (config may be edited in-process)."""
    import torch

    torch.set_num_threads(threads)
    for name, value in feature_dicts.items():
        setattr(config, name, value)


@cli
def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--feats", default="", help="space-separated features ('': every config.py feature with a folder)")
    p.add_argument("--seeds", default="0 1 2 3 4", help="space-separated seeds: one run per feature and seed")
    p.add_argument("--dataset_prefix", default="seed", help="split files <prefix><seed>.npy (e.g. fold)")
    p.add_argument("--epochs", type=bounded(int, 1), default=80, help="most epochs per run")
    p.add_argument("--lr", type=bounded(float, 0, low_open=True), default=1e-4, help="learning rate")
    p.add_argument("--batch_size", type=bounded(int, 1), default=512, help="clips per training step")
    p.add_argument("--repeat", type=bounded(int, 1), default=None,
                   help=f"expert copies of the feature (None: {UTT_REPEAT} for utterance features, comparable with a trimodal "
                        f"model; {FRAME_REPEAT} for frame-level ones, whose temporal expert costs ~20x)")
    p.add_argument("--jobs", type=bounded(int, 1), default=1, help="runs in parallel (processes)")
    p.add_argument("--save_root", default=os.path.join(config.PATH_TO_SAVED, "unimodal"), help="parent of the run directories")
    p.add_argument("--train_lst", default=config.PATH_TO_TRAIN_LST, help="folder of the split files")
    p.add_argument("--no_estimate", action="store_true", help="skip the timed probe that estimates each feature's run time")
    p.add_argument("--force", action="store_true", help="retrain runs that already have a summary.json")
    p.add_argument("train_args", nargs="*", help="extra train.py flags, after --")
    opts = p.parse_args(argv)
    plan = plan_runs(opts)
    todo, stale = [], []
    for feature, seed, run_dir in plan:
        changes = None if opts.force else changed_settings(opts, feature, seed, run_dir)
        if changes == []:  # finished with the same settings
            continue
        todo.append((opts, feature, seed, run_dir))
        if changes:
            stale.append((feature, seed, changes))
    print(f"unimodal sweep: {len(plan)} runs ({len(plan) // len(opts.seeds.split())} features × {len(opts.seeds.split())} seeds), "
          f"{len(plan) - len(todo)} already done, {len(todo)} to train, {opts.jobs} job(s); results in {opts.save_root}")
    if stale:
        feature, seed, changes = stale[0]
        shown = ", ".join(f"{key} {old!r} -> {new!r}" for key, old, new in changes[:3])
        print(f"{len(stale)} finished runs were trained with other settings and are trained again "
              f"(first: {feature} {opts.dataset_prefix}{seed}: {shown})")
    if not opts.no_estimate:
        print_estimates(opts, todo)
    start = time.time()
    if opts.jobs > 1:
        import multiprocessing

        threads = max(1, (os.cpu_count() or 1) // opts.jobs)
        pool = multiprocessing.get_context("spawn").Pool(opts.jobs, initializer=init_worker, initargs=(threads, {n: getattr(config, n) for n in FEATURE_DICTS}))
        results = pool.imap_unordered(run_one, todo)
    else:
        pool, results = None, map(run_one, todo)
    try:
        for done, (feature, seed, f1, seconds, error) in enumerate(results, 1):
            if error:
                print(f"error: sweep stopped: {feature} {opts.dataset_prefix}{seed} failed: {error}\n"
                      f"finished runs are kept; fix the problem and rerun the same command to resume", file=sys.stderr)
                sys.exit(1)
            print(f"[{done}/{len(todo)}] {feature} {opts.dataset_prefix}{seed}: f-score {f1:.4f} ({seconds:.1f}s)", flush=True)
        if pool is not None:  # workers that exit normally release their semaphores (tqdm's lock); killed ones leak them
            pool.close()
            pool.join()
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    print(f"sweep finished in {time.time() - start:.1f}s; summarise with: python eval_avg_performance.py --root {opts.save_root}")


if __name__ == "__main__":
    main()
