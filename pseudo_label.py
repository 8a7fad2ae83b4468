"""Consensus pseudo-labels: keep unlabeled clips where our trained model(s) and a VLM agree.

    python pseudo_label.py --runs saved/semi/seed0 --vlm data/demo/vlm.csv --unlabeled data/demo/unlabeled.csv \
        --dataset seed0 --out_dataset seed0_pl [--min_conf 0.5] [--agree all|majority] [--max_per_class N] \
        [--balance none|equal|prior] [--soft [--soft_temperature T]] [--truth data/demo/unlabeled_labels.csv]

The runs predict every unlabeled clip (batched; features are read once into a packed cache). A clip is kept
when the runs agree on a label (``--agree all``: every run, ``majority``: more than half), their mean
probability of it is at least ``--min_conf``, and the VLM's label (``parse_vlm_answers.py`` output) is the
same. ``--max_per_class`` keeps the most confident clips of each class; ``--balance equal`` keeps at most as
many per class as the rarest (non-empty) class has, ``--balance prior`` keeps class counts proportional to the
labeled training prior (both most confident first). The new split dict
``<train_lst>/<out_dataset>.npy`` holds the labeled training clips plus the kept clips, flagged
``pseudo: True`` (train with ``--pseudo_weight w`` to down-weight them); the validation set is copied
unchanged, so pseudo-labels never enter validation. With ``--soft`` the split also holds ``probs``: the runs'
mean class probabilities of each kept clip (sharpened by ``--soft_temperature``), None for labeled clips;
training then uses them as soft targets. ``--dataset`` must be the labeled split (no pseudo rows): a
further round passes the stage-2 run as ``--runs`` and the same labeled split. A report (printed and ``<out_dataset>.report.json``)
gives candidates, skips, agreement and kept clips per class, and with ``--truth`` the accuracy of the
pseudo-labels, of the VLM and of the model on the pool.
"""
import os

import numpy as np

from toolkit.device import add_device_flags
from toolkit.errors import ArgumentParser, UserError, bounded, cli, dataset_name
from toolkit.io import TRAIN_KEY, VALID_KEY


def build_parser():
    p = ArgumentParser(description=__doc__)
    p.add_argument("--runs", nargs="+", required=True, help="run directories of train.py --save_model (same classes and features)")
    p.add_argument("--vlm", required=True, help="VLM labels: the CSV of preprocess/parse_vlm_answers.py (name, label, ...)")
    p.add_argument("--unlabeled", required=True, help="CSV with column 'name': the unlabeled pool")
    p.add_argument("--dataset", required=True, help="labeled split dict <train_lst>/<dataset>.npy to extend")
    p.add_argument("--out_dataset", required=True, type=dataset_name, help="name of the new split dict (e.g. seed0_pl), written beside --dataset")
    p.add_argument("--train_lst", default=None, help="folder of split dicts (default: config.PATH_TO_TRAIN_LST)")
    p.add_argument("--min_conf", type=bounded(float, 0, 1), default=0.0, help="smallest mean model probability of the agreed label")
    p.add_argument("--agree", choices=["all", "majority"], default="all", help="how the runs must agree among themselves")
    p.add_argument("--max_per_class", type=bounded(int, 0), default=0, help="keep at most N clips per class, most confident first (0: no cap)")
    p.add_argument("--balance", choices=["none", "equal", "prior"], default="none",
                   help="class-balanced selection: equal = at most the rarest class's count per class; prior = "
                        "proportional to the labeled training classes (most confident first)")
    p.add_argument("--soft", action="store_true", help="store the runs' mean class probabilities as soft targets (split key 'probs')")
    p.add_argument("--soft_temperature", type=bounded(float, 0.01), default=1.0,
                   help="sharpen the soft targets: p^(1/T) renormalised (1: as predicted; < 1: sharper)")
    p.add_argument("--truth", default=None, help="CSV name,discrete of the pool's true labels, for the report only")
    p.add_argument("--strict", action="store_true", help="stop when an unlabeled clip lacks a feature file (default: skip and count)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out_dataset")
    p.add_argument("--batch_size", type=bounded(int, 1), default=4096, help="clips per forward pass (results do not depend on it)")
    p.add_argument("--cache_dir", default=None, help="packed feature cache; 'none' disables it (default: config.PATH_TO_CACHE)")
    p.add_argument("--manifests", default="", help="feature manifests (features.yaml, comma-separated) to register besides config.py's")
    add_device_flags(p)
    return p


def clips_with_features(names, features, registry):
    """(names that have a file for every feature, {feature: count of names without its file}).

    One directory listing per feature folder: an unlabeled pool (MER-SEMI: ~125k clips) would otherwise
    cost one stat per clip and feature here, before the feature store stats the files it reads."""
    from dataloader.feature_store import require_folder

    specs = registry.lookup(features)
    has_all = np.ones(len(names), dtype=bool)
    missing = {}
    for spec in specs:
        require_folder(spec)
        with os.scandir(spec.folder) as entries:
            files = {entry.name[:-4] for entry in entries if entry.name.endswith(".npy")}
        present = np.fromiter((n in files for n in names), dtype=bool, count=len(names))
        missing[spec.name] = int((~present).sum())
        has_all &= present
    return [n for n, ok in zip(names, has_all) if ok], missing


def model_consensus(run_probs, agree):
    """Per clip: the runs' agreed label (-1 where they do not agree) and its mean probability."""
    votes = np.stack([p.argmax(1) for p in run_probs])  # (R, N)
    mean = np.mean(run_probs, axis=0)
    n_classes = mean.shape[1]
    counts = np.stack([(votes == c).sum(0) for c in range(n_classes)], axis=1)  # (N, K)
    top = counts.argmax(1)
    needed = len(run_probs) if agree == "all" else len(run_probs) // 2 + 1
    label = np.where(counts[np.arange(len(top)), top] >= needed, top, -1)
    conf = mean[np.arange(len(top)), top]
    return label, conf, mean


def cap_per_class(keep, label, conf, n_classes, max_per_class):
    """Keep at most ``max_per_class`` of the kept clips per class, the most confident ones."""
    if not max_per_class:
        return keep
    capped = np.zeros_like(keep)
    for c in range(n_classes):
        idx = np.flatnonzero(keep & (label == c))
        capped[idx[np.argsort(-conf[idx], kind="stable")[:max_per_class]]] = True
    return capped


def balance_classes(keep, label, conf, n_classes, mode, prior=None):
    """Class-balanced selection among the kept clips, most confident first.

    ``equal``: each class keeps at most as many as the rarest class that has any; ``prior``: counts
    proportional to ``prior`` (labeled training counts per class), scaled as far as every class allows."""
    if mode == "none":
        return keep
    avail = np.bincount(label[keep], minlength=n_classes)
    if not avail.any():
        return keep
    if mode == "equal":
        caps = np.full(n_classes, avail[avail > 0].min())
    else:
        prior = np.asarray(prior, dtype=float)
        share = prior / prior.sum()
        scale = min(avail[c] / share[c] for c in range(n_classes) if share[c] > 0 and avail[c] > 0)
        caps = np.floor(scale * share + 1e-9).astype(int)
    capped = np.zeros_like(keep)
    for c in range(n_classes):
        idx = np.flatnonzero(keep & (label == c))
        capped[idx[np.argsort(-conf[idx], kind="stable")[:caps[c]]]] = True
    return capped


def sharpen(probs, temperature):
    """Rows of ``probs`` raised to 1/T and renormalised (T = 1: unchanged)."""
    if temperature == 1:
        return probs
    p = np.power(np.clip(probs, 1e-12, None), 1.0 / temperature)
    return p / p.sum(1, keepdims=True)


def check_labeled_split(split, path):
    """The split to extend must be a labeled one: extending a ``_pl`` split would stack rounds of pseudo-labels."""
    pseudo = split[TRAIN_KEY].get("pseudo")
    n = int(sum(bool(x) for x in pseudo)) if pseudo is not None else 0
    if n:
        raise UserError(f"--dataset {path} already holds {n} pseudo-labeled clips; pass the labeled split it was made from "
                        "(e.g. seed0): a new round relabels the pool with --runs and extends the labeled split")


def read_vlm(path, classes):
    """{name: class index} from a parse_vlm_answers.py CSV; labels outside ``classes`` are an error."""
    from toolkit.tables import encode_labels, read_table

    table = read_table(path, "VLM CSV", columns=("name", "label"))
    labels = encode_labels(table["label"], classes, f"VLM CSV {path}")
    return dict(zip(table["name"], labels))


def accuracy(pred, truth):
    ok = truth >= 0
    return float((pred[ok] == truth[ok]).mean()) if ok.any() else None


def unlabeled_pool(args, split, meta, registry):
    """(pool: unlabeled clips not in the split, clips of --unlabeled already in the split, the pool's clips with
    every feature file of the runs, {feature: clips lacking it})."""
    from toolkit.tables import read_table

    pool = read_table(args.unlabeled, "unlabeled CSV")["name"].tolist()
    labeled = set(split[TRAIN_KEY]["names"]) | set(split[VALID_KEY]["names"])
    in_split = [n for n in pool if n in labeled]
    pool = [n for n in pool if n not in labeled]
    usable, missing = clips_with_features(pool, meta["features"], registry)
    if len(usable) < len(pool) and args.strict:
        worst = max(missing, key=missing.get)
        raise UserError(f"{len(pool) - len(usable)} unlabeled clips lack feature files ({worst}: {missing[worst]}); "
                        "extract them or drop --strict to skip them")
    if not usable:
        raise UserError(f"none of the {len(pool)} unlabeled clips has every feature of {meta['run_dir']}")
    return pool, in_split, usable, missing


def extend_training(train_info, names, emos, vals, probs=None):
    """The split's training section plus the kept clips, flagged ``pseudo`` (weights 1 where weights exist);
    ``probs`` (lists of floats per kept clip) adds soft targets, None for the labeled rows."""
    train = {k: list(v) for k, v in train_info.items() if v is not None}
    n_train = len(train["names"])
    train["names"] += names
    train["emos"] += emos
    train["vals"] = list(train.get("vals", [float("nan")] * n_train)) + vals
    train["pseudo"] = list(train.get("pseudo", [False] * n_train)) + [True] * len(names)
    if "weights" in train:
        train["weights"] = list(train["weights"]) + [1.0] * len(names)
    if probs is not None:
        train["probs"] = [None] * n_train + [[float(x) for x in row] for row in probs]
    return train


def select_clips(args, split, classes, model_label, conf, vlm_label):
    """(mask of clips where the runs and the VLM agree, indices of the clips kept by the flags)."""
    agreed = (model_label >= 0) & (vlm_label >= 0) & (model_label == vlm_label)
    keep = agreed & (conf >= args.min_conf)
    keep = cap_per_class(keep, model_label, conf, len(classes), args.max_per_class)
    prior = [list(split[TRAIN_KEY]["emos"]).count(c) for c in classes]
    keep = balance_classes(keep, model_label, conf, len(classes), args.balance, prior)
    return agreed, np.flatnonzero(keep)


def read_truth(path, classes, names):
    """Class index of each of ``names`` from a truth CSV (name, discrete); -1 where it has none."""
    from toolkit.tables import encode_labels, read_table

    table = read_table(path, "truth CSV", columns=("name", "discrete"))
    truth = dict(zip(table["name"], encode_labels(table["discrete"], classes, f"truth CSV {path}")))
    return np.array([truth.get(n, -1) for n in names])


def labeled_split(args, lst):
    """(the labeled split dict to extend, the path of the new one); refuses an existing output or the same name."""
    from toolkit.io import load_split, split_path

    out_path = split_path(lst, args.out_dataset)
    if os.path.exists(out_path) and not args.overwrite:
        raise UserError(f"{out_path} already exists; pick another --out_dataset or pass --overwrite")
    if args.out_dataset == args.dataset:
        raise UserError("--out_dataset must differ from --dataset; the labeled split is kept as it is")
    split = load_split(split_path(lst, args.dataset))
    check_labeled_split(split, split_path(lst, args.dataset))
    return split, out_path


def run(args):
    from dataloader.registry import Registry
    from inference.predictor import load_inputs, load_runs, predict
    from toolkit.device import pick_device
    from toolkit.io import save_json, save_split

    registry = Registry.from_config(manifests=[m for m in args.manifests.split(",") if m])
    lst = args.train_lst or registry.train_lst
    split, out_path = labeled_split(args, lst)
    device = pick_device(args.device, args.gpu)
    runs = load_runs(args.runs, device)
    meta = runs[0][1]
    classes = meta["classes"]
    vlm = read_vlm(args.vlm, classes)

    pool, in_split, usable, missing = unlabeled_pool(args, split, meta, registry)
    n_no_feat = len(pool) - len(usable)
    inputs = load_inputs(meta, usable, registry, args.cache_dir)
    outs = [predict(model, m, usable, device, batch_size=args.batch_size, inputs=inputs, progress=True) for model, m in runs]
    model_label, conf, mean_probs = model_consensus([o["probs"] for o in outs], args.agree)
    has_valence = all(o["valence"] is not None for o in outs)
    vals = np.mean([o["valence"] for o in outs], axis=0) if has_valence else np.full(len(usable), np.nan)
    vlm_label = np.array([vlm.get(n, -1) for n in usable])
    has_vlm = vlm_label >= 0
    agreed, kept = select_clips(args, split, classes, model_label, conf, vlm_label)

    probs = sharpen(mean_probs[kept], args.soft_temperature) if args.soft else None
    train = extend_training(split[TRAIN_KEY], [usable[i] for i in kept], [classes[model_label[i]] for i in kept],
                            [float(vals[i]) for i in kept], probs)
    n_train = len(split[TRAIN_KEY]["names"])

    report = {
        "runs": list(args.runs), "vlm": args.vlm, "dataset": args.dataset, "out_dataset": args.out_dataset,
        "settings": {"min_conf": args.min_conf, "agree": args.agree, "max_per_class": args.max_per_class, "balance": args.balance,
                     "soft": args.soft, "soft_temperature": args.soft_temperature},
        "candidates": len(pool) + len(in_split),
        "skipped": {"already_labeled": len(in_split), "missing_features": n_no_feat, "missing_features_per_feature": missing,
                    "no_vlm_answer": int((~has_vlm).sum()), "runs_disagree": int((model_label < 0).sum())},
        "model_vlm_agreement": float(((model_label == vlm_label) & has_vlm & (model_label >= 0)).sum() / max(1, (has_vlm & (model_label >= 0)).sum())),
        "agreed": int(agreed.sum()),
        "kept": len(kept),
        "kept_per_class": {c: int((model_label[kept] == i).sum()) for i, c in enumerate(classes)},
        "labeled_train": n_train,
    }
    if args.truth:
        truth = read_truth(args.truth, classes, usable)
        report["truth"] = {
            "pseudo_label_accuracy": accuracy(model_label[kept], truth[kept]),
            "model_accuracy_on_pool": accuracy(mean_probs.argmax(1), truth),
            "vlm_accuracy_on_pool": accuracy(vlm_label[has_vlm], truth[has_vlm]),
            "clips_with_truth": int((truth >= 0).sum()),
        }
    save_split(out_path, train, split[VALID_KEY])
    report_path = os.path.join(lst, f"{args.out_dataset}.report.json")
    save_json(report_path, report)
    print_report(report, out_path, report_path)
    return report


def print_report(report, out_path, report_path):
    s = report["skipped"]
    print(f"candidates {report['candidates']}: skipped {s['already_labeled']} already labeled, {s['missing_features']} without "
          f"every feature file, {s['no_vlm_answer']} without a VLM answer, {s['runs_disagree']} where the runs disagree")
    print(f"model/VLM agreement {report['model_vlm_agreement']:.3f}; agreed {report['agreed']}, kept {report['kept']} "
          f"(min_conf {report['settings']['min_conf']}, max_per_class {report['settings']['max_per_class'] or 'none'})")
    print("kept per class: " + ", ".join(f"{c} {n}" for c, n in report["kept_per_class"].items()))
    if "truth" in report:
        t = report["truth"]
        fmt = lambda x: "n/a" if x is None else f"{x:.4f}"  # noqa: E731
        print(f"accuracy on the pool ({t['clips_with_truth']} clips with truth): pseudo-labels {fmt(t['pseudo_label_accuracy'])}, "
              f"VLM {fmt(t['vlm_accuracy_on_pool'])}, model {fmt(t['model_accuracy_on_pool'])}")
    print(f"wrote {out_path} ({report['labeled_train']} labeled + {report['kept']} pseudo-labeled training clips, "
          f"validation unchanged) and {report_path}")


@cli
def main(argv=None):
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
