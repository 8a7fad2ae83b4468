"""Split a label CSV into the train/valid split dicts that train.py reads.

    python preprocess/mer2025_base.py --label_csv data/demo/labels.csv --seed 0          # train_lst/seed0.npy
    python preprocess/mer2025_base.py --label_csv track1_train_disdim.csv --stratify --folds 5   # fold0..4.npy

The label CSV has columns ``name, discrete[, valence]``; ``name`` may carry an extension or a path (the
sample key is the file stem). Without a valence column (MER2026's track1_train.csv) every valence is NaN, which train.py
reads as "no valence target" (the valence loss skips NaN targets).
Each output file is a split dict (toolkit/io.py: training and validation {"names", "emos", "vals"}, and "source") with
plain lists (emotions as strings, valences as floats); ``source`` records the label CSV (absolute path and
SHA-256 of its content). A split file made from another label CSV is never replaced without --overwrite;
rerunning with the same CSV content rewrites it.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from toolkit.errors import ArgumentParser, UserError, cli  # noqa: E402
from dataloader.registry import Registry  # noqa: E402
from toolkit.io import SPLIT_KEYS, file_sha256, load_npy_data, remove_stale_temps, resolve, save_split  # noqa: E402
from toolkit.tables import canonical_label, sample_key  # noqa: E402

SHOW = 5  # offending rows named in an error


def _listing(items):
    items = list(items)
    more = f" and {len(items) - SHOW} more" if len(items) > SHOW else ""
    return ", ".join(str(i) for i in items[:SHOW]) + more


def read_labels(path, classes):
    """Read and validate a label CSV; returns (names, emos, vals, has_valence). Row numbers are file lines."""
    if not os.path.isfile(path):
        raise UserError(f"label CSV {path} not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable CSV is the same user problem
        raise UserError(f"cannot read label CSV {path} ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in ("name", "discrete") if c not in df.columns]
    if missing:
        raise UserError(f"{path} lacks column(s) {', '.join(missing)}; found {', '.join(df.columns) or 'none'} "
                        "(expected name, discrete[, valence])")
    if len(df) == 0:
        raise UserError(f"{path} has no rows")
    line = np.arange(len(df)) + 2  # header is line 1

    names = [sample_key(n) for n in df["name"]]
    empty = [f"line {ln}" for ln, n in zip(line, names) if not n]
    if empty:
        raise UserError(f"{path}: empty name at {_listing(empty)}")
    counts = pd.Series(names).value_counts()
    dups = counts[counts > 1]
    if len(dups):
        raise UserError(f"{path}: {len(dups)} duplicated sample name(s): {_listing(f'{n} (x{c})' for n, c in dups.items())}")

    emos = [canonical_label(e, classes) for e in df["discrete"]]
    bad = [f"line {ln} {n} '{e}'" for ln, n, e, ok in zip(line, names, df["discrete"], emos) if ok is None]
    if bad:
        raise UserError(f"{path}: {len(bad)} label(s) outside the classes [{', '.join(classes)}]: {_listing(bad)}")

    has_valence = "valence" in df.columns
    if has_valence:
        vals = pd.to_numeric(df["valence"].str.strip(), errors="coerce")
        bad = [f"line {ln} {n} '{v}'" for ln, n, v, x in zip(line, names, df["valence"], vals) if not np.isfinite(x)]
        if bad:
            raise UserError(f"{path}: {len(bad)} valence value(s) are not numbers: {_listing(bad)}")
        vals = [float(v) for v in vals]
    else:
        vals = [float("nan")] * len(names)
    return names, emos, vals, has_valence


def split_valid(emos, ratio, rng, stratify, classes):
    """Boolean mask of validation samples: ratio of all (or of each class with --stratify)."""
    n = len(emos)
    valid = np.zeros(n, dtype=bool)
    if stratify:
        emos = np.array(emos)
        for c in classes:
            idx = rng.permutation(np.flatnonzero(emos == c))
            valid[idx[: int(round(ratio * len(idx)))]] = True
    else:
        valid[rng.permutation(n)[: int(round(ratio * n))]] = True
    return valid


def split_folds(emos, k, rng, stratify, classes):
    """Fold index per sample: K disjoint validation sets covering all samples (balanced per class with --stratify)."""
    n = len(emos)
    fold = np.empty(n, dtype=int)
    if stratify:
        emos, offset = np.array(emos), 0
        for c in classes:
            idx = rng.permutation(np.flatnonzero(emos == c))
            fold[idx] = (offset + np.arange(len(idx))) % k  # deal round-robin, continuing across classes
            offset += len(idx)
    else:
        for f, idx in enumerate(np.array_split(rng.permutation(n), k)):
            fold[idx] = f
    return fold


def info(mask, names, emos, vals):
    idx = np.flatnonzero(mask)
    return {
        "names": [str(names[i]) for i in idx],
        "emos": [str(emos[i]) for i in idx],
        "vals": [float(vals[i]) for i in idx],
    }


def count_table(splits, classes):
    """Class counts of train and valid of each output file."""
    lines = [f"  {'':<12}{'split':<7}" + "".join(f"{c:>9}" for c in classes) + f"{'total':>8}"]
    for fname, split in splits:
        for key in SPLIT_KEYS:
            emos = split[key]["emos"]
            counts = [emos.count(c) for c in classes]
            lines.append(f"  {fname:<12}{key[:5]:<7}" + "".join(f"{x:>9}" for x in counts) + f"{len(emos):>8}")
    return "\n".join(lines)


def check_same_source(path, source):
    """Refuse to replace the split file ``path`` unless it was made from a label CSV with the same content."""
    if not os.path.exists(path):
        return
    old = load_npy_data(path, "split file", "move it away or pass --overwrite to replace it")
    old = old.get("source") if isinstance(old, dict) else None
    if isinstance(old, dict) and old.get("sha256") == source["sha256"]:
        return
    was = (f"label CSV {old.get('label_csv')} (sha256 {str(old.get('sha256'))[:12]})" if isinstance(old, dict)
           else "a label CSV it does not record")
    raise UserError(f"{path} already exists, made from {was}, not from {source['label_csv']} (sha256 {source['sha256'][:12]}); "
                    "pass --overwrite to replace it or --save_root to write elsewhere")


def build_parser():
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label_csv", required=True,
                        help="CSV with columns name, discrete[, valence]; without valence all vals are NaN (no valence target)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the output is <save_root>/seed{N}.npy")
    parser.add_argument("--valid_ratio", type=float, default=None, help="fraction held out for validation (default 0.2)")
    parser.add_argument("--save_root", default=None, help="output folder (default: config.PATH_TO_TRAIN_LST in the repository)")
    parser.add_argument("--stratify", action="store_true", help="keep the class proportions in train and valid")
    parser.add_argument("--folds", type=int, default=None, help="write fold0.npy..fold{K-1}.npy (K-fold) instead of seed{N}.npy")
    parser.add_argument("--emo_rule", default="MER", help="class list key in config.EMO_RULE")
    parser.add_argument("--overwrite", action="store_true", help="replace split files that were made from another label CSV")
    return parser


def parse_args(argv):
    return build_parser().parse_args(argv)


@cli
def main(argv=None):
    args = parse_args(argv)
    registry = Registry.from_config()
    if args.folds is not None and args.valid_ratio is not None:
        raise UserError("give either --folds K (each fold holds out 1/K) or --valid_ratio, not both")
    ratio = 0.2 if args.valid_ratio is None else args.valid_ratio
    if not 0.0 < ratio < 1.0:
        raise UserError(f"--valid_ratio must be between 0 and 1 (exclusive), got {ratio}")
    classes = registry.classes(args.emo_rule)
    names, emos, vals, has_valence = read_labels(args.label_csv, classes)
    n = len(names)
    rng = np.random.default_rng(args.seed)
    save_root = args.save_root if args.save_root else os.path.relpath(resolve(registry.train_lst))

    if args.folds is not None:
        if not 2 <= args.folds <= n:
            raise UserError(f"--folds must be between 2 and the number of samples ({n}), got {args.folds}")
        fold = split_folds(emos, args.folds, rng, args.stratify, classes)
        masks = [(f"fold{k}.npy", fold == k) for k in range(args.folds)]
    else:
        masks = [(f"seed{args.seed}.npy", split_valid(emos, ratio, rng, args.stratify, classes))]
    for fname, valid in masks:  # check every file before writing any
        if valid.all() or not valid.any():
            raise UserError(f"{fname}: {n} samples with valid ratio {ratio} leave train or valid empty; use more samples or another ratio")
    source = {"label_csv": os.path.abspath(args.label_csv), "sha256": file_sha256(args.label_csv)}
    if not args.overwrite:
        for fname, _ in masks:
            check_same_source(os.path.join(save_root, fname), source)
    remove_stale_temps(save_root)  # left by a run of this script that was killed while writing

    splits = []
    for fname, valid in masks:
        train_part, valid_part = info(~valid, names, emos, vals), info(valid, names, emos, vals)
        save_split(os.path.join(save_root, fname), train_part, valid_part, {"source": source})
        splits.append((fname, dict(zip(SPLIT_KEYS, (train_part, valid_part)))))

    how = f"{args.folds}-fold" if args.folds else f"valid ratio {ratio}"
    print(f"{args.label_csv}: {n} samples, {how}, seed {args.seed}{', stratified' if args.stratify else ''}"
          + ("" if has_valence else "; no valence column: vals set to NaN (valence loss off)"))
    print(count_table(splits, classes))
    print("wrote " + ", ".join(os.path.join(save_root, f) for f, _ in splits))
    return [os.path.join(save_root, f) for f, _ in splits]


if __name__ == "__main__":
    main()
