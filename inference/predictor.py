"""Rebuild trained models from run directories and predict any list of clips with them.

    model, meta = load_run("saved/demo/seed0", device)
    out = predict(model, meta, names, device)          # {"probs": (N, K), "valence": (N,) or None}
    runs = load_runs(["saved/folds/fold1", ...], device)
    out = predict_runs(runs, names, device)            # probabilities averaged over the runs

Prediction files (``predict.py`` writes them, ``ensemble.py`` reads them) are ``.npz`` files with
``names, classes, probs[, valence], valid_f1, run_dirs, features``: see ``save_preds`` / ``load_preds``.
"""
import os

import numpy as np

from toolkit.errors import UserError

CHECKPOINT_KEYS = ("state_dict", "model", "feat_dims", "classes", "hparams")


def read_summary(run_dir):
    """The run's summary.json ({} if it has none); a failed run (see ``toolkit.results.failure_of``) is refused."""
    from toolkit.results import check_not_failed, read_summary_file

    from toolkit.runs import SUMMARY_FILE

    path = os.path.join(run_dir, SUMMARY_FILE)
    summary = read_summary_file(path) if os.path.exists(path) else {}
    check_not_failed(run_dir, summary)
    return summary


def load_run(run_dir, device):
    """(model in eval mode on ``device``, meta) from ``run_dir``/best.pth.

    meta: run_dir, model, classes, feat_dims (expert → dim), feat_levels (expert → "utt"|"frm"), features
    (the feature folders to read), valid_f1 (the run's best validation F1 from summary.json, or None),
    has_valence, and the run's data rules: allow_missing (clips may lack feature files; their experts are
    masked, as in training) and max_frames.
    """
    from dataloader.feature_store import feature_of
    from models import config_from_checkpoint, create_model
    from toolkit.runs import CHECKPOINT_FILE, load_checkpoint, load_run_args, run_file

    if not os.path.isdir(run_dir):
        raise UserError(f"run dir {run_dir} does not exist")
    summary = read_summary(run_dir)  # first: a failed run is refused before anything else is read
    args = load_run_args(run_dir)
    path = run_file(run_dir, CHECKPOINT_FILE)
    if not os.path.exists(path):
        raise UserError(f"run dir {run_dir} has no {CHECKPOINT_FILE}; train it with --save_model (python train.py ... --save_model --run_dir {run_dir})")
    ckpt = load_checkpoint(path)
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise UserError(f"checkpoint {path} lacks {', '.join(missing)}; it was not written by train.py --save_model")
    # The checkpoint's hparams over the code defaults: a checkpoint older than a newly added hyper-parameter
    # still builds, and one holding a hyper-parameter since removed too.
    cfg = config_from_checkpoint(ckpt["model"], ckpt["hparams"])
    levels = dict(ckpt["feat_levels"])
    model = create_model(ckpt["model"], ckpt["feat_dims"], len(ckpt["classes"]), cfg, levels)
    model.load_state_dict(ckpt["state_dict"])
    model.to(device).eval()
    meta = {
        "run_dir": run_dir,
        "model": ckpt["model"],
        "classes": list(ckpt["classes"]),
        "feat_dims": dict(ckpt["feat_dims"]),
        "feat_levels": levels,
        "allow_missing": bool(args.get("allow_missing", False)),
        "max_frames": int(args.get("max_frames", 64)),
        "features": list(dict.fromkeys(feature_of(k) for k in ckpt["feat_dims"])),
        "valid_f1": summary.get("f1"),
        "has_valence": bool(args.get("val_weight", 0)) and summary.get("valence_mse") is not None,
    }
    return model, meta


def load_runs(run_dirs, device):
    """[(model, meta)] of several runs of one configuration: all must share classes and features."""
    runs = [load_run(d, device) for d in run_dirs]
    first = runs[0][1]
    for _, meta in runs[1:]:
        for key in ("classes", "features"):
            if meta[key] != first[key]:
                raise UserError(f"runs {first['run_dir']} and {meta['run_dir']} differ in {key} "
                                f"({', '.join(first[key])} vs {', '.join(meta[key])}); average only runs of one configuration")
    return runs


def load_inputs(meta, names, registry, cache_dir=None):
    """Packed features of ``names`` for a run, read once (cached): a ``dataloader.Store`` (arrays, rows, present).
    ``registry``: the features (dataloader.registry); ``cache_dir`` None: the registry's.

    Missing feature files follow the run's rule: an error, unless it was trained with --allow_missing."""
    from dataloader import load_store
    from dataloader.feature_store import feature_of
    from dataloader.kinds import DEFAULT
    from toolkit.io import cache_folder

    specs = registry.lookup(meta["features"])
    cache_dir = registry.cache_dir if cache_dir is None else cache_dir
    dims = {feature_of(k): d for k, d in meta["feat_dims"].items()}
    levels = {feature_of(k): v for k, v in meta.get("feat_levels", {}).items()}
    for spec in specs:
        if spec.dim != dims[spec.name]:
            raise UserError(f"feature '{spec.name}' has dim {spec.dim} in config.py but {dims[spec.name]} in {meta['run_dir']}; "
                            "predict with the features the run was trained on")
        if spec.level != levels.get(spec.name, DEFAULT):
            raise UserError(f"feature '{spec.name}' is {spec.level} level in config.py but {levels.get(spec.name, DEFAULT)} level in "
                            f"{meta['run_dir']}; predict with the features the run was trained on")
    return load_store(specs, list(names), cache_folder(cache_dir), allow_missing=meta.get("allow_missing", False))


def predict(model, meta, names, device, registry=None, batch_size=1024, cache_dir=None, inputs=None, progress=False):
    """Class probabilities (N, K) and valence (N,) (None if the run did not learn valence) of ``names``.

    Features stay in host memory and move to ``device`` one batch at a time, so any number of clips fits.
    ``inputs`` reuses the result of ``load_inputs`` (e.g. for several runs on the same features); without
    it, ``registry`` says where the features are.
    """
    import torch
    from tqdm import tqdm

    from dataloader.feature_store import feature_of
    from dataloader.kinds import DEFAULT, kind_named

    if inputs is None and registry is None:
        raise TypeError("predict() needs the feature registry (dataloader.registry.Registry) or inputs from load_inputs")
    store = inputs if inputs is not None else load_inputs(meta, names, registry, cache_dir)
    levels = meta.get("feat_levels", {})
    kinds = {key: kind_named(levels.get(key, DEFAULT), f"{meta['run_dir']}: feat_levels['{key}']") for key in meta["feat_dims"]}
    tensors = {key: kinds[key].to_device(store.arrays[feature_of(key)], "cpu") for key in meta["feat_dims"]}
    present = None
    if any(not store.present[feature_of(key)].all() for key in meta["feat_dims"]):
        present = {key: torch.from_numpy(store.present[feature_of(key)]) for key in meta["feat_dims"]}
    rows = torch.from_numpy(np.asarray(store.rows, dtype=np.int64))
    max_frames = meta.get("max_frames", 64)
    probs, vals = [], []
    model.eval()
    with torch.no_grad():
        for start in tqdm(range(0, len(rows), batch_size), desc=f"predict {os.path.basename(str(meta['run_dir']))}",
                          disable=not progress, unit="batch"):
            idx = rows[start:start + batch_size]
            feats = {key: kinds[key].move(kinds[key].gather(t, idx, max_frames), device) for key, t in tensors.items()}
            mask = None if present is None else {key: p.index_select(0, idx).to(device) for key, p in present.items()}
            out = model(feats, mask)
            probs.append(torch.softmax(out["logits"].float(), dim=-1).cpu())
            vals.append(out["valence"].float().cpu())
    return {
        "probs": torch.cat(probs).numpy(),
        "valence": torch.cat(vals).numpy() if meta["has_valence"] else None,
    }


def predict_runs(runs, names, device, registry, batch_size=1024, cache_dir=None, progress=False):
    """Mean probabilities (and valence) of ``load_runs`` output over ``names``, features read once.

    Returns a prediction dict ready for ``save_preds``; valid_f1 is the runs' mean validation F1.
    """
    first = runs[0][1]
    inputs = load_inputs(first, names, registry, cache_dir)
    outs = [predict(model, meta, names, device, batch_size=batch_size, inputs=inputs, progress=progress) for model, meta in runs]
    f1s = [meta["valid_f1"] for _, meta in runs]
    has_valence = all(out["valence"] is not None for out in outs)
    return {
        "names": list(names),
        "classes": first["classes"],
        "probs": np.mean([out["probs"] for out in outs], axis=0),
        "valence": np.mean([out["valence"] for out in outs], axis=0) if has_valence else None,
        "valid_f1": float(np.mean(f1s)) if None not in f1s else None,
        "run_dirs": [meta["run_dir"] for _, meta in runs],
        "features": first["features"],
    }


def save_preds(path, preds):
    """Write a prediction dict (names, classes, probs; optional valence, valid_f1, run_dirs, features) as .npz."""
    from toolkit.io import atomic_path

    arrays = {
        "names": np.asarray(preds["names"], dtype=str),
        "classes": np.asarray(preds["classes"], dtype=str),
        "probs": np.asarray(preds["probs"], dtype=np.float32),
        "valid_f1": np.float64(np.nan if preds.get("valid_f1") is None else preds["valid_f1"]),
        "run_dirs": np.asarray(preds.get("run_dirs") or [], dtype=str),
        "features": np.asarray(preds.get("features") or [], dtype=str),
    }
    if preds.get("valence") is not None:
        arrays["valence"] = np.asarray(preds["valence"], dtype=np.float32)
    for key in ("labels", "method", "members"):  # ensemble outputs carry these too
        if preds.get(key) is not None:
            arrays[key] = np.asarray(preds[key])
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_preds(path):
    """Read a prediction .npz (see ``save_preds``) and check that it is consistent."""
    from toolkit.tables import check_unique

    if not os.path.isfile(path):
        raise UserError(f"prediction file {path} not found; write it with predict.py --out DIR (DIR/preds.npz)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        raise UserError(f"prediction file {path} is not an .npz written by predict.py ({exc.__class__.__name__})") from None
    missing = [k for k in ("names", "classes", "probs") if k not in arrays]
    if missing:
        raise UserError(f"prediction file {path} lacks {', '.join(missing)}; write it with predict.py")
    names, classes, probs = arrays["names"].tolist(), arrays["classes"].tolist(), arrays["probs"]
    if probs.shape != (len(names), len(classes)):
        raise UserError(f"prediction file {path}: probs has shape {probs.shape}, expected ({len(names)}, {len(classes)})")
    check_unique(names, f"prediction file {path}")
    check_probs(probs, names, f"prediction file {path}")
    f1 = float(arrays.get("valid_f1", np.nan))
    return {
        "path": path,
        "names": names,
        "classes": classes,
        "probs": probs.astype(np.float64),
        "valence": arrays.get("valence"),
        "valid_f1": None if np.isnan(f1) else f1,
        "run_dirs": arrays.get("run_dirs", np.array([])).tolist(),
        "features": arrays.get("features", np.array([])).tolist(),
    }


def check_probs(probs, names, where):
    """Probabilities must be finite and >= 0: a NaN row would otherwise quietly vote for the first class."""
    bad = ~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"{where}: {int(bad.sum())} rows are not probabilities (first: clip '{names[i]}' has "
                        f"{np.array2string(probs[i], precision=3, separator=', ')}); the run that wrote it diverged or the file "
                        "is damaged: leave it out or predict again")
