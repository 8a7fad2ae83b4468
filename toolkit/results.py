"""Collect run directories' summary.json files into mean ± std tables (one row per feature list)."""
import json
import os
import sys

import numpy as np
import pandas as pd

from toolkit.errors import UserError
from toolkit.runs import CHECKPOINT_FILE, SUMMARY_FILE, run_file

MODALITY_LETTERS = {"video": "V", "audio": "A", "text": "T"}
TABLE_COLUMNS = ["features", "modality", "dim", "model", "runs", "acc_mean", "acc_std", "f1_mean", "f1_std",
                 "best_epoch", "seconds_per_epoch", "seconds_per_run", "best_f1", "best_run", "best_run_model"]


SUMMARY_KEYS = ("model", "classes", "features", "acc", "f1", "best_epoch", "seconds_per_epoch")
FAILED_MARKER = "FAILED"


def read_summary_file(path):
    """A run's summary.json as a dict; a truncated or non-JSON file is a one-line UserError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc.__class__.__name__}: {str(exc).splitlines()[0]}); "
                        "the run was interrupted while writing it or the file was edited: rerun train.py or remove that run dir") from None
    if not isinstance(summary, dict):
        raise UserError(f"{path} holds a JSON {type(summary).__name__}, not an object; it is not a summary.json written by train.py")
    return summary


def failure_of(run_dir, summary=None):
    """Why ``run_dir`` is a failed run (a FAILED file, or summary.json status "failed"), or None."""
    if os.path.exists(os.path.join(run_dir, FAILED_MARKER)):
        return f"it holds a {FAILED_MARKER} file"
    if summary is None:
        path = os.path.join(run_dir, SUMMARY_FILE)
        summary = read_summary_file(path) if os.path.isfile(path) else {}
    if summary.get("status") == "failed":
        reason = summary.get("reason") or summary.get("error")
        return 'its summary.json has status "failed"' + (f" ({reason})" if reason else "")
    return None


def check_not_failed(run_dir, summary=None):
    """A UserError if ``run_dir`` is marked failed: a failed run is no model to predict, ensemble or rank with."""
    why = failure_of(run_dir, summary)
    if why:
        raise UserError(f"run dir {run_dir} is a failed run ({why}); rerun it (e.g. with a lower --lr) or leave it out")


def find_runs(roots):
    """Every finished run (a folder with summary.json) below ``roots``, as summary dicts with ``run_dir``."""
    runs = []
    for root in roots:
        if not os.path.isdir(root):
            raise UserError(f"{root} is not a folder; pass the folder that holds the run directories (e.g. saved/unimodal)")
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # skip staging folders of running trainings
            if SUMMARY_FILE in files or FAILED_MARKER in files:
                path = os.path.join(folder, SUMMARY_FILE)
                summary = read_summary_file(path) if SUMMARY_FILE in files else {}
                check_not_failed(folder, summary)
                check_summary_keys(path, summary)
                summary["run_dir"] = folder
                runs.append(summary)
    if not runs:
        raise UserError(f"no finished runs (summary.json) under {', '.join(roots)}; run train.py or run_eval_unimodal.sh first")
    return runs


def check_summary_keys(path, summary):
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}; it is not a summary.json written by train.py (rerun that run)")
    features = summary["features"]
    if not isinstance(features, list) or not all(isinstance(f, dict) and {"name", "modality", "dim"} <= set(f) for f in features):
        raise UserError(f"{path}: 'features' must be a list of {{name, modality, dim}}; it is not a summary.json written by train.py")


def summarize_runs(runs):
    """DataFrame with one row per (feature list, model): mean ± std over its runs, sorted by mean F1."""
    class_lists = {tuple(r["classes"]) for r in runs}
    if len(class_lists) > 1:
        raise UserError(f"runs of {len(class_lists)} different class lists are mixed ({' | '.join(','.join(c) for c in class_lists)}); "
                        "summarise each --emo_rule separately")
    groups = {}
    for r in runs:
        key = (tuple(f["name"] for f in r["features"]), r["model"])
        groups.setdefault(key, []).append(r)
    rows = []
    for (names, model), members in groups.items():
        feats = members[0]["features"]
        best = best_run(members)
        rows.append({
            "features": "+".join(names),
            "modality": "+".join(sorted({MODALITY_LETTERS.get(f["modality"], "?") for f in feats})),
            "dim": sum(f["dim"] for f in feats),
            "model": model,
            "runs": len(members),
            "acc_mean": np.mean([m["acc"] for m in members]),
            "acc_std": np.std([m["acc"] for m in members]),
            "f1_mean": np.mean([m["f1"] for m in members]),
            "f1_std": np.std([m["f1"] for m in members]),
            "best_epoch": np.mean([m["best_epoch"] for m in members]),
            "seconds_per_epoch": np.mean([m["seconds_per_epoch"] for m in members]),
            "seconds_per_run": np.mean([m.get("seconds_total", np.nan) for m in members]),
            "best_f1": best["f1"],
            "best_run": best["run_dir"],
            "best_run_model": os.path.exists(run_file(best["run_dir"], CHECKPOINT_FILE)),
        })
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return table.sort_values(["f1_mean", "features"], ascending=[False, True], ignore_index=True)


def best_run(runs):
    """The run of highest weighted F1 among ``runs`` (summary dicts with run_dir); on a tie the first by run dir."""
    return min(runs, key=lambda r: (-r["f1"], r["run_dir"]))


def markdown_table(table):
    lines = ["| rank | features | modality | dim | model | runs | accuracy | weighted F1 | best epoch | s/epoch | best run (F1) |",
             "|---:|---|---|---:|---|---:|---|---|---:|---:|---|"]
    for i, r in table.iterrows():
        model = "" if r.best_run_model else f", no {CHECKPOINT_FILE}"
        lines.append(f"| {i + 1} | {r.features} | {r.modality} | {r.dim} | {r.model} | {r.runs} | "
                     f"{r.acc_mean:.4f} ± {r.acc_std:.4f} | {r.f1_mean:.4f} ± {r.f1_std:.4f} | {r.best_epoch:.1f} | {r.seconds_per_epoch:.3f} | "
                     f"{r.best_run} ({r.best_f1:.4f}{model}) |")
    return "\n".join(lines) + "\n"


def single_feature_rows(table_csv, flag="--topn_from"):
    """The single-feature rows of a summary CSV (eval_avg_performance.py's), best first."""
    if not os.path.exists(table_csv):
        raise UserError(f"{flag} {table_csv} not found; run run_eval_unimodal.sh then eval_avg_performance.py first")
    table = pd.read_csv(table_csv)
    missing = [c for c in ("features", "modality", "f1_mean") if c not in table.columns]
    if missing:
        raise UserError(f"{table_csv} lacks columns {missing}; write it with eval_avg_performance.py")
    return table[~table["features"].str.contains(r"\+", regex=True)].sort_values("f1_mean", ascending=False)


def top_features(table_csv, n, modalities="AVT"):
    """The ``n`` best single features of each modality letter in ``modalities`` from a summary CSV. A modality
    with no row in the table (a release without text features) is left out with a note on stderr; none of them
    having a row is an error that says what the table holds."""
    single = single_feature_rows(table_csv)
    modalities = modalities.upper()
    unknown = set(modalities) - set(MODALITY_LETTERS.values())
    if unknown or not modalities:
        raise UserError(f"--topn_modalities {modalities!r}: use letters from A (audio), V (video), T (text)")
    picked = {letter: single[single["modality"] == letter]["features"].head(n).tolist() for letter in modalities}
    present = "".join(letter for letter in modalities if picked[letter])
    if not present:
        held = single["modality"].value_counts()
        holds = ", ".join(f"{count} of modality {letter}" for letter, count in held.items())
        fix = (f"it holds {holds}: use --topn_modalities {''.join(sorted(held.index))}" if holds else
               "it holds no single-feature row: run run_eval_unimodal.sh then eval_avg_performance.py")
        raise UserError(f"{table_csv} has no single-feature rows of modality {', '.join(modalities)} "
                        f"(--topn_modalities {modalities}); {fix}")
    if present != modalities:
        absent = "".join(letter for letter in modalities if not picked[letter])
        print(f"note: {table_csv} has no single-feature rows of modality {', '.join(absent)}; fusing the top {n} of "
              f"{', '.join(present)} only (--topn_modalities {present} says so without this note)", file=sys.stderr, flush=True)
    return [name for letter in present for name in picked[letter]]
