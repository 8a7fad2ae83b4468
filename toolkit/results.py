"""Collect run directories' summary.json files into mean ± std tables (one row per feature list)."""
import json
import os

import numpy as np
import pandas as pd

from toolkit.errors import UserError

MODALITY_LETTERS = {"video": "V", "audio": "A", "text": "T"}
TABLE_COLUMNS = ["features", "modality", "dim", "model", "runs", "acc_mean", "acc_std", "f1_mean", "f1_std",
                 "best_epoch", "seconds_per_epoch", "seconds_per_run"]


def find_runs(roots):
    """Every finished run (a folder with summary.json) below ``roots``, as summary dicts with ``run_dir``."""
    runs = []
    for root in roots:
        if not os.path.isdir(root):
            raise UserError(f"{root} is not a folder; pass the folder that holds the run directories (e.g. saved/unimodal)")
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # skip staging folders of running trainings
            if "summary.json" in files:
                with open(os.path.join(folder, "summary.json"), encoding="utf-8") as f:
                    summary = json.load(f)
                summary["run_dir"] = folder
                runs.append(summary)
    if not runs:
        raise UserError(f"no finished runs (summary.json) under {', '.join(roots)}; run train.py or run_eval_unimodal.sh first")
    return runs


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
        })
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return table.sort_values(["f1_mean", "features"], ascending=[False, True], ignore_index=True)


def markdown_table(table):
    lines = ["| rank | features | modality | dim | model | runs | accuracy | weighted F1 | best epoch | s/epoch |",
             "|---:|---|---|---:|---|---:|---|---|---:|---:|"]
    for i, r in table.iterrows():
        lines.append(f"| {i + 1} | {r.features} | {r.modality} | {r.dim} | {r.model} | {r.runs} | "
                     f"{r.acc_mean:.4f} ± {r.acc_std:.4f} | {r.f1_mean:.4f} ± {r.f1_std:.4f} | {r.best_epoch:.1f} | {r.seconds_per_epoch:.3f} |")
    return "\n".join(lines) + "\n"


def top_features(table_csv, n, modalities="AVT"):
    """The ``n`` best single features of each modality letter in ``modalities`` from a summary CSV."""
    if not os.path.exists(table_csv):
        raise UserError(f"--topn_from {table_csv} not found; run run_eval_unimodal.sh then eval_avg_performance.py first")
    table = pd.read_csv(table_csv)
    missing = [c for c in ("features", "modality", "f1_mean") if c not in table.columns]
    if missing:
        raise UserError(f"{table_csv} lacks columns {missing}; write it with eval_avg_performance.py")
    single = table[~table["features"].str.contains(r"\+", regex=True)].sort_values("f1_mean", ascending=False)
    unknown = set(modalities) - set(MODALITY_LETTERS.values())
    if unknown or not modalities:
        raise UserError(f"--topn_modalities {modalities!r}: use letters from A (audio), V (video), T (text)")
    chosen = []
    for letter in modalities:
        picked = single[single["modality"] == letter]["features"].head(n).tolist()
        if not picked:
            raise UserError(f"{table_csv} has no single-feature rows of modality {letter}; drop it from --topn_modalities")
        chosen += picked
    return chosen
