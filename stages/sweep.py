"""Unimodal sweep: train every feature × seed inside one (or JOBS) long-lived processes.

Called by run_eval_unimodal.sh. Runs share the interpreter, so torch and the packed feature caches are
loaded once per process instead of once per run. A run whose summary.json exists and whose args.yaml
holds the same training settings is skipped unless --force, so an interrupted sweep resumes where it
stopped; a run made with other settings (another --lr, epochs, model default, ...) is trained again.
"""
import os
import sys
import time

from toolkit.errors import ArgumentParser, UserError, bounded, cli
from toolkit.io import TRAIN_KEY, VALID_KEY, split_path
from toolkit.threads import apply_threads, thread_choice


def default_features(registry, split_file):
    """Every registered feature whose folder exists and holds the split's first clip (others are listed)."""
    from toolkit.io import load_split

    first = load_split(split_file)[TRAIN_KEY]["names"][0]
    usable, absent, other = [], [], []
    for spec in registry.features.values():
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
        raise UserError(f"no feature in config.py has files for the clips of {split_file}; make the demo data, fix the paths or set FEATS")
    return usable


def plan_runs(opts, registry):
    """[(feature, seed, run_dir)] to do, checking features and split files before anything trains."""
    seeds = opts.seeds.split()
    if not seeds:
        raise UserError("--seeds (SEEDS) names no seed; give at least one, e.g. SEEDS=\"0 1 2\"")
    bad = [s for s in seeds if not s.isdigit()]
    if bad:
        raise UserError(f"--seeds (SEEDS): {bad[0]!r} is not a seed; give whole numbers >= 0, e.g. SEEDS=\"0 1 2\"")
    missing = [f"{opts.dataset_prefix}{s}.npy" for s in seeds
               if not os.path.exists(split_path(opts.train_lst, f"{opts.dataset_prefix}{s}"))]
    if missing:
        raise UserError(f"no split file {', '.join(missing)} in {opts.train_lst}; write them with preprocess/make_lst.sh "
                        f"(or preprocess/mer2025_base.py --folds K for DATASET_PREFIX=fold)")
    if opts.feats.split():
        specs = registry.lookup(opts.feats.split())
        absent = [s for s in specs if not os.path.isdir(s.folder)]
        if absent:
            raise UserError(f"feature folder {absent[0].folder} of '{absent[0].name}' does not exist; fix config.py or drop it from FEATS")
    else:
        specs = default_features(registry, split_path(opts.train_lst, f"{opts.dataset_prefix}{seeds[0]}"))
    # seed by seed: the first pass ranks every feature once, and parallel jobs start on different features
    return [(s.name, seed, os.path.join(opts.save_root, s.name, f"{opts.dataset_prefix}{seed}")) for seed in seeds for s in specs]


FRAME_REPEAT = 1  # a temporal expert costs ~20x an utterance expert: one copy unless --repeat says otherwise
UTT_REPEAT = 3
MIN_STEPS_PER_EPOCH = 4
# The settings of a sweep's runs (--preset). "default": train.py's own (TrainConfig's defaults: lr 6e-3, batch 256, up
# to 100 epochs, early stopping after 30 without a better validation F1) with one expert copy, and a batch of at
# most a quarter of the training set, so a small training set still gets MIN_STEPS_PER_EPOCH steps per epoch; these
# rank features like a per-feature search of learning rate and epochs (benchmarks/bench_ranking.py). "published":
# the published unimodal script's, lr 1e-4, batch 512, 80 epochs, 3 expert copies (1 of a frame-level feature), which
# under-train small or strong features; kept to reproduce published tables. --epochs, --lr, --batch_size and
# --repeat override either.
PRESETS = {"default": {}, "published": {"lr": 1e-4, "batch_size": 512, "epochs": 80}}


def feature_repeat(opts, registry, feature):
    """Expert copies for ``feature``: --repeat when given, else 1 (default preset), or 3 (published preset,
    utterance level) or 1 (published, frame level)."""
    if opts.repeat is not None:
        return opts.repeat
    if opts.preset != "published":
        return 1
    return FRAME_REPEAT if registry.lookup([feature])[0].frame_level else UTT_REPEAT


def preset_settings(opts, dataset):
    """{lr, batch_size, epochs} of the preset for split ``dataset``, under --lr, --batch_size and --epochs when given."""
    from engine.config import TRAIN_FIELDS
    from toolkit.io import load_split

    settings = dict(PRESETS[opts.preset])
    if opts.preset == "default" and opts.batch_size is None:
        n_train = len(load_split(split_path(opts.train_lst, dataset))[TRAIN_KEY]["names"])
        settings["batch_size"] = max(1, min(TRAIN_FIELDS["batch_size"].default, n_train // MIN_STEPS_PER_EPOCH))
    given = {key: getattr(opts, key) for key in ("lr", "batch_size", "epochs") if getattr(opts, key) is not None}
    return {**settings, **given}


def run_config(opts, registry, feature, seed, run_dir):
    """The resolved TrainConfig of one run: the sweep's settings, under the train.py flags given after --."""
    from engine.flags import parse_config

    dataset = f"{opts.dataset_prefix}{seed}"
    sweep = {"feat": [feature], "dataset": dataset, "seed": int(seed), "repeat": feature_repeat(opts, registry, feature),
             **preset_settings(opts, dataset), "train_lst": opts.train_lst, "run_dir": run_dir, "no_progress": True,
             "save_model": opts.keep != "none"}
    return parse_config(opts.train_args, under=sweep).resolved(registry)


# flags that do not change what a run learns: a finished run with other values still counts as done
BOOKKEEPING = {"run_dir", "save_root", "save_as_time", "no_progress", "no_plots", "num_workers", "device", "gpu", "cache_dir",
               "train_lst", "save_model", "threads"}


def changed_settings(opts, registry, feature, seed, run_dir):
    """[(setting, stored value, wanted value)] where the finished run in ``run_dir`` differs from what this sweep
    would train; None when the run has not finished (no summary.json, or no readable settings)."""
    from engine.config import load_run_config
    from toolkit.runs import SUMMARY_FILE, run_file

    if not os.path.exists(run_file(run_dir, SUMMARY_FILE)):
        return None
    stored = load_run_config(run_dir)
    if stored is None:
        return None
    stored, wanted = flat_settings(stored), flat_settings(run_config(opts, registry, feature, seed, run_dir))
    return [(key, stored.get(key), value) for key, value in sorted(wanted.items())
            if key not in BOOKKEEPING and stored.get(key) != value]


def lacks_model(opts, run_dir):
    """Whether KEEP=all wants a checkpoint that the finished run in ``run_dir`` does not hold (it is trained again)."""
    from toolkit.runs import CHECKPOINT_FILE, run_file

    return opts.keep == "all" and not os.path.exists(run_file(run_dir, CHECKPOINT_FILE))


def flat_settings(cfg):
    """{setting: value} of a TrainConfig, the model's settings as ``hparams.NAME``."""
    values = cfg.to_dict()
    hparams = values.pop("hparams") or {}
    return {**values, **{f"hparams.{k}": v for k, v in hparams.items()}}


class Heartbeat:
    """An epoch callback that prints one line about a long run every ``every`` seconds (epoch, best F1 so far),
    and one after the first epoch of a process's first run (training has started; the epoch's time), so a sweep
    of slow runs is never silent; in a worker process the line goes to the shared stdout."""

    started = False  # per process: whether its first run has reported its first epoch

    def __init__(self, label, epochs, every):
        self.label, self.epochs, self.every = label, epochs, every
        self.start = self.last = time.time()

    def __call__(self, end):
        now = time.time()
        first = self.every and not Heartbeat.started
        if first or (self.every and now - self.last >= self.every):
            Heartbeat.started = True
            self.last = now
            print(f"  ... {self.label}: epoch {end.epoch}/{self.epochs} ({end.seconds:.2f}s each), best f-score {end.best_f1:.4f} "
                  f"at epoch {end.best_epoch} ({now - self.start:.0f}s)", flush=True)


def run_one(task, **changes):
    """Train one (feature, seed) into its run dir (``changes``: TrainConfig fields to set); returns (feature, seed,
    f1 or None, seconds, error message or None)."""
    import engine

    opts, registry, feature, seed, run_dir = task
    start = time.time()
    try:
        cfg = run_config(opts, registry, feature, seed, run_dir).replace(**changes)
        beat = Heartbeat(f"{feature} {opts.dataset_prefix}{seed}", cfg.epochs, opts.progress_every)
        result = engine.run(cfg, registry, callbacks=[beat], quiet=True)
        return feature, seed, result.summary["f1"], time.time() - start, None
    except UserError as err:
        return feature, seed, None, time.time() - start, str(err)
    except Exception as err:  # noqa: BLE001 - reported as a failed run, the sweep stops cleanly
        return feature, seed, None, time.time() - start, f"{err.__class__.__name__}: {err}"


def keep_models(opts, registry, plan, trained):
    """KEEP=best: each feature's best run (highest F1; on a tie the first run dir by name) keeps its checkpoint; those of
    the feature's other runs that this sweep trained (``trained``: their run dirs) are removed. A best run
    without a checkpoint (trained before the sweep kept models) is trained again to write one: same seed, same
    F1. KEEP=all keeps every run's checkpoint, KEEP=none writes none."""
    from toolkit.results import best_run, read_summary_file
    from toolkit.runs import CHECKPOINT_FILE, SUMMARY_FILE, run_file

    if opts.keep != "best":
        return
    runs = {}
    for feature, seed, run_dir in plan:
        if os.path.exists(run_file(run_dir, SUMMARY_FILE)):
            summary = read_summary_file(run_file(run_dir, SUMMARY_FILE))
            runs.setdefault(feature, []).append({"f1": summary["f1"], "run_dir": run_dir, "seed": seed})
    removed = 0
    for feature, members in runs.items():
        best = best_run(members)
        for member in members:
            checkpoint = run_file(member["run_dir"], CHECKPOINT_FILE)
            if member is not best and member["run_dir"] in trained and os.path.exists(checkpoint):
                os.remove(checkpoint)
                removed += 1
        if not os.path.exists(run_file(best["run_dir"], CHECKPOINT_FILE)):
            print(f"{feature}: its best run {best['run_dir']} has no {CHECKPOINT_FILE} (trained without keeping models); "
                  "training it again to keep its model", flush=True)
            *_, error = run_one((opts, registry, feature, best["seed"], best["run_dir"]), overwrite=True)
            if error:
                raise UserError(f"retraining {best['run_dir']} failed: {error}")
    if runs:
        print(f"models kept: the best run of each of {len(runs)} features holds {CHECKPOINT_FILE} ({removed} of other seeds "
              "removed; KEEP=all keeps them); the ranking table names them")


def frame_length(spec):
    """Typical frames per clip of a frame-level feature: the p95 of T over every file's header (the figure
    check_feat_dim.py prints)."""
    from dataloader.npyfile import frame_counts, nearest_rank

    lengths = frame_counts([os.path.join(spec.folder, name) for name in sorted(os.listdir(spec.folder)) if name.endswith(".npy")])
    return nearest_rank(lengths, 95) if lengths else 1


def probe_seconds_per_epoch(args, registry, n_train, n_valid):
    """Seconds per epoch of one run ``args`` (the resolved run config of one feature), from timing a few training
    steps of its model on random inputs of the real shapes (an estimate: data loading and early stopping are not
    counted)."""
    import torch

    from dataloader.batches import Frames
    from dataloader.feature_store import expert_names
    from engine.optim import adamw
    from models import create_model

    feature, = args.feat
    spec = registry.lookup([feature])[0]
    experts = expert_names([feature], args.repeat)
    num_classes = len(registry.classes(args.emo_rule))
    model = create_model(args.model, {k: spec.dim for k in experts}, num_classes, args.hparams, {k: spec.level for k in experts})
    optimizer = adamw(model.parameters(), args.lr, args.l2, torch.device("cpu"))
    batch = min(args.batch_size, max(1, n_train))
    if spec.frame_level:
        length = min(frame_length(spec), args.max_frames)
        x = Frames(torch.randn(batch, length, spec.dim), torch.ones(batch, length, dtype=torch.bool))
    else:
        x = torch.randn(batch, spec.dim)
    feats = {k: x for k in experts}
    labels = torch.randint(0, num_classes, (batch,))

    def step():
        loss = model.loss(model(feats, None), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    times = []
    for _ in range(2):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    per_clip = min(times) / batch  # the least disturbed step: other processes only ever add time
    return per_clip * (n_train + 0.4 * n_valid)  # validation: forward passes only


def print_estimates(opts, registry, todo):
    """Before training: the estimated time of each feature's runs (frame-level features are the slow ones);
    returns {feature: estimated seconds per run}."""
    from toolkit.io import load_split

    if not todo:
        return {}
    seed = todo[0][3]
    split = load_split(split_path(opts.train_lst, f"{opts.dataset_prefix}{seed}"))
    n_train, n_valid = len(split[TRAIN_KEY]["names"]), len(split[VALID_KEY]["names"])
    runs = {}
    for _, _, feature, _, _ in todo:
        runs[feature] = runs.get(feature, 0) + 1
    lines, total, estimates = [], 0.0, {}
    for feature, count in runs.items():
        args = run_config(opts, registry, feature, seed, "unused")
        per_run = estimates[feature] = probe_seconds_per_epoch(args, registry, n_train, n_valid) * args.epochs
        total += per_run * count
        lines.append((per_run, f"  {feature}: ~{per_run:.{0 if per_run >= 10 else 1}f}s per run (repeat {args.repeat}) × {count}"))
    print(f"first estimate, from a few timed training steps per feature: ~{total / max(1, opts.jobs) / 60:.1f} min (all "
          f"{args.epochs} epochs, lr {args.lr:g}, batch {args.batch_size}; early stopping ends runs sooner, reading data and "
          "other jobs on the machine make them longer; each finished run's line gives the time left, measured)")
    for _, line in sorted(lines, reverse=True):
        print(line)
    return estimates


def duration(seconds):
    """``seconds`` as 45s, 3m05s or 1h02m."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """The remaining time of a sweep, refreshed from its finished runs: a feature's runs take what its finished
    runs took; a feature without one takes its probe estimate scaled by how far the probe was off so far (or
    the mean run when there is no probe)."""

    def __init__(self, todo, estimates, jobs):
        self.left = [feature for _, _, feature, _, _ in todo]
        self.estimates, self.jobs = estimates, jobs
        self.measured = {}  # feature -> [seconds of its finished runs]

    def finished(self, feature, seconds):
        self.left.remove(feature)
        self.measured.setdefault(feature, []).append(seconds)

    def expected(self, feature):
        import statistics

        if feature in self.measured:
            return statistics.fmean(self.measured[feature])
        probed = [f for f in self.measured if self.estimates.get(f)]
        if feature in self.estimates and probed:  # how far off the probe was, over every probed feature's runs
            ratio = sum(statistics.fmean(self.measured[f]) for f in probed) / sum(self.estimates[f] for f in probed)
            return self.estimates[feature] * ratio
        return statistics.fmean(t for times in self.measured.values() for t in times)

    def eta(self):
        """Seconds the runs not yet finished should take, spread over the jobs."""
        return sum(self.expected(feature) for feature in self.left) / max(1, min(self.jobs, len(self.left) or 1))


def line_buffered():
    """Every line on stdout shows when it is printed, also through a pipe or ``tee``."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(line_buffering=True)


def init_worker(threads, how):
    """Worker set-up: its share of the cores (the registry travels with each task), and a stdout that passes
    each line on at once (a pipe would otherwise hold a worker's progress lines until it exits)."""
    import engine  # noqa: F401 - loaded once per worker, before its first run

    line_buffered()
    apply_threads(threads, how)


def build_parser():
    p = ArgumentParser(description=__doc__)
    p.add_argument("--feats", default="", help="space-separated features ('': every config.py feature with a folder)")
    p.add_argument("--seeds", default="0 1 2 3 4", help="space-separated seeds: one run per feature and seed")
    p.add_argument("--dataset_prefix", default="seed", help="split files <prefix><seed>.npy (e.g. fold)")
    p.add_argument("--preset", choices=tuple(PRESETS), default="default",
                   help="the runs' settings: default (train.py's, one expert copy, a batch of at most a quarter of the "
                        "training set), or published (lr 1e-4, batch 512, 80 epochs, 3 expert copies; for reproduction)")
    p.add_argument("--epochs", type=bounded(int, 1), default=None, help="most epochs per run (None: the preset's)")
    p.add_argument("--lr", type=bounded(float, 0, low_open=True), default=None, help="learning rate (None: the preset's)")
    p.add_argument("--batch_size", type=bounded(int, 1), default=None, help="clips per training step (None: the preset's)")
    p.add_argument("--repeat", type=bounded(int, 1), default=None,
                   help=f"expert copies of the feature (None: 1; published preset: {UTT_REPEAT} for utterance features, "
                        f"comparable with a trimodal model, {FRAME_REPEAT} for frame-level ones, whose temporal expert costs ~20x)")
    p.add_argument("--jobs", type=bounded(int, 1), default=1, help="runs in parallel (processes), each with its share "
                   "of the CPUs' threads (train.py's --threads N after -- sets the count per process)")
    p.add_argument("--save_root", default=None, help="parent of the run directories (default: <config.PATH_TO_SAVED>/unimodal)")
    p.add_argument("--train_lst", default=None, help="folder of the split files (default: config.PATH_TO_TRAIN_LST)")
    p.add_argument("--manifests", default="", help="feature manifests (features.yaml, comma-separated) to register besides config.py's")
    p.add_argument("--no_estimate", action="store_true", help="skip the timed probe that estimates each feature's run time")
    p.add_argument("--keep", choices=("best", "all", "none"), default="best",
                   help="checkpoints (best.pth) kept: of each feature's best seed, of every run, or none")
    p.add_argument("--force", action="store_true", help="retrain runs that already have a summary.json")
    p.add_argument("--progress_every", type=bounded(float, 0), default=15.0,
                   help="seconds between the progress lines of a run still training (0: only a line per finished run)")
    p.add_argument("train_args", nargs="*", help="extra train.py flags, after --")
    return p


def parse_options(argv):
    """(options with the registry's default paths filled in, the registry)."""
    from dataloader.registry import Registry

    opts = build_parser().parse_args(argv)
    registry = Registry.from_config(manifests=[m for m in opts.manifests.split(",") if m])
    opts.save_root = opts.save_root or os.path.join(registry.save_root, "unimodal")
    opts.train_lst = opts.train_lst or registry.train_lst
    return opts, registry


def runs_to_train(opts, registry, plan):
    """The tasks of ``plan`` not finished with these settings (all with --force); says what is done and what is stale."""
    todo, stale = [], []
    for feature, seed, run_dir in plan:
        changes = None if opts.force else changed_settings(opts, registry, feature, seed, run_dir)
        if changes == [] and not lacks_model(opts, run_dir):  # finished with the same settings
            continue
        todo.append((opts, registry, feature, seed, run_dir))
        if changes:
            stale.append((feature, seed, changes))
    print(f"unimodal sweep: {len(plan)} runs ({len(plan) // len(opts.seeds.split())} features × {len(opts.seeds.split())} seeds), "
          f"{len(plan) - len(todo)} already done, {len(todo)} to train, {opts.jobs} job(s); results in {opts.save_root}")
    if stale:
        feature, seed, changes = stale[0]
        shown = ", ".join(f"{key} {old!r} -> {new!r}" for key, old, new in changes[:3])
        print(f"{len(stale)} finished runs were trained with other settings and are trained again "
              f"(first: {feature} {opts.dataset_prefix}{seed}: {shown})")
    return todo


def report_runs(opts, todo, results, progress):
    """A line per finished run of ``results`` (run_one's answers for ``todo``); the first failure stops the sweep."""
    for done, (feature, seed, f1, seconds, error) in enumerate(results, 1):
        if error:
            print(f"error: sweep stopped: {feature} {opts.dataset_prefix}{seed} failed: {error}\n"
                  f"finished runs are kept; fix the problem and rerun the same command to resume", file=sys.stderr)
            sys.exit(1)
        progress.finished(feature, seconds)
        eta = f"; about {duration(progress.eta())} left" if done < len(todo) else ""
        print(f"[{done}/{len(todo)}] {feature} {opts.dataset_prefix}{seed}: f-score {f1:.4f} ({seconds:.1f}s){eta}", flush=True)


def sweep_threads(opts):
    """(count, how) of each process's threads: the train.py flag --threads N given after --, else the share of
    ``opts.jobs`` processes (toolkit/threads.py), chosen before any of them trains."""
    from engine.flags import parse_config

    return thread_choice(parse_config(opts.train_args).threads, jobs=opts.jobs)


@cli
def main(argv=None):
    line_buffered()
    opts, registry = parse_options(argv)
    plan = plan_runs(opts, registry)
    todo = runs_to_train(opts, registry, plan)
    pool, start = None, time.time()
    if todo:
        threads = sweep_threads(opts)
        print(f"{apply_threads(*threads)} CPU threads per job ({threads[1]})", flush=True)
    if opts.jobs > 1 and todo:  # the workers start training while the estimate is measured
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(opts.jobs, initializer=init_worker, initargs=threads)
    try:
        results = pool.imap_unordered(run_one, todo) if pool is not None else map(run_one, todo)
        progress = Progress(todo, {} if opts.no_estimate else print_estimates(opts, registry, todo), opts.jobs)
        report_runs(opts, todo, results, progress)
        if pool is not None:  # workers that exit normally release their semaphores (tqdm's lock); killed ones leak them
            pool.close()
            pool.join()
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    keep_models(opts, registry, plan, {task[4] for task in todo})
    print(f"sweep finished in {time.time() - start:.1f}s; summarise with: python eval_avg_performance.py --root {opts.save_root}")


if __name__ == "__main__":
    main()
