"""The CSV tables users pass around: clip lists (column ``name``) and labels (``name, discrete[, valence]``).

A ``name`` may carry a folder and an extension; the sample key is the file stem.
"""
import os

import numpy as np

from toolkit.errors import UserError


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

    from dataloader.batches import check_unique

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


def encode_labels(labels, classes, where):
    """Class indices of label strings; any label outside ``classes`` is a UserError with a count."""
    index = {c: i for i, c in enumerate(classes)}
    labels = [str(x).strip() for x in labels]
    unknown = sorted({x for x in labels if x not in index})
    if unknown:
        count = sum(x not in index for x in labels)
        shown = ", ".join(repr(x) for x in unknown[:5])
        raise UserError(f"{where}: {count} labels are not one of {', '.join(classes)} (found {shown}); fix them or pick the matching --emo_rule")
    return np.array([index[x] for x in labels], dtype=np.int64)


def index_of(names, wanted, what, source):
    """Positions of ``wanted`` in ``names``; names missing from ``names`` are a UserError (count + first few)."""
    position = {n: i for i, n in enumerate(names)}
    missing = [n for n in wanted if n not in position]
    if missing:
        raise UserError(f"{source} lacks {len(missing)} of the {len(wanted)} {what} (first: {', '.join(missing[:5])})")
    return np.array([position[n] for n in wanted], dtype=np.int64)
