"""``fit``: train a model on loaded data, validate every epoch, keep the best epoch by weighted F1.

    from engine import TrainConfig, fit, load_data
    args = TrainConfig(feat=["demo-clip-UTT"], epochs=20).resolved(registry)   # registry: dataloader.registry
    data = load_data(args, registry)
    result = fit(args, data, callbacks=[lambda e: e.epoch >= 5])   # True (or a Stop) ends the run
    result.best_f1, result.best_epoch, [e.valid_f1 for e in result.history], result.stopped_by

Early stopping (--patience) is a callback like any other; a diverged epoch (NaN/inf loss or
probabilities) raises a UserError. Under torchrun every rank calls ``fit`` with its ``ctx`` (see
toolkit/distributed.py); decisions (best epoch, stop) are rank 0's.
"""
import copy
import dataclasses
import logging
import math
import random
import statistics
import sys
import time
import types

import numpy as np

from engine.callbacks import EarlyStopping, EpochEnd, Prune, Stop, ask
from engine.data import RunData
from toolkit.errors import UserError
from toolkit.threads import describe_threads


@dataclasses.dataclass
class RunResult:
    """What a run learned: per-epoch history, the best epoch's metrics, predictions and weights."""

    data: RunData
    meta: dict  # what a checkpoint records besides the weights: model, feat_dims, feat_levels, classes, hparams
    model: object  # the trained model (weights of the last epoch; ``best_state`` holds the best)
    device: object
    history: list = dataclasses.field(default_factory=list)  # [EpochEnd]
    best_epoch: int = None
    best_f1: float = None
    best_loss: float = None
    best_probs: np.ndarray = None  # (n_valid, classes) softmax of the best epoch, in the valid set's order
    best_vals: np.ndarray = None  # (n_valid,) valence predictions of the best epoch
    best_state: dict = None  # state dict of the best epoch (rank 0 only)
    stop: Stop = None  # the signal that ended the run before its last epoch, if one did
    stopped_by: str = None  # the name of the callback that sent it
    summary: dict = None  # set once the run directory is written
    run_dir: str = None

    @property
    def pruned(self):
        return isinstance(self.stop, Prune)

    @property
    def seconds_per_epoch(self):
        return float(statistics.median(e.seconds for e in self.history))

    n_train = property(lambda self: self.data.n_train)
    feat_dims = property(lambda self: self.data.feat_dims)
    feat_levels = property(lambda self: self.data.feat_levels)
    classes = property(lambda self: self.data.classes)
    experts = property(lambda self: self.data.experts)
    num_classes = property(lambda self: self.data.num_classes)

    def keep_best(self, epoch, f1, loss, probs, vals, state):
        self.best_epoch, self.best_f1, self.best_loss, self.best_probs, self.best_vals, self.best_state = epoch, f1, loss, probs, vals, state


def seed_everything(seed):
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_pretrained(model, path, meta):
    from models import config_from_checkpoint
    from toolkit.runs import load_checkpoint

    ckpt = load_checkpoint(path)
    for key in ("model", "feat_dims", "feat_levels", "classes"):
        if ckpt.get(key) != meta[key]:
            raise UserError(f"--model_pretrain {path}: its {key} {ckpt.get(key)!r} differs from this run's {meta[key]!r}")
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError:  # weights of another shape: name the hyper-parameters that differ
        saved = dataclasses.asdict(config_from_checkpoint(ckpt["model"], ckpt.get("hparams")))
        wanted = meta["hparams"]
        differ = [k for k in saved if k in wanted and saved[k] != wanted[k]]
        flags = " ".join(f"--{k} {saved[k]}" for k in differ)
        raise UserError(f"--model_pretrain {path}: its weights do not fit this model; it was trained with {flags or 'other settings'}"
                        f"{'; pass them too' if differ else ''}") from None


def build_model(args, data, device, ctx):
    """(model, the same model as trained: DDP-wrapped under torchrun, checkpoint meta)."""
    from models import create_model

    model = create_model(args.model, data.feat_dims, data.num_classes, args.hparams, data.feat_levels)
    model.fit_normalizers(data.train.feats, data.train.rows, data.train.present)
    meta = {"model": args.model, "feat_dims": data.feat_dims, "feat_levels": data.feat_levels, "classes": list(data.classes),
            "hparams": dataclasses.asdict(args.hparams)}
    if args.model_pretrain:
        load_pretrained(model, args.model_pretrain, meta)
    model.to(device)
    # heads outside the loss (valence with --val_weight 0, expert heads with --aux_weight 0) get no gradient
    unused = args.val_weight == 0 or getattr(args.hparams, "aux_weight", 1) == 0
    if args.compile:
        model.compile()  # in place: the state dict keeps its keys
    return model, ctx.wrap(model, device, find_unused=unused), meta


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
            # soft targets (B, K) where the split has them: cross_entropy then takes -sum p * log_softmax
            target = batch.get("targets", batch["labels"])
            loss = core.loss(out, target, batch["vals"], batch["weights"], args.val_weight, args.label_smoothing, ctx.total)
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


def check_finite(epoch, train_loss, valid_loss, probs, args):
    """A diverged epoch stops the run: a NaN model is not a result (nothing is written)."""
    if math.isfinite(train_loss) and math.isfinite(valid_loss) and np.isfinite(probs).all():
        return
    raise UserError(f"training diverged at epoch {epoch} (train loss {train_loss:.4g}, valid loss {valid_loss:.4g}); no run was written. "
                    f"Lower --lr (now {args.lr:g}) or check the features and the split's weights for extreme values")


class Trainer(types.SimpleNamespace):
    """The pieces one epoch needs: model (maybe DDP-wrapped), optimizer, scheduler, batches, precision."""


def make_trainer(args, data, device, ctx):
    from dataloader import DeviceBatches
    from engine.optim import adamw, cosine_with_warmup
    from toolkit.device import autocast, grad_scaler

    core, model, meta = build_model(args, data, device, ctx)
    optimizer = adamw(model.parameters(), args.lr, args.l2, device)
    train_batches = DeviceBatches(data.train, args.batch_size, shuffle=True, seed=args.seed, max_frames=args.max_frames, shard=ctx.shard)
    valid_batches = DeviceBatches(data.valid, 1024, max_frames=args.max_frames, shard=ctx.shard)
    if not args.mmap:  # the validation batches never change: gather them once (a memory map keeps them on disk)
        valid_batches = list(valid_batches)
    steps = len(train_batches) * args.epochs
    scheduler = cosine_with_warmup(optimizer, steps, int(args.warmup_epochs * len(train_batches))) if args.scheduler == "cosine" else None
    return Trainer(core=core, model=model, meta=meta, optimizer=optimizer, scheduler=scheduler, train_batches=train_batches,
                   valid_batches=valid_batches, precision=(lambda: autocast(device, args.amp), grad_scaler(device, args.amp)))


def log_setup(log, args, data, device, ctx, core):
    specs = data.specs
    log.info("features: %s", ", ".join(f"{s.name}({s.modality}, {s.dim}{', frames' if s.frame_level else ''})" for s in specs))
    if data.train.present is not None:
        log.info("clips missing each feature (train/valid; its expert is masked for them): %s",
                 ", ".join(f"{name} {m['train']}/{m['valid']}" for name, m in data.missing.items()))
    log.info("split %s: %d train, %d valid; features loaded in %.2fs; device %s; %s with %d parameters", data.split_path,
             len(data.train), len(data.valid), data.load_seconds, device, args.model, sum(p.numel() for p in core.parameters()))
    log.info("precision: amp %s%s", args.amp, ", torch.compile" if args.compile else "")
    log.info("threads: %s", describe_threads())
    if ctx.enabled:
        log.info("distributed: %d processes, global batch %d split across them", ctx.world, args.batch_size)


def run_epoch(epoch, args, data, t, ctx, result):
    """Train and validate one epoch, update the best epoch (rank 0 decides for all); returns its EpochEnd."""
    from toolkit.metrics import emotion_metrics

    start = time.perf_counter()
    train_loss = train_one_epoch(t.model, t.train_batches, t.optimizer, t.scheduler, args, ctx, t.precision)
    valid_loss, probs, vals = evaluate(t.model, t.valid_batches, args, ctx, t.precision[0])
    seconds = time.perf_counter() - start
    check_finite(epoch, train_loss, valid_loss, probs, args)
    m = emotion_metrics(data.valid.labels.cpu().numpy(), probs.argmax(1), data.classes)
    if ctx.broadcast(result.best_epoch is None or m["f1"] > result.best_f1):
        result.keep_best(epoch, m["f1"], valid_loss, probs, vals, copy.deepcopy(t.core.state_dict()) if ctx.is_main else None)
    return EpochEnd(epoch, train_loss, valid_loss, m["acc"], m["f1"], seconds, result.best_epoch, result.best_f1)


def fit(args, data, callbacks=(), ctx=None, device=None, log=None):
    """Train ``args.model`` on ``data`` (engine.load_data) for up to ``args.epochs`` epochs; returns a RunResult.

    ``callbacks`` are called after every epoch with its EpochEnd (see engine.callbacks); with
    ``args.patience`` an EarlyStopping callback follows them. ``log``: a logger for the run's info.log."""
    from tqdm import tqdm

    from toolkit.device import check_amp, deterministic
    from toolkit.distributed import Dist

    ctx = ctx or Dist()
    device = device or data.train.labels.device
    log = log or logging.getLogger("engine")
    deterministic(device)
    check_amp(device, args.amp)
    seed_everything(args.seed)
    t = make_trainer(args, data, device, ctx)
    log_setup(log, args, data, device, ctx, t.core)
    callbacks = list(callbacks) + ([EarlyStopping(args.patience)] if args.patience else [])
    result = RunResult(data=data, meta=t.meta, model=t.core, device=device)
    bar = tqdm(range(1, args.epochs + 1), desc=f"{args.model} {args.dataset}", disable=args.no_progress or not ctx.is_main, file=sys.stderr)
    for epoch in bar:
        end = run_epoch(epoch, args, data, t, ctx, result)
        result.history.append(end)
        log.info("epoch %d: train loss %.4f, valid loss %.4f, acc %.4f, f-score %.4f (%.2fs)",
                 epoch, end.train_loss, end.valid_loss, end.valid_acc, end.valid_f1, end.seconds)
        bar.set_postfix(f1=f"{end.valid_f1:.4f}", best=f"{result.best_f1:.4f}@{result.best_epoch}")
        result.stop, result.stopped_by = ctx.broadcast(ask(callbacks, end))  # rank 0's callbacks decide for all
        if result.stop is not None:
            log.info("%s by %s%s", result.stop.kind, result.stopped_by, f": {result.stop.reason}" if result.stop.reason else "")
            break
    bar.close()
    return result
