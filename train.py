"""Train and validate a feature-expert model (default: MoE) on one split dict.

    python train.py                                   # demo features, train_lst/seed0.npy
    python train.py --dataset seed1 --feat "['demo-clip-UTT','demo-hubert-UTT']" --save_model
    python train.py --model auto_attention --hidden_dim 64 --help
    python train.py --config saved/tune/moe/best.yaml            # flags from a YAML file (tune.py writes one)
    python train.py --folds 5 --feat "['a','b']"                 # fold0..fold4.npy into <run_dir>/fold0..fold4

Every hyper-parameter of the chosen model (its config dataclass in models/) is also a flag. The run directory
(<save_root>/<dataset>/<model>/run, or --run_dir) gets info.log, args.yaml, metrics.csv,
best_valid_results.npy, summary.json, plots and, with --save_model, best.pth. The last stdout line is
``BEST: epoch:E, loss:L, acc:A, f-score:F``.

This script parses the flags; the training is ``engine.run`` (claim the run dir, load, ``engine.fit``,
write), which Python callers use directly, with callbacks called after every epoch.
"""
import argparse
import ast
import os
import sys

import config
from toolkit.errors import ArgumentParser, UserError, bounded, cli, did_you_mean

VALENCE_NOTE = "valence targets that are NaN (e.g. MER2026 splits without valence) are ignored"


def str2bool(text):
    if str(text).lower() in ("1", "true", "yes", "y", "on"):
        return True
    if str(text).lower() in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def parse_feature_list(text):
    """``"['a','b']"`` (the format users know), ``a,b`` or ``a b`` → list of names."""
    text = text.strip()
    if text.startswith("["):
        try:
            names = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise UserError(f"--feat {text!r} is not a Python list of names; write it as \"['feat-a','feat-b']\"") from None
    else:
        names = text.replace(",", " ").split()
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise UserError(f"--feat {text!r} names no features; give at least one name from config.py")
    return list(names)


def add_data_flags(g):
    """The flags that say what a run trains on: split, features, cache."""
    g.add_argument("--config", default=None, metavar="YAML",
                   help="flag values from a YAML file (keys: flag names without --); flags on the command line win")
    g.add_argument("--dataset", default="seed0", help="split dict <PATH_TO_TRAIN_LST>/<dataset>.npy")
    g.add_argument("--folds", type=bounded(int, 2), default=None, metavar="K",
                   help="train fold0..fold{K-1}.npy (preprocess/mer2025_base.py --folds K) into <run_dir>/fold{k} and "
                        "report the mean ± std weighted F1 (instead of --dataset)")
    g.add_argument("--emo_rule", default="MER", help="class list key in config.EMO_RULE")
    g.add_argument("--feat", default=None,
                   help="features, e.g. \"['a','b']\" (None: those of --model_pretrain's checkpoint, else config.DEFAULT_FEATURES = "
                        f"{config.DEFAULT_FEATURES})")
    g.add_argument("--feat_topn", type=bounded(int, 1), default=0,
                   help="instead of --feat: the N best features of each modality from a unimodal summary table (0: off)")
    g.add_argument("--topn_from", default=os.path.join(config.PATH_TO_SAVED, "unimodal", "unimodal_summary.csv"),
                   help="table written by eval_avg_performance.py")
    g.add_argument("--topn_modalities", default="AVT", help="modalities for --feat_topn: letters of A, V, T")
    g.add_argument("--repeat", type=bounded(int, 1), default=1,
                   help="expert copies per feature (unimodal sweeps use 3, like a three-branch model)")
    g.add_argument("--train_lst", default=config.PATH_TO_TRAIN_LST, help="folder of split dicts (config.PATH_TO_TRAIN_LST)")
    g.add_argument("--cache_dir", default=config.PATH_TO_CACHE, help="packed feature cache; 'none' disables it")
    g.add_argument("--cache_dtype", choices=["float32", "float16"], default="float32",
                   help="storage type of the packed features (float16 halves memory; batches are float32 on the device)")
    g.add_argument("--mmap", action="store_true",
                   help="memory-map the packed cache and gather batch rows from it instead of loading it whole (needs --cache_dir)")
    g.add_argument("--allow_missing", action="store_true",
                   help="clips may lack some feature files: that expert is masked for that clip (default: a missing file is an error)")
    g.add_argument("--max_frames", type=bounded(int, 1), default=64,
                   help="frame-level features: longer clips are sampled uniformly down to this many frames")


def build_parser():
    p = ArgumentParser(description=__doc__)
    add_data_flags(p.add_argument_group("data"))
    g = p.add_argument_group("model")
    g.add_argument("--model", default="moe", help="registered model name; `--model NAME --help` lists its hyper-parameter flags")
    g.add_argument("--model_pretrain", default=None,
                   help="initialise from a best.pth of a run with the same features and classes (without --feat: its features)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--seed", type=int, default=0, help="seed of the weights, the batch order and the dropout masks")
    g.add_argument("--lr", type=bounded(float, 0, low_open=True), default=6e-3, help="peak learning rate (AdamW)")
    g.add_argument("--l2", type=bounded(float, 0), default=1e-3, help="AdamW weight decay (0: none)")
    g.add_argument("--batch_size", type=bounded(int, 1), default=256, help="clips per training step")
    g.add_argument("--epochs", type=bounded(int, 1), default=100, help="most epochs to train")
    g.add_argument("--patience", type=bounded(int, 0), default=30, help="stop after this many epochs without a better valid F1 (0: never)")
    g.add_argument("--scheduler", choices=["cosine", "none"], default="cosine", help="per-step cosine decay after warm-up")
    g.add_argument("--warmup_epochs", type=bounded(float, 0), default=2.0, help="linear learning-rate warm-up, in epochs")
    g.add_argument("--val_weight", type=bounded(float, 0), default=0.1, help=f"weight of the valence MSE loss (0: off); {VALENCE_NOTE}")
    g.add_argument("--pseudo_weight", type=bounded(float, 0), default=1.0,
                   help="loss weight of training samples flagged 'pseudo' in the split dict (pseudo_label.py writes them)")
    g.add_argument("--label_smoothing", type=bounded(float, 0, 1, high_open=True), default=0.0, help="cross-entropy label smoothing")
    g = p.add_argument_group("device")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda when present")
    g.add_argument("--gpu", type=bounded(int, 0), default=0, help="CUDA device index")
    g.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off",
                   help="mixed precision on CUDA (fp16 uses a GradScaler); anything but off on CPU is an error")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (pays a compile time at start)")
    g.add_argument("--num_workers", type=int, default=0, help="kept for compatibility; features are in memory, no workers are used")
    g = p.add_argument_group("output")
    g.add_argument("--save_root", default=config.PATH_TO_SAVED, help="parent of run directories")
    g.add_argument("--save_as_time", action="store_true", help="name the run folder run-<timestamp> instead of run")
    g.add_argument("--run_dir", default=None, help="exact run directory (None: <save_root>/<dataset>/<model>/run); "
                   "an existing folder must be empty or a run of train.py")
    g.add_argument("--overwrite", action="store_true",
                   help="replace a previous run in the run directory (default: keep it as .<run>.prev-<finish time> beside it)")
    g.add_argument("--save_model", action="store_true", help="write best.pth")
    g.add_argument("--no_plots", action="store_true", help="skip the PNG plots")
    g.add_argument("--no_progress", action="store_true", help="no tqdm bar")
    return p


def hparam_type(spec):
    """The flag type of a model hyper-parameter (a config dataclass field): booleans as true/false, numbers
    finite and within the field's rule (metadata min/max, min_open/max_open; see models/config.py)."""
    if spec.type is bool:
        return str2bool
    if spec.type in (int, float):
        rule = spec.metadata
        return bounded(spec.type, rule.get("min"), rule.get("max"), rule.get("min_open", False), rule.get("max_open", False))
    return spec.type


def add_model_flags(parser, model):
    """One flag per hyper-parameter of ``model``, with its help line and default from the model's config
    (models/model-tune.yaml may override the defaults)."""
    from models import model_config_class, model_defaults, model_hparams

    defaults = model_defaults(model)
    config_class = model_config_class(model)
    group = parser.add_argument_group(f"hyper-parameters of '{model}' ({config_class.__module__}.{config_class.__name__}; "
                                      "pick another with --model NAME --help)")
    for spec in model_hparams(model):
        group.add_argument(f"--{spec.name}", type=hparam_type(spec), default=defaults[spec.name], help=spec.metadata["help"])


def check_widths(args):
    """Attention widths must split evenly over their heads (the layer would fail later with a traceback); the
    config says which head count divides which width (metadata ``divides``)."""
    from models import model_config_class
    from models.config import divisibility_errors

    bad = divisibility_errors(vars(args), model_config_class(args.model))
    if bad:
        width, heads = bad[0]
        raise UserError(f"--{width} {getattr(args, width)} is not divisible by --{heads} {getattr(args, heads)}; "
                        "pick a width that is a multiple of the heads")


def checkpoint_features(path):
    """(feature names, repeat) a best.pth was trained on (its expert keys are ``feat``, ``feat#2``, ...)."""
    from dataloader.feature_store import feature_of
    from toolkit.runs import load_checkpoint

    experts = list(load_checkpoint(path).get("feat_dims") or {})
    names = list(dict.fromkeys(feature_of(key) for key in experts))
    if not names:
        raise UserError(f"--model_pretrain {path} lists no features; pass --feat")
    return names, len(experts) // len(names)


CONFIG_ONLY = ("help", "config")  # flags a --config file cannot set


def read_config(path):
    """{flag name: value} of a --config YAML file."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            values = yaml.safe_load(f)
    except OSError as err:
        raise UserError(f"--config {path}: cannot read it ({err.strerror}); give the path of a YAML file of flag values") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise UserError(f"--config {path} is not valid YAML{line}; write one 'flag: value' per line") from None
    if values is None:
        values = {}
    if not isinstance(values, dict) or not all(isinstance(key, str) for key in values):
        raise UserError(f"--config {path} must map flag names to values, e.g. 'lr: 0.001'")
    return values


def config_tokens(parser, values, path):
    """The values of a --config file as command-line tokens for ``parser``; they go before the command line,
    so its flags win. A key that is no flag is refused with the closest flag name."""
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in CONFIG_ONLY}
    tokens = []
    for key, value in values.items():
        action = actions.get(key)
        if action is None:
            hint = did_you_mean(key, actions)
            hint = f"{hint} " if hint else ""
            raise UserError(f"--config {path}: unknown key {key!r}; {hint}keys are train.py flag names without --")
        if value is None:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            if not isinstance(value, bool):
                raise UserError(f"--config {path}: {key} must be true or false, got {value!r}")
            tokens += [f"--{key}"] if value else []
            continue
        text = repr(value) if isinstance(value, list) else str(value).lower() if isinstance(value, bool) else str(value)
        tokens += [f"--{key}", text]
    try:
        parser.parse_args(tokens)  # a bad value is reported with the file that holds it
    except UserError as err:
        raise UserError(f"--config {path}: {err}") from None
    return tokens


def parse_args(argv=None):
    """Two passes: the chosen --model decides which hyper-parameter flags exist (and --help shows them).
    With --config, the file's values come first and the command line's flags override them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model", default=None)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    values = read_config(known.config) if known.config else {}
    model = known.model or values.get("model") or "moe"
    if not isinstance(model, str):
        raise UserError(f"--config {known.config}: model must be a registered model name, got {model!r}")
    parser = build_parser()
    add_model_flags(parser, model)
    tokens = config_tokens(parser, values, known.config) if known.config else []
    args = parser.parse_args(tokens + argv)
    if args.folds is not None and args.dataset != parser.get_default("dataset"):
        raise UserError(f"give either --folds {args.folds} (fold0..fold{args.folds - 1}.npy) or --dataset {args.dataset}, not both")
    check_widths(args)
    if args.emo_rule not in config.EMO_RULE:
        raise UserError(f"--emo_rule {args.emo_rule!r} is not in config.EMO_RULE; known: {', '.join(config.EMO_RULE)}")
    if args.feat_topn:
        from toolkit.io import resolve
        from toolkit.results import top_features

        if args.feat is not None:
            raise UserError("give either --feat or --feat_topn, not both")
        args.feat = top_features(resolve(args.topn_from), args.feat_topn, args.topn_modalities)
    elif args.feat is not None:
        args.feat = parse_feature_list(args.feat)
    elif args.model_pretrain:
        args.feat, repeat = checkpoint_features(args.model_pretrain)
        if repeat != args.repeat and "--repeat" not in tokens + argv:
            args.repeat = repeat
    else:
        args.feat = list(config.DEFAULT_FEATURES)
    return args


def run(args, callbacks=()):
    """Train into the run directory (engine.run); returns its summary (None on ranks other than 0 under torchrun).
    With --folds K: every fold, and the folds' summary."""
    import engine

    if args.folds:
        return run_folds(args, callbacks)
    return engine.run(args, callbacks).summary


def fold_splits(train_lst, folds):
    """The split files fold0..fold{K-1}.npy in ``train_lst``; a missing one is an error that says how to write them."""
    from toolkit.io import resolve

    paths = [os.path.join(resolve(train_lst), f"fold{k}.npy") for k in range(folds)]
    missing = [path for path in paths if not os.path.exists(path)]
    if missing:
        raise UserError(f"no split file {missing[0]} ({len(missing)} of {folds} folds missing); write them with "
                        f"preprocess/mer2025_base.py --label_csv LABELS.csv --folds {folds} --save_root {train_lst}")
    return paths


def fold_args(args, k, run_dir=None):
    """``args`` for fold ``k``: split fold{k}.npy, a single run (no --folds) into ``run_dir``."""
    return argparse.Namespace(**{**vars(args), "dataset": f"fold{k}", "folds": None, "run_dir": run_dir})


def folds_root(args):
    """The folder of the fold runs: --run_dir, else <save_root>/folds<K>/<model>/run (or run-<time>)."""
    from engine.runner import default_run_dir

    return args.run_dir or default_run_dir(argparse.Namespace(**{**vars(args), "dataset": f"folds{args.folds}"}))


def run_folds(args, callbacks=()):
    """Train fold0..fold{K-1} into <root>/fold{k}; print each fold's BEST line and the mean ± std weighted F1,
    and write <root>/folds_summary.json (None on ranks other than 0 under torchrun)."""
    import statistics

    import engine
    from toolkit.io import save_json

    fold_splits(args.train_lst, args.folds)
    root = folds_root(args)
    summaries = []
    for k in range(args.folds):
        print(f"fold {k} of {args.folds}:", flush=True)
        summaries.append(engine.run(fold_args(args, k, os.path.join(root, f"fold{k}")), callbacks).summary)
    if summaries[0] is None:
        return None
    f1 = [s["f1"] for s in summaries]
    summary = {"folds": args.folds, "mean_f1": statistics.fmean(f1), "std_f1": statistics.pstdev(f1), "fold_f1": f1,
               "fold_acc": [s["acc"] for s in summaries], "best_epochs": [s["best_epoch"] for s in summaries],
               "run_dirs": [os.path.join(root, f"fold{k}") for k in range(args.folds)], "model": args.model,
               "features": list(args.feat), "config": args.config}
    save_json(os.path.join(root, "folds_summary.json"), summary)
    print(f"FOLDS: {args.folds} folds, f-score {summary['mean_f1']:.4f} ± {summary['std_f1']:.4f} "
          f"({', '.join(f'{v:.4f}' for v in f1)}) → {os.path.join(root, 'folds_summary.json')}")
    return summary


@cli
def main(argv=None):
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
