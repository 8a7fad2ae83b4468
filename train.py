"""Train and validate a feature-expert model (default: MoE) on one split dict.

    python train.py                                   # demo features, train_lst/seed0.npy
    python train.py --dataset seed1 --feat "['demo-clip-UTT','demo-hubert-UTT']" --save_model
    python train.py --model auto_attention --hidden_dim 64 --help

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
from toolkit.errors import ArgumentParser, UserError, bounded, cli

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


def build_parser():
    p = ArgumentParser(description=__doc__)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="seed0", help="split dict <PATH_TO_TRAIN_LST>/<dataset>.npy")
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


def parse_args(argv=None):
    """Two passes: the chosen --model decides which hyper-parameter flags exist (and --help shows them)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model", default="moe")
    known, _ = pre.parse_known_args(argv)
    parser = build_parser()
    add_model_flags(parser, known.model)
    args = parser.parse_args(argv)
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
        if repeat != args.repeat and "--repeat" not in (argv if argv is not None else sys.argv[1:]):
            args.repeat = repeat
    else:
        args.feat = list(config.DEFAULT_FEATURES)
    return args


def run(args, callbacks=()):
    """Train into the run directory (engine.run); returns its summary (None on ranks other than 0 under torchrun)."""
    import engine

    return engine.run(args, callbacks).summary


@cli
def main(argv=None):
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
