"""One run into a run directory: claim it, load the data, ``fit``, write the files. ``train.py`` is this
with a command line; the sweep, tune.py and the benchmarks call it in-process with TrainConfig objects.

Under torchrun (see toolkit/distributed.py) every rank trains on its share of each global batch and only
rank 0 writes; the other ranks' results have no summary."""
import contextlib
import logging
import os
import time

from engine.data import load_data
from engine.fit import fit, seed_everything
from engine.writer import best_line, write_run


def default_run_dir(args):
    leaf = time.strftime("run-%Y%m%d-%H%M%S") if args.save_as_time else "run"
    return os.path.join(args.save_root, args.dataset, args.model, leaf)


def setup_logger(path):
    """The run's info.log; ``path`` None (ranks other than 0) gives a logger that writes nothing."""
    logger = logging.getLogger("train")
    logger.handlers.clear()
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if path is None:
        logger.addHandler(logging.NullHandler())
        return logger
    from toolkit.io import LogFile

    handler = LogFile(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger.addHandler(handler)
    return logger


def run(config, registry=None, callbacks=(), quiet=False):
    """Train the run ``config`` (an engine.TrainConfig) describes into its run directory; returns the RunResult
    (``result.summary`` is summary.json's content). With ``config.folds``: every fold (engine.folds; a
    FoldsResult). ``registry``: the features (default: config.py's plus ``config.manifests``); ``callbacks``
    are called after every epoch; ``quiet``: print nothing (the run's files and info.log are the same)."""
    from dataloader.registry import Registry
    from toolkit.threads import setup_threads

    registry = registry or Registry.from_config(manifests=config.manifests)
    args = config.resolved(registry)
    setup_threads(args.threads)
    if args.folds:
        from engine.folds import run_folds

        return run_folds(args, registry, callbacks, quiet)
    return run_resolved(args, registry, callbacks, quiet)


def run_resolved(args, registry, callbacks=(), quiet=False):
    """``run`` for a resolved config of a single split."""
    from toolkit import distributed
    from toolkit.device import keep_freed_memory
    from toolkit.runs import RunDir

    keep_freed_memory()
    ctx = distributed.from_env()
    run_dir = args.run_dir or default_run_dir(args)
    try:
        with RunDir(run_dir, args.overwrite) if ctx.is_main else contextlib.nullcontext() as claim:  # before any loading
            result = claimed_run(args, registry, run_dir, claim, ctx, callbacks, print if ctx.is_main and not quiet else _silent)
        ctx.barrier()  # ranks leave together: none tears its connections down while rank 0 still writes
        return result
    finally:
        distributed.close(ctx)


def _silent(*_args, **_kwargs):
    pass


def claimed_run(args, registry, run_dir, claim, ctx, callbacks, say):
    from toolkit import distributed
    from toolkit.device import check_amp, deterministic, pick_device
    from toolkit.threads import describe_threads

    start = time.time()
    seed_everything(args.seed)
    device = pick_device(args.device, ctx.local_rank if ctx.enabled else args.gpu)
    deterministic(device)
    check_amp(device, args.amp)
    ctx = distributed.init(ctx, device)
    data = load_data(args, registry, ctx, device)
    data.start_time = start
    say(f"features: {data.train.memory_note()} ({args.cache_dtype}, device {device}, {describe_threads()})", flush=True)
    result, replaced = fit_and_write(args, data, run_dir, claim, ctx, device, callbacks)
    if result.summary is not None:
        if replaced:
            say(replaced)
        say(f"run dir: {run_dir} ({len(result.history)} epochs, {result.seconds_per_epoch:.2f}s/epoch, device {device})")
        say(best_line(result))
    return result


def fit_and_write(args, data, run_dir, claim, ctx, device, callbacks):
    """``fit`` with the log in the staging folder, then the run's files; the folder replaces ``run_dir``
    only when both succeed (rank 0; the other ranks only train). Returns (result, what happened to the
    previous run in ``run_dir``, or None)."""
    from toolkit.runs import LOG_FILE, is_run_dir

    replaced = None
    with claim.staged() if ctx.is_main else contextlib.nullcontext() as stage:
        log = setup_logger(os.path.join(stage, LOG_FILE) if ctx.is_main else None)
        try:
            if ctx.is_main:
                replaced = claim.note() if is_run_dir(run_dir) else None
                log.info(claim.note())
            result = fit(args, data, callbacks, ctx, device, log)
            result.run_dir = run_dir
            if ctx.is_main:
                result.summary = write_run(stage, args, result, run_dir)
                log.info(best_line(result))
        finally:
            for handler in log.handlers:
                handler.close()
    return result, replaced
