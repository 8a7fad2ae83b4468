"""Train and validate a feature-expert model (default: MoE) on one split dict.

    python train.py                                   # demo features, train_lst/seed0.npy
    python train.py --dataset seed1 --feat "['demo-clip-UTT','demo-hubert-UTT']" --save_model
    python train.py --model auto_attention --hidden_dim 64 --help

Every hyper-parameter of the chosen model (models/model-tune.yaml) is also a flag. The run directory
(<save_root>/<dataset>/<model>/run, or --run_dir) gets info.log, args.yaml, metrics.csv,
best_valid_results.npy, summary.json, plots and, with --save_model, best.pth. The last stdout line is
``BEST: epoch:E, loss:L, acc:A, f-score:F``.
"""
import argparse
import ast
import contextlib
import copy
import logging
import math
import os
import random
import sys
import time

import numpy as np

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


def seed_everything(seed):
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cosine_with_warmup(optimizer, total_steps, warmup_steps):
    import torch

    def factor(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_one_epoch(model, batches, optimizer, scheduler, args, ctx, precision):
    """One pass over the training batches; returns the mean loss over the whole training set.

    In a distributed run each rank's loss is its share of the global batch's loss (``ctx.total`` makes the
    denominators global), so the ranks' losses sum to the single-process loss."""
    from models.noise import global_batch
    from toolkit.distributed import unwrap

    model.train()
    core = unwrap(model)
    total, count = 0.0, 0
    autocast, scaler = precision
    for batch in batches:
        with autocast(), global_batch(batch["offset"], batch["global_size"]):  # noise per global sample
            out = model(batch["feats"], batch["present"])
            loss = core.loss(out, batch["labels"], batch["vals"], batch["weights"], args.val_weight, args.label_smoothing, ctx.total)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(ctx.scale(loss)).backward()
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step()
        total += loss.item() * batch["global_size"]
        count += batch["global_size"]
    return float(ctx.total(total)) / count


def evaluate(model, batches, args, ctx, autocast):
    """Loss, class probabilities and valence predictions over a whole set, in its order.

    Each rank evaluates its part of every batch; the parts are gathered, so every rank gets the full set's
    results."""
    import torch

    from toolkit.distributed import unwrap

    model.eval()
    core = unwrap(model)
    probs, vals, total, count = [], [], 0.0, 0
    with torch.no_grad(), autocast():
        for batch in batches:
            out = core(batch["feats"], batch["present"])
            loss = core.loss(out, batch["labels"], batch["vals"], batch["weights"], args.val_weight, args.label_smoothing, ctx.total)
            total += loss.item() * batch["global_size"]
            count += batch["global_size"]
            probs.append(torch.softmax(out["logits"].float(), dim=-1).cpu().numpy())
            vals.append(out["valence"].float().cpu().numpy())
    parts = ctx.gather((probs, vals))  # [(probs, vals) of each rank], each a list over batches
    probs = np.concatenate([rank[0][b] for b in range(len(probs)) for rank in parts])
    vals = np.concatenate([rank[1][b] for b in range(len(vals)) for rank in parts])
    return float(ctx.total(total)) / count, probs, vals


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
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger.addHandler(handler)
    return logger


def write_outputs(stage, args, history, best, classes, specs, valid, device, seconds_per_epoch, missing):
    """Everything a run leaves besides the checkpoint and the log."""
    import yaml

    from toolkit.io import save_json, save_npy, save_text
    from toolkit.metrics import emotion_metrics

    columns = list(history[0])
    rows = [",".join(str(h[c]) if isinstance(h[c], (int, np.integer)) else f"{float(h[c]):.6f}" for c in columns) for h in history]
    save_text(os.path.join(stage, "metrics.csv"), "\n".join([",".join(columns)] + rows) + "\n")
    save_text(os.path.join(stage, "args.yaml"), yaml.safe_dump(vars(args), sort_keys=True, allow_unicode=True))
    labels = valid.labels.cpu().numpy()
    preds = best["probs"].argmax(1)
    metrics = emotion_metrics(labels, preds, classes)
    save_npy(os.path.join(stage, "best_valid_results.npy"), {
        "eval_names": list(valid.names),
        "eval_loss": best["loss"],
        "eval_emoprobs": best["probs"],
        "eval_emolabels": labels,
        "eval_emoacc": metrics["acc"],
        "eval_emofscore": metrics["f1"],
        "eval_valpreds": best["vals"],
    })
    true_vals = valid.vals.cpu().numpy()
    has_val = np.isfinite(true_vals)
    summary = {
        "model": args.model,
        "dataset": args.dataset,
        "seed": args.seed,
        "best_epoch": best["epoch"],
        "epochs_run": len(history),
        "loss": best["loss"],
        "acc": metrics["acc"],
        "f1": metrics["f1"],
        "per_class_f1": metrics["per_class_f1"],
        "confusion": metrics["confusion"],
        "classes": classes,
        "features": [{"name": s.name, "dim": s.dim, "modality": s.modality, "level": s.level} for s in specs],
        "allow_missing": bool(args.allow_missing),
        "missing": missing,
        "repeat": args.repeat,
        "feat_topn": {"n": args.feat_topn, "from": args.topn_from, "modalities": args.topn_modalities} if args.feat_topn else None,
        "valence_mse": float(np.mean((best["vals"][has_val] - true_vals[has_val]) ** 2)) if has_val.any() else None,
        "n_train": int(args.n_train),
        "n_valid": len(valid),
        "seconds_per_epoch": seconds_per_epoch,
        "seconds_total": round(time.time() - args.start_time, 3),
        "device": str(device),
    }
    save_json(os.path.join(stage, "summary.json"), summary)
    if not args.no_plots:
        from toolkit.plots import plot_confusion, plot_curves

        def column(key):
            return [h[key] for h in history]

        epochs = column("epoch")
        plot_curves(os.path.join(stage, "loss.png"), epochs, {"train": column("train_loss"), "valid": column("valid_loss")}, "loss", best["epoch"])
        plot_curves(os.path.join(stage, "emoacc.png"), epochs, {"valid": column("valid_acc")}, "accuracy", best["epoch"])
        plot_curves(os.path.join(stage, "emofscore.png"), epochs, {"valid": column("valid_f1")}, "weighted F1", best["epoch"])
        plot_confusion(os.path.join(stage, "confusion.png"), metrics["confusion"], classes,
                       f"{args.model} {args.dataset} epoch {best['epoch']}: F1 {metrics['f1']:.4f}")
    return summary


def load_pretrained(model, path, meta):
    from toolkit.runs import load_checkpoint

    ckpt = load_checkpoint(path)
    ckpt.setdefault("feat_levels", {key: "utt" for key in ckpt.get("feat_dims") or {}})  # older checkpoints
    for key in ("model", "feat_dims", "feat_levels", "classes"):
        if ckpt.get(key) != meta[key]:
            raise UserError(f"--model_pretrain {path}: its {key} {ckpt.get(key)!r} differs from this run's {meta[key]!r}")
    model.load_state_dict(ckpt["state_dict"])


def run(args):
    """Train, validate every epoch, keep the best epoch by weighted F1 and write the run directory.

    Under torchrun (see toolkit/distributed.py) every rank trains on its share of each global batch and
    only rank 0 writes; the other ranks return None."""
    from toolkit import distributed
    from toolkit.device import keep_freed_memory

    from toolkit.runs import RunDir

    keep_freed_memory()
    ctx = distributed.from_env()
    args.run_dir = args.run_dir or default_run_dir(args)
    try:
        with RunDir(args.run_dir, args.overwrite) if ctx.is_main else contextlib.nullcontext() as claim:  # before any loading
            summary = train_and_write(args, ctx, claim)
        ctx.barrier()  # ranks leave together: none tears its connections down while rank 0 still writes
        return summary
    finally:
        distributed.close(ctx)


def check_finite(epoch, train_loss, valid_loss, probs, args):
    """A diverged epoch stops the run: a NaN model is not a result (nothing is written)."""
    if math.isfinite(train_loss) and math.isfinite(valid_loss) and np.isfinite(probs).all():
        return
    raise UserError(f"training diverged at epoch {epoch} (train loss {train_loss:.4g}, valid loss {valid_loss:.4g}); no run was written. "
                    f"Lower --lr (now {args.lr:g}) or check the features and the split's weights for extreme values")


def train_and_write(args, ctx, claim):
    import torch
    from tqdm import tqdm

    from dataloader import DeviceBatches, lookup_features
    from dataloader.feature_store import expert_names, feature_of
    from dataloader.batches import load_split_sets
    from models import get_model
    from toolkit import distributed
    from toolkit.device import adamw, autocast, check_amp, deterministic, grad_scaler, pick_device
    from toolkit.io import cache_folder, remove_stale_temps, resolve
    from toolkit.metrics import emotion_metrics
    from toolkit.runs import is_run_dir, save_checkpoint

    args.start_time = time.time()
    seed_everything(args.seed)
    device = pick_device(args.device, ctx.local_rank if ctx.enabled else args.gpu)
    deterministic(device)
    check_amp(device, args.amp)
    ctx = distributed.init(ctx, device)
    classes = list(config.EMO_RULE[args.emo_rule])
    specs = lookup_features(args.feat)
    split_path = os.path.join(resolve(args.train_lst), f"{args.dataset}.npy")
    cache_dir = cache_folder(args.cache_dir)
    if ctx.is_main and cache_dir:
        remove_stale_temps(cache_dir)  # half-written caches of killed runs
    t0 = time.time()
    experts = expert_names(args.feat, args.repeat)
    if not ctx.is_main:
        ctx.barrier()  # rank 0 builds the packed cache first; the others then read it
    train, valid = load_split_sets(split_path, specs, classes, device, cache_dir, experts, args.pseudo_weight, args.allow_missing,
                                   args.cache_dtype, args.mmap)
    if ctx.is_main:
        ctx.barrier()
    load_seconds = time.time() - t0
    args.n_train = len(train)
    dims = {s.name: s.dim for s in specs}
    levels = {s.name: s.level for s in specs}
    args.feat_dims = {key: dims[feature_of(key)] for key in experts}
    args.feat_levels = {key: levels[feature_of(key)] for key in experts}
    args.num_classes = len(classes)
    if ctx.is_main:
        print(f"features: {train.memory_note()} ({args.cache_dtype}, device {device})", flush=True)
    train_missing, valid_missing = train.missing_counts(), valid.missing_counts()
    missing = {s.name: {"train": train_missing[s.name], "valid": valid_missing[s.name]} for s in specs}

    model = get_model(args.model, args)
    model.fit_normalizers(train.feats, train.rows, train.present)
    meta = {"model": args.model, "feat_dims": args.feat_dims, "feat_levels": args.feat_levels, "classes": classes,
            "hparams": {k: getattr(args, k) for k in model_hparam_keys(args.model)}}
    if args.model_pretrain:
        load_pretrained(model, args.model_pretrain, meta)
    model.to(device)
    # heads outside the loss (valence with --val_weight 0, expert heads with --aux_weight 0) get no gradient
    unused = args.val_weight == 0 or getattr(args, "aux_weight", 1) == 0
    if args.compile:
        model.compile()  # in place: the state dict keeps its keys
    core, model = model, ctx.wrap(model, device, find_unused=unused)
    precision = (lambda: autocast(device, args.amp), grad_scaler(device, args.amp))
    optimizer = adamw(model.parameters(), args.lr, args.l2, device)
    train_batches = DeviceBatches(train, args.batch_size, shuffle=True, seed=args.seed, max_frames=args.max_frames, shard=ctx.shard)
    valid_batches = DeviceBatches(valid, 1024, max_frames=args.max_frames, shard=ctx.shard)
    if not args.mmap:  # the validation batches never change: gather them once (a memory map keeps them on disk)
        valid_batches = list(valid_batches)
    steps = len(train_batches) * args.epochs
    scheduler = cosine_with_warmup(optimizer, steps, int(args.warmup_epochs * len(train_batches))) if args.scheduler == "cosine" else None

    run_dir = args.run_dir
    with claim.staged() if ctx.is_main else contextlib.nullcontext() as stage:
        log = setup_logger(os.path.join(stage, "info.log") if ctx.is_main else None)
        replaced = claim.note() if ctx.is_main and is_run_dir(run_dir) else None
        if ctx.is_main:
            log.info(claim.note())
        n_params = sum(p.numel() for p in core.parameters())
        log.info("features: %s", ", ".join(f"{s.name}({s.modality}, {s.dim}{', frames' if s.frame_level else ''})" for s in specs))
        if train.present is not None:
            log.info("clips missing each feature (train/valid; its expert is masked for them): %s",
                     ", ".join(f"{name} {m['train']}/{m['valid']}" for name, m in missing.items()))
        log.info("split %s: %d train, %d valid; features loaded in %.2fs; device %s; %s with %d parameters",
                 split_path, len(train), len(valid), load_seconds, device, args.model, n_params)
        log.info("precision: amp %s%s", args.amp, ", torch.compile" if args.compile else "")
        if ctx.enabled:
            log.info("distributed: %d processes, global batch %d split across them", ctx.world, args.batch_size)
        history, best = [], None
        bar = tqdm(range(1, args.epochs + 1), desc=f"{args.model} {args.dataset}", disable=args.no_progress or not ctx.is_main,
                   file=sys.stderr)
        for epoch in bar:
            start = time.perf_counter()
            train_loss = train_one_epoch(model, train_batches, optimizer, scheduler, args, ctx, precision)
            valid_loss, probs, vals = evaluate(model, valid_batches, args, ctx, precision[0])
            seconds = time.perf_counter() - start
            check_finite(epoch, train_loss, valid_loss, probs, args)
            m = emotion_metrics(valid.labels.cpu().numpy(), probs.argmax(1), classes)
            history.append({"epoch": epoch, "train_loss": train_loss, "valid_loss": valid_loss,
                            "valid_acc": m["acc"], "valid_f1": m["f1"], "seconds": seconds})
            log.info("epoch %d: train loss %.4f, valid loss %.4f, acc %.4f, f-score %.4f (%.2fs)",
                     epoch, train_loss, valid_loss, m["acc"], m["f1"], seconds)
            if ctx.broadcast(best is None or m["f1"] > best["f1"]):  # rank 0 decides for all
                best = {"epoch": epoch, "f1": m["f1"], "loss": valid_loss, "probs": probs, "vals": vals,
                        "state": copy.deepcopy(core.state_dict()) if ctx.is_main else None}
            bar.set_postfix(f1=f"{m['f1']:.4f}", best=f"{best['f1']:.4f}@{best['epoch']}")
            if args.patience and epoch - best["epoch"] >= args.patience:
                log.info("early stop: no better valid f-score for %d epochs", args.patience)
                break
        bar.close()
        seconds_per_epoch = float(np.median([h["seconds"] for h in history]))
        if not ctx.is_main:
            return None
        summary = write_outputs(stage, args, history, best, classes, specs, valid, device, seconds_per_epoch, missing)
        if args.save_model:
            core.load_state_dict(best["state"])
            save_checkpoint(os.path.join(stage, "best.pth"), core, meta)
        line = f"BEST: epoch:{best['epoch']}, loss:{best['loss']:.4f}, acc:{summary['acc']:.4f}, f-score:{summary['f1']:.4f}"
        log.info(line)
        for handler in log.handlers:
            handler.close()
    if replaced:
        print(replaced)
    print(f"run dir: {run_dir} ({len(history)} epochs, {seconds_per_epoch:.2f}s/epoch, device {device})")
    print(line)
    return summary


def model_hparam_keys(model_name):
    from models import model_defaults

    return list(model_defaults(model_name))


@cli
def main(argv=None):
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
