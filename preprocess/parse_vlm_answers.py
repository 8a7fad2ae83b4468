"""Turn raw VLM answers (one per clip, prompt.txt / prompt_zh.txt or the widely shared Chinese prompt)
into a label + per-class score table, and optionally into a feature folder so the VLM joins the MoE.

    python preprocess/parse_vlm_answers.py --answers data/demo/vlm_answers --out data/demo/vlm.csv
    python preprocess/parse_vlm_answers.py --answers answers.jsonl --out vlm.csv \\
        --as_feature data/demo/features/vlm-scores-UTT --fill uniform --names data/demo/unlabeled.csv

--answers: a folder of <name>.txt / <name>.json raw answers, a JSONL (or JSON) file of {"name", "answer"}
records, or a CSV with columns name, answer. Unusable answers (empty, truncated, unparseable, a label
outside the classes) are skipped and counted, never fatal.

Writes --out (name, label, score_<class>...), <out stem>.summary.json beside it, and with --as_feature DIR
one float32 (C,) score vector per clip as DIR/<name>.npy (clips without a usable answer get none, or a
uniform vector with --fill uniform; either way their list goes to DIR.missing.txt).
"""
import argparse
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import config  # noqa: E402
from toolkit import vlm  # noqa: E402
from toolkit.errors import UserError, cli  # noqa: E402
from toolkit.io import atomic_path, save_json, save_npy, save_text  # noqa: E402
from toolkit.tables import sample_key  # noqa: E402

N_EXAMPLES = 5


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--answers", required=True, help="folder of <name>.txt/.json, a .jsonl/.json or a .csv (name, answer)")
    p.add_argument("--out", required=True, help="output CSV: name, label, score_<class>...")
    p.add_argument("--as_feature", default=None, metavar="DIR", help="also write DIR/<name>.npy score vectors (an utterance feature)")
    p.add_argument("--fill", choices=["none", "uniform"], default="none", help="--as_feature: uniform vector for clips without a usable answer")
    p.add_argument("--names", default=None, metavar="CSV", help="CSV with a 'name' column: the clips expected (others are ignored)")
    p.add_argument("--emo_rule", default="MER", help="class list in config.EMO_RULE")
    return p.parse_args(argv)


def read_names(path):
    """Sample keys from the 'name' column of ``path``."""
    if not os.path.isfile(path):
        raise UserError(f"--names {path} not found; pass a CSV with a 'name' column (e.g. the label or unlabeled CSV)")
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        column = next((c for c in reader.fieldnames or [] if c.strip().lower() == "name"), None)
        if column is None:
            raise UserError(f"--names {path} has no 'name' column (columns: {reader.fieldnames})")
        names = [sample_key(row[column]) for row in reader if (row[column] or "").strip()]
    if not names:
        raise UserError(f"--names {path} lists no clips")
    return list(dict.fromkeys(names))


def write_table(path, result, classes):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["name", "label"] + [f"score_{c}" for c in classes])
            for name, answer in result.parsed.items():
                writer.writerow([name, answer.label] + [f"{x:.6f}" for x in answer.scores])


def config_path(folder):
    """The folder as config.py should name it: relative to the project when inside it."""
    full = os.path.abspath(folder)
    rel = os.path.relpath(full, config.PROJECT_ROOT)
    return (full if rel.startswith("..") else rel).replace(os.sep, "/")


def write_features(folder, result, classes, fill, missing):
    """DIR/<name>.npy per parsed clip (and per missing clip with fill); returns the info for the summary."""
    os.makedirs(folder, exist_ok=True)
    for name, answer in result.parsed.items():
        save_npy(os.path.join(folder, name + ".npy"), answer.scores.astype(np.float32))
    stale = 0
    for name in missing:
        path = os.path.join(folder, name + ".npy")
        if fill == "uniform":
            save_npy(path, np.full(len(classes), 1.0 / len(classes), dtype=np.float32))
        elif os.path.exists(path):  # left by an earlier run: this clip has no usable answer now
            os.remove(path)
            stale += 1
    missing_list = folder.rstrip("/\\") + ".missing.txt"
    if missing:
        save_text(missing_list, "".join(n + "\n" for n in missing))
    elif os.path.exists(missing_list):
        os.remove(missing_list)
    return {"dir": folder, "files": len(result.parsed) + (len(missing) if fill == "uniform" else 0),
            "filled_uniform": len(missing) if fill == "uniform" else 0, "missing": len(missing),
            "missing_list": missing_list if missing else None, "stale_removed": stale}


def report(summary, feature, classes):
    """Print the summary for a person."""
    parsed, read = summary["parsed"], summary["read"]
    considered = parsed + sum(summary["skipped"].values())
    print(f"read {read} answers from {summary['answers']}"
          + (f" ({summary['duplicates']} repeated names)" if summary["duplicates"] else "")
          + (f"; {summary['not_in_names']} not in --names, ignored" if summary["not_in_names"] else ""))
    print(f"parsed {parsed} of {considered} clips ({parsed / considered:.1%}), skipped {considered - parsed}")
    for reason, count in summary["skipped"].items():
        examples = ", ".join(summary["skipped_names"][reason][:N_EXAMPLES])
        print(f"  {reason:<20} {count:>6}  e.g. {examples}")
    dist = summary["label_distribution"]
    print("labels: " + ", ".join(f"{c} {dist[c]} ({dist[c] / parsed:.1%})" for c in classes))
    if summary["repairs"]:
        print("repaired: " + ", ".join(f"{k} {v}" for k, v in summary["repairs"].items()))
    if summary["mean_contribution"]:
        print("mean contribution: " + ", ".join(f"{k} {v:.2f}" for k, v in summary["mean_contribution"].items()))
    print(f"wrote {summary['out']} ({parsed} rows) and {summary['summary']}")
    if feature:
        print(f"wrote {feature['files']} score vectors (float32, ({len(classes)},)) to {feature['dir']}"
              + (f", {feature['filled_uniform']} of them uniform for clips without a usable answer (list in {feature['missing_list']})"
               if feature["filled_uniform"] else ""))
        if feature["missing"] and not feature["filled_uniform"]:
            print(f"  {feature['missing']} clips have no usable answer and no file, e.g. "
                  f"{', '.join(summary['missing_examples'])}; list in {feature['missing_list']} (--fill uniform gives them 1/{len(classes)} each)")
        if feature["stale_removed"]:
            print(f"  removed {feature['stale_removed']} files left by an earlier run for clips without a usable answer now")
        name = os.path.basename(os.path.normpath(feature["dir"]))
        print("add the VLM as an expert: paste into a FEAT_*_DICT of config.py (FEAT_VIDEO_DICT, say), then pass it to --feat:")
        print(f'    "{name}": [{len(classes)}, "{config_path(feature["dir"])}"],')


@cli
def main(argv=None):
    args = parse_args(argv)
    if args.emo_rule not in config.EMO_RULE:
        raise UserError(f"--emo_rule {args.emo_rule!r} is not in config.EMO_RULE; known: {', '.join(config.EMO_RULE)}")
    if args.fill != "none" and not args.as_feature:
        raise UserError("--fill uniform only applies with --as_feature DIR")
    classes = list(config.EMO_RULE[args.emo_rule])
    expected = read_names(args.names) if args.names else None
    records = vlm.read_answers(args.answers)
    result = vlm.parse_answers(records, classes, expected)
    if not result.parsed:
        counts = ", ".join(f"{r} {len(n)}" for r, n in result.skipped.items()) or "no clip of --names has an answer"
        raise UserError(f"no usable answer among the {result.read} read from {args.answers} ({counts}); "
                        "answers must hold a JSON object with a label or scores over the classes (see prompt.txt)")

    summary_path = os.path.splitext(args.out)[0] + ".summary.json"
    missing = [n for reason, names in result.skipped.items() if reason != vlm.UNREADABLE for n in names]
    summary = {
        "answers": args.answers, "out": args.out, "summary": summary_path, "classes": classes,
        "read": result.read, "duplicates": result.duplicates, "not_in_names": len(result.not_expected),
        "expected": len(expected) if expected is not None else None,
        "parsed": len(result.parsed), "skipped": {r: len(n) for r, n in result.skipped.items()},
        "label_distribution": result.label_counts(classes), "repairs": result.note_counts(),
        "mean_contribution": result.mean_contribution(),
        "missing_examples": missing[:N_EXAMPLES], "skipped_names": result.skipped,
    }
    write_table(args.out, result, classes)
    feature = write_features(args.as_feature, result, classes, args.fill, missing) if args.as_feature else None
    summary["feature"] = feature
    save_json(summary_path, summary)
    report(summary, feature, classes)
    return summary


if __name__ == "__main__":
    main()
