"""Hyper-parameter search with Optuna over K folds (``tune.py`` is its command line).

Search space: every field of the model's config dataclass with ``search`` metadata (models/hparams.py:
``(low, high)`` uniform, integers for int fields; ``(low, high, "log")`` log-uniform; ``[a, b, ...]`` a
choice) plus OPTIM_SPACE for the optimiser. A flag given after ``--`` fixes its value and leaves the space.

A trial trains fold0..fold{K-1}.npy in-process (``engine.load_data`` + ``engine.fit``, no run directories;
each fold is a TrainConfig: the flags after ``--`` with the trial's values over them) and scores the mean of the folds' best validation weighted F1;
the test set is never read. Each epoch's valid F1 is reported to the trial at step ``fold * epochs + epoch``,
so the pruner compares trials at the same fold and epoch; a pruned trial stops through engine's ``Prune``.

The study lives in an embedded store in --out: SQLite ``study.db``, or with --jobs > 1 a journal file
``study.journal`` that several worker processes append to at once (--storage takes any database URL).
The same command resumes it: finished and pruned trials count toward --trials; a trial left running by a
killed command is marked failed and its place is tried again. One tune command per study at a time (--jobs
gives it several workers; a second command on the same --out is refused): the remaining trials are shared out
before the workers start, so none is lost or run twice. A worker that is killed (the out-of-memory killer) has
its trial marked failed and a new worker takes over its share (stages/search_workers.py).
"""
import dataclasses
import hashlib
import json
import os
import statistics
import sys
import time

from toolkit.errors import UserError
from toolkit.threads import apply_threads, thread_choice

# the optimiser's search space (same format as the config fields' ``search``): peak AdamW learning rate,
# weight decay and batch size
OPTIM_SPACE = {"lr": (1e-4, 3e-2, "log"), "l2": (1e-5, 1e-1, "log"), "batch_size": [64, 128, 256]}
TUNE_FLAGS = ("model", "feat", "epochs", "dataset", "folds", "run_dir")  # set by tune.py itself, not after --
NOT_SETTINGS = {"dataset", "run_dir", "folds", "config", "no_progress", "no_plots", "feat_topn", "topn_from", "topn_modalities"}


@dataclasses.dataclass
class Plan:
    """What every worker needs to run its share of the trials (picklable for spawned processes)."""

    model: str
    base: dict  # the settings of every trial and fold (TrainConfig fields, the model's under "hparams")
    registry: object  # the features (dataloader.registry.Registry)
    space: dict
    folds: int
    epochs: int
    study: str
    storage: str  # a database URL, or journal:<path>
    trials: int
    sampler: str
    sampler_seed: int
    pruner: str
    prune_below: float
    out: str
    jobs: int = 1
    threads: tuple = (1, "")  # (count, how chosen) of each worker: the flag --threads after --, else its share


def check_space(name, space, where):
    """Refuse a search space that is not (low, high), (low, high, "log") or a non-empty list."""
    if isinstance(space, list) and space:
        return
    numbers = isinstance(space, tuple) and len(space) in (2, 3) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in space[:2])
    if numbers and space[0] < space[1] and (len(space) == 2 or (space[2] == "log" and space[0] > 0)):
        return
    raise UserError(f"{where}: search space of {name} is {space!r}; write (low, high), (low, high, \"log\") or [a, b, ...]")


def search_space(model, fixed=()):
    """{name: space} of ``model``'s searched config fields plus OPTIM_SPACE, without the ``fixed`` settings
    (model settings that share a training setting's name are keyed ``hp.NAME``)."""
    from models import model_config_class, model_hparams

    where = model_config_class(model).__name__
    space = {model_param(spec.name): spec.metadata["search"] for spec in model_hparams(model) if "search" in spec.metadata}
    for name, values in space.items():
        check_space(name, values, where)
    space.update(OPTIM_SPACE)
    return {name: values for name, values in space.items() if name not in fixed}


def suggest(trial, name, space):
    """The trial's value of ``name`` in ``space`` (ints for integer bounds, a log scale with "log")."""
    if isinstance(space, list):
        return trial.suggest_categorical(name, space)
    low, high, log = space[0], space[1], len(space) == 3
    if isinstance(low, int) and isinstance(high, int):
        return trial.suggest_int(name, low, high, log=log)
    return trial.suggest_float(name, low, high, log=log)


def model_param(name):
    """The search-space key of a model setting: its name, or ``hp.NAME`` where a training setting has the name."""
    from engine.config import TRAIN_FIELDS

    return f"hp.{name}" if name in TRAIN_FIELDS else name


def trial_config(plan, params, fold):
    """The resolved TrainConfig of fold ``fold`` of a trial with ``params``."""
    from engine.config import from_dict, merge_sources

    trial = {k: v for k, v in params.items() if k in OPTIM_SPACE}
    trial["hparams"] = {k.removeprefix("hp."): v for k, v in params.items() if k not in OPTIM_SPACE}
    fixed = {"dataset": f"fold{fold}", "no_progress": True, "no_plots": True}
    return from_dict(merge_sources(plan.base, trial, fixed), "tune.py").resolved(plan.registry)


class FoldReporter:
    """Reports each epoch's valid F1 to the trial (step ``fold * epochs + epoch``); ends the fold with
    engine's Prune when the pruner gives up on the trial."""

    def __init__(self, trial, fold, epochs):
        self.trial, self.fold, self.epochs = trial, fold, epochs

    def on_epoch_end(self, end):
        from engine import Prune

        self.trial.report(end.valid_f1, self.fold * self.epochs + end.epoch)
        if self.trial.should_prune():
            return Prune(f"valid f-score {end.valid_f1:.4f} at fold {self.fold} epoch {end.epoch}")
        return None


DATA_KEYS = ("dataset", "feat", "repeat", "train_lst", "cache_dir", "cache_dtype", "mmap", "allow_missing", "max_frames",
             "pseudo_weight", "emo_rule", "device", "gpu")
_loaded = {}  # the folds' data, loaded once per process (the trials' values do not change it)


def fold_data(args, registry):
    import engine

    key = json.dumps([getattr(args, k) for k in DATA_KEYS])
    if key not in _loaded:
        _loaded[key] = engine.load_data(args, registry)
    return _loaded[key]


def objective(plan):
    """The trial function: train every fold, return the mean best valid F1 (optuna.TrialPruned when pruned)."""

    def run_trial(trial):
        import optuna

        import engine

        params = {name: suggest(trial, name, space) for name, space in plan.space.items()}
        scores, epochs = [], []
        for fold in range(plan.folds):
            args = trial_config(plan, params, fold)
            result = engine.fit(args, fold_data(args, plan.registry), callbacks=[FoldReporter(trial, fold, plan.epochs)])
            if result.pruned:
                trial.set_user_attr("pruned", result.stop.reason)
                raise optuna.TrialPruned(result.stop.reason)
            scores.append(result.best_f1)
            epochs.append(result.best_epoch)
        trial.set_user_attr("fold_f1", scores)
        trial.set_user_attr("best_epochs", epochs)
        return statistics.fmean(scores)

    return run_trial


def open_storage(spec):
    """An Optuna storage: ``journal:<path>`` (a file several processes append to) or a database URL."""
    import optuna

    if spec.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        from stages.search_workers import JournalLock

        path = spec[len("journal:"):]
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return JournalStorage(JournalFileBackend(path, lock_obj=JournalLock(path + ".flock")))
    try:
        return optuna.storages.RDBStorage(spec)
    except Exception as err:  # noqa: BLE001 - any driver's failure to connect is the user's URL
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise UserError(f"--storage {spec} cannot be opened ({reason}); give a database URL such as sqlite:///saved/tune/study.db") from None


def make_sampler(plan, worker, done):
    """TPE or random; with --sampler_seed each worker and each resumed run gets its own seed, so no two draw
    the same values."""
    import optuna

    seed = None if plan.sampler_seed is None else plan.sampler_seed + 1000 * done + worker
    if plan.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(plan):
    import optuna

    if plan.pruner == "none":
        return optuna.pruners.NopPruner()
    if plan.pruner == "threshold":
        return optuna.pruners.ThresholdPruner(lower=plan.prune_below)
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=max(1, plan.epochs // 2))


def load_study(plan, worker=0, done=0):
    import optuna

    from stages.search_workers import quiet_reported_failures

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quiet_reported_failures()
    return optuna.load_study(study_name=plan.study, storage=open_storage(plan.storage),
                             sampler=make_sampler(plan, worker, done), pruner=make_pruner(plan))


def counted(study):
    """Trials that count toward --trials: finished and pruned ones."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def format_params(params):
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def say_trial(study, trial):
    if trial.state.name == "COMPLETE":
        folds = " ".join(f"{v:.4f}" for v in trial.user_attrs.get("fold_f1", []))
        print(f"trial {trial.number}: f-score {trial.value:.4f} (folds {folds}): {format_params(trial.params)}", flush=True)
    else:
        why = trial.user_attrs.get("pruned", "")
        print(f"trial {trial.number}: {trial.state.name.lower()}{f' ({why})' if why else ''}: {format_params(trial.params)}", flush=True)


def work(task):
    """One worker: run ``n`` trials of the study; returns the message of the UserError that stopped it, if one did."""
    plan, worker, n, done = task
    apply_threads(*plan.threads)
    from stages.search_workers import finished_elsewhere_is_one_line, tagged

    try:
        with finished_elsewhere_is_one_line(plan):
            load_study(plan, worker, done).optimize(tagged(objective(plan)), n_trials=n, callbacks=[say_trial])
    except UserError as err:
        return str(err)
    return None


def settings_of(plan):
    """What a study was started with; a resumed study must match it."""
    return {"model": plan.model, "base": plan.base, "folds": plan.folds, "epochs": plan.epochs,
            "space": {name: list(space) for name, space in plan.space.items()}}


def prepare_study(plan):
    """Create or resume the study; mark trials a killed command left running as failed. Returns the study."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=plan.study, storage=open_storage(plan.storage), direction="maximize", load_if_exists=True)
    wanted, stored = settings_of(plan), study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", wanted)
    elif stored != wanted:
        key = next(k for k in wanted if stored.get(k) != wanted[k])
        raise UserError(f"study '{plan.study}' in {plan.storage} was started with other {key} ({stored.get(key)!r}, now {wanted[key]!r}); "
                        "rerun it with the same settings, or give another --study or --out")
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        print(f"trial {trial.number} was left running by an interrupted run: marked failed, its place is tried again")
    return study


def run_workers(plan, remaining, done):
    """Share ``remaining`` trials among --jobs worker processes (spawned and watched by stages/search_workers.py;
    in-process with one job)."""
    jobs = min(plan.jobs, remaining)
    shares = [remaining // jobs + (i < remaining % jobs) for i in range(jobs)]
    tasks = [(plan, i, n, done) for i, n in enumerate(shares)]
    if jobs == 1:
        errors = [work(tasks[0])]
    else:
        from stages.search_workers import supervise

        errors = supervise(plan, tasks)
    errors = [e for e in errors if e]
    if errors:
        raise UserError(errors[0])


def best_settings(plan, trial):
    """The best trial's settings: what ``train.py --config best.yaml`` trains (every fold). The searched and
    the run-defining settings, every other one that differs from its default, and the model's under hparams."""
    from engine.config import TrainConfig

    chosen = trial_config(plan, trial.params, 0).to_dict()
    default = TrainConfig(model=plan.model, emo_rule=chosen["emo_rule"]).resolved(plan.registry).to_dict()
    default["emo_rule"] = TrainConfig().emo_rule  # a class list other than the default's is kept in best.yaml
    keep = ["model", "feat", "folds", "epochs", "seed", *OPTIM_SPACE]
    keep += sorted(k for k, v in chosen.items() if v != default.get(k) and k not in keep and k != "hparams")
    settings = {k: chosen[k] for k in keep if k not in NOT_SETTINGS}
    return {**settings, "folds": plan.folds, "hparams": chosen["hparams"]}


def write_table(path, study):
    """trials.csv: number, state, value, duration_s, fold_f1 and one column per searched value."""
    import pandas as pd

    from toolkit.io import save_text

    rows = []
    for t in study.get_trials(deepcopy=False):
        duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        rows.append({"number": t.number, "state": t.state.name, "value": t.value, "duration_s": duration,
                     "fold_f1": " ".join(f"{v:.6f}" for v in t.user_attrs.get("fold_f1", [])), **t.params})
    save_text(path, pd.DataFrame(rows).to_csv(index=False))


def save_axes(axes, path):
    import matplotlib.pyplot as plt

    from toolkit.io import atomic_path

    fig = axes.figure
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def write_plots(study, out):
    """history.png (value per trial, best so far) and importance.png (fANOVA; skipped with a note when the
    finished trials are too few to tell)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as vis

    if not any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        print("no finished trial: history.png and importance.png skipped")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
        save_axes(vis.plot_optimization_history(study), os.path.join(out, "history.png"))
        try:
            save_axes(vis.plot_param_importances(study), os.path.join(out, "importance.png"))
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            print(f"importance.png skipped: too few finished trials to weigh the hyper-parameters ({err})")


def report(study, plan, top=5):
    """Write trials.csv, best.yaml and the plots into --out; print the best trials."""
    import yaml

    from toolkit.io import save_text

    write_table(os.path.join(plan.out, "trials.csv"), study)
    write_plots(study, plan.out)
    done = sorted((t for t in counted(study) if t.state.name == "COMPLETE"), key=lambda t: -t.value)
    pruned = len(counted(study)) - len(done)
    print(f"study '{plan.study}': {len(done)} finished, {pruned} pruned trials ({plan.storage})")
    if not done:
        print("no finished trial: best.yaml not written (every trial was pruned)")
        return None
    best = done[0]
    header = (f"# best trial {best.number} of study '{plan.study}': mean valid f-score {best.value:.4f} over {plan.folds} folds\n"
              f"# python train.py --config {os.path.join(plan.out, 'best.yaml')}\n")
    save_text(os.path.join(plan.out, "best.yaml"), header + yaml.safe_dump(best_settings(plan, best), sort_keys=False))
    print(f"{'trial':>5}  {'f-score':>7}  values")
    for t in done[:top]:
        print(f"{t.number:>5}  {t.value:.4f}  {format_params(t.params)}")
    print(f"best: {os.path.join(plan.out, 'best.yaml')}, trials.csv, history.png in {plan.out}")
    return best


def build_parser(description=__doc__):
    from toolkit.errors import ArgumentParser, bounded

    p = ArgumentParser(description=description, prog="tune.py",
                       epilog="Flags after -- go to train.py for every trial, e.g. -- --patience 10 --cache_dtype float16")
    p.add_argument("--model", default="moe", help="registered model name (its config fields with `search` are searched)")
    p.add_argument("--feat", default=None, help="features, as for train.py (None: config.DEFAULT_FEATURES)")
    p.add_argument("--trials", type=bounded(int, 1), default=20, help="finished + pruned trials the study should hold")
    p.add_argument("--folds", type=bounded(int, 2), default=5, help="splits fold0..fold{K-1}.npy (preprocess/mer2025_base.py --folds K)")
    p.add_argument("--epochs", type=bounded(int, 1), default=30, help="most epochs per fold")
    p.add_argument("--sampler", choices=["tpe", "random"], default="tpe", help="how values are drawn")
    p.add_argument("--sampler_seed", type=int, default=None, help="seed of the sampler (none: a fresh draw each run)")
    p.add_argument("--pruner", choices=["median", "threshold", "none"], default="median",
                   help="median: stop a trial below the median of earlier trials at the same fold and epoch; "
                        "threshold: stop it once an epoch's valid F1 is under --prune_below")
    p.add_argument("--prune_below", type=bounded(float, 0, 1), default=0.0, help="the valid F1 bound of --pruner threshold")
    p.add_argument("--jobs", type=bounded(int, 1), default=1, help="worker processes sharing the study, each with its "
                   "share of the CPUs' threads (train.py's --threads N after -- sets the count per process)")
    p.add_argument("--study", default=None, help="study name (default: <model>-<hash of the settings>, so the same command resumes it)")
    p.add_argument("--storage", default=None, help="database URL (default: SQLite <out>/study.db, or the journal file "
                                                    "<out>/study.journal with --jobs > 1)")
    p.add_argument("--out", default=None, help="output folder (default: saved/tune/<study>)")
    return p


def storage_spec(opts, out):
    """--storage, else the store already in ``out``, else SQLite (one worker) or a journal file (several)."""
    if opts.storage:
        return opts.storage
    journal, db = os.path.join(out, "study.journal"), os.path.join(out, "study.db")
    if os.path.exists(journal) or (opts.jobs > 1 and not os.path.exists(db)):
        return "journal:" + journal
    if opts.jobs > 1:
        raise UserError(f"{db} is an SQLite study, which takes one worker; rerun with --jobs 1, or give --out a new folder for --jobs {opts.jobs}")
    return "sqlite:///" + os.path.abspath(db)


def build_plan(opts, extra):
    """Check everything a worker needs (flags, model, features, fold files) before any trial starts."""
    from dataloader.registry import Registry
    from engine.config import from_dict, parse_feature_list
    from engine.flags import parse_values
    from engine.folds import fold_splits

    given = parse_values(extra, "train.py flags after --")
    threads = thread_choice(given.pop("threads", 0), opts.jobs)  # not a setting of the study: the same command resumes it
    clash = next((name for name in given if name in TUNE_FLAGS), None)
    if clash:
        raise UserError(f"--{clash} after -- : give {'it' if clash in ('dataset', 'run_dir') else f'--{clash}'} to tune.py itself "
                        f"({'tune.py sets it per fold' if clash in ('dataset', 'run_dir', 'folds') else 'not to train.py'})")
    base = {**given, "model": opts.model, "epochs": opts.epochs}
    if opts.feat:
        base["feat"] = parse_feature_list(opts.feat)
    registry = Registry.from_config(manifests=given.get("manifests", ()))
    args = from_dict({**base, "dataset": "fold0"}, "tune.py").resolved(registry)
    if "feat_topn" not in given:
        base["feat"] = list(args.feat)
    fold_splits(args.train_lst, opts.folds)
    space = search_space(opts.model, fixed=[*given, *(model_param(k) for k in given["hparams"])])
    digest = hashlib.sha1(json.dumps([base, opts.folds], sort_keys=True).encode()).hexdigest()[:8]
    study = opts.study or f"{opts.model}-{digest}"
    out = opts.out or os.path.join(registry.save_root, "tune", study)
    return Plan(model=opts.model, base=base, registry=registry, space=space, folds=opts.folds, epochs=opts.epochs, study=study,
                storage=storage_spec(opts, out), trials=opts.trials, sampler=opts.sampler, sampler_seed=opts.sampler_seed,
                pruner=opts.pruner, prune_below=opts.prune_below, out=out, jobs=opts.jobs, threads=threads)


def run(argv, description=__doc__):
    """tune.py's command line (flags, then ``--`` and train.py flags); returns the best trial (None if none finished)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    opts = build_parser(description).parse_args(argv[:cut])
    plan = build_plan(opts, argv[cut + 1:])
    from stages.search_workers import claim_out

    start = time.time()
    with claim_out(plan.out):  # a second tune command on this --out is refused
        study = prepare_study(plan)
        done = len(counted(study))
        remaining = plan.trials - done
        if remaining > 0:
            print(f"study '{plan.study}': {done} of {plan.trials} trials done; running {remaining} with {min(plan.jobs, remaining)} "
                  f"worker(s) of {plan.threads[0]} CPU threads ({plan.threads[1]}), {plan.folds} folds × {plan.epochs} epochs each; searching {', '.join(plan.space)}", flush=True)
            run_workers(plan, remaining, done)
        else:
            print(f"study '{plan.study}' already holds {done} trials (--trials {plan.trials}); nothing to run")
        best = report(load_study(plan), plan)
    print(f"tune: {time.time() - start:.1f}s")
    return best
