"""The CSV tables users pass around: clip lists (column ``name``) and labels (``name, discrete[, valence]``).

A ``name`` may carry a folder and an extension; the sample key is the file stem.
"""
import os

import numpy as np

from toolkit.errors import UserError

MER_CLASSES = ("neutral", "angry", "happy", "sad", "worried", "surprise")  # MER2023-2026, in the published order


def sample_key(name):
    """``'videos/sample_00001.mp4'`` → ``'sample_00001'``."""
    base = os.path.basename(str(name).strip().replace("\\", "/"))
    return os.path.splitext(base)[0] or base


def read_table(path, what, columns=("name",)):
    """A CSV as a DataFrame of strings with ``name`` reduced to sample keys.

    ``what`` names the table in messages (e.g. "candidates CSV"). Missing file or columns, no rows,
    empty or repeated names are one-line UserErrors.
    """
    import pandas as pd

    if not os.path.isfile(path):
        raise UserError(f"{what} {path} not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise UserError(f"{what} {path} is empty; it needs a header line with column 'name' and one row per clip") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{what} {path} is not a readable CSV ({exc.__class__.__name__})") from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(f"{what} {path} has no column {', '.join(repr(c) for c in missing)} (columns: {', '.join(table.columns)})")
    if len(table) == 0:
        raise UserError(f"{what} {path} has a header but no rows; list at least one clip")
    table["name"] = table["name"].map(sample_key)
    empty = int((table["name"] == "").sum())
    if empty:
        raise UserError(f"{what} {path}: {empty} rows have an empty name")
    check_unique(table["name"].tolist(), f"{what} {path}")
    return table


def canonical_label(label, classes):
    """The class ``label`` names, or None: the one label policy of the toolkit. A label matches its class in
    any letter case, with surrounding spaces ignored (``' Happy'`` → ``'happy'``)."""
    wanted = str(label).strip().lower()
    return next((c for c in classes if c.lower() == wanted), None)


def encode_labels(labels, classes, where, names=None):
    """Class indices of label strings (``canonical_label``'s policy); labels outside ``classes`` are a
    UserError with their count, the first values and, given ``names``, the first sample."""
    index = {c: i for i, c in enumerate(classes)}
    labels = list(labels)
    found = [canonical_label(x, classes) for x in labels]
    bad = [i for i, c in enumerate(found) if c is None]
    if bad:
        shown = ", ".join(repr(x) for x in list(dict.fromkeys(str(labels[i]) for i in bad))[:5])
        sample = f"; first sample '{names[bad[0]]}'" if names is not None else ""
        raise UserError(f"{where}: {len(bad)} labels are not one of {', '.join(classes)} (found {shown}{sample}); "
                        "fix them or pick the matching --emo_rule")
    return np.array([index[c] for c in found], dtype=np.int64)


def check_unique(names, where):
    """Every sample name once; repeats are a UserError with their count and the first few."""
    seen, dups = set(), []
    for name in names:
        if name in seen:
            dups.append(name)
        seen.add(name)
    if dups:
        raise UserError(f"{where}: {len(dups)} sample names appear more than once (first: {', '.join(dups[:5])}); each clip must be listed once")


def index_of(names, wanted, what, source):
    """Positions of ``wanted`` in ``names``; names missing from ``names`` are a UserError (count + first few)."""
    position = {n: i for i, n in enumerate(names)}
    missing = [n for n in wanted if n not in position]
    if missing:
        raise UserError(f"{source} lacks {len(missing)} of the {len(wanted)} {what} (first: {', '.join(missing[:5])})")
    return np.array([position[n] for n in wanted], dtype=np.int64)
