"""Turn raw VLM answers (one per clip, prompt.txt / prompt_zh.txt or the widely shared Chinese prompt)
into a label + per-class score table, and optionally into a feature folder so the VLM joins the MoE.

    python preprocess/parse_vlm_answers.py --answers data/demo/vlm_answers --out data/demo/vlm.csv
    python preprocess/parse_vlm_answers.py --answers answers.jsonl --out vlm.csv \\
        --as_feature data/demo/features/vlm-scores-UTT --fill uniform --names data/demo/unlabeled.csv

--answers: a folder of <name>.txt / <name>.json raw answers, a JSONL (or JSON) file of {"name", "answer"}
records, or a CSV with columns name, answer; all UTF-8. Unusable answers (empty, too long, truncated,
unparseable or nested too deeply, a score that is not finite, a label outside the classes) are skipped
and counted by reason, never fatal.

Writes --out (name, label, score_<class>...) and <out stem>.summary.json beside it. With --as_feature DIR
it also writes one float32 (C,) score vector per clip as DIR/<name>.npy; DIR then holds exactly this
run's vectors. Clips without a usable answer get no vector, or a uniform one with --fill uniform, and
either way are listed in DIR.missing.txt. All outputs are written under temporary names and renamed
together at the end, so a failure midway (a full disk) leaves the previous outputs as they were.
"""
import contextlib
import csv
import errno
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from stages import vlm_answers  # noqa: E402
from toolkit.errors import ArgumentParser, UserError, cli  # noqa: E402
from toolkit.io import PROJECT_ROOT  # noqa: E402

N_EXAMPLES = 5
_UMASK = os.umask(0)
os.umask(_UMASK)


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--answers", required=True, help="folder of <name>.txt/.json, a .jsonl/.json or a .csv (name, answer)")
    p.add_argument("--out", required=True, help="output CSV: name, label, score_<class>...")
    p.add_argument("--as_feature", default=None, metavar="DIR", help="also write DIR/<name>.npy score vectors (an utterance feature) (default: none, no feature folder)")
    p.add_argument("--fill", choices=["none", "uniform"], default="none", help="--as_feature: uniform vector for clips without a usable answer")
    p.add_argument("--names", default=None, metavar="CSV", help="CSV with a 'name' column: the clips expected (others are ignored) (default: none, every answered clip)")
    p.add_argument("--emo_rule", default="MER", help="class list in config.EMO_RULE")
    return p.parse_args(argv)


def read_names(path):
    """Sample keys from the 'name' column of ``path``."""
    if not os.path.isfile(path):
        raise UserError(f"--names {path} not found; pass a CSV with a 'name' column (e.g. the label or unlabeled CSV)")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            column = next((c for c in reader.fieldnames or [] if c.strip().lower() == "name"), None)
            if column is None:
                raise UserError(f"--names {path} has no 'name' column (columns: {reader.fieldnames})")
            raw = [(row[column] or "") for row in reader]
    except UnicodeDecodeError:
        raise UserError(f"--names {path} is not UTF-8 text; re-save it as UTF-8") from None
    except (OSError, csv.Error) as exc:
        raise UserError(f"cannot read --names {path} ({getattr(exc, 'strerror', None) or exc})") from None
    names = []
    for i, name in enumerate(raw, 2):
        if name.strip():
            key = vlm_answers.clip_name(name)
            if key is None:
                raise UserError(f"--names {path} line {i}: {name!r} cannot name a clip file")
            names.append(key)
    if not names:
        raise UserError(f"--names {path} lists no clips")
    return list(dict.fromkeys(names))


def config_path(folder):
    """The folder as config.py should name it: relative to the project when inside it."""
    full = os.path.abspath(folder)
    rel = os.path.relpath(full, PROJECT_ROOT)
    return (full if rel.startswith("..") else rel).replace(os.sep, "/")


# ----------------------------------------------------------------------------------------------------
# Outputs: written under temporary names, renamed together at the end
# ----------------------------------------------------------------------------------------------------
class Staging:
    """Temporary names beside each output; ``commit`` renames them all into place.

    Nothing is renamed before everything is written, so a failure midway (a full disk) leaves the
    previous outputs as they were; ``discard`` removes the temporary files and the folders made for
    them. Renames need no space, so the commit itself does not run out of disk."""

    def __init__(self):
        self.files, self.folders, self.removals, self.made = [], [], [], []

    def _parent(self, target):
        """The folder of ``target``, made if missing (and remembered, so ``discard`` can remove it)."""
        parent = os.path.dirname(os.path.abspath(target))
        missing, up = [], parent
        while not os.path.exists(up):
            missing.append(up)
            up = os.path.dirname(up)
        os.makedirs(parent, exist_ok=True)
        self.made.extend(reversed(missing))  # outermost first; discard removes them innermost first
        return parent

    def file(self, target):
        """A temporary path that becomes ``target`` on commit."""
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=self._parent(target))
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give outputs the usual permissions
        self.files.append((tmp, target))
        return tmp

    def folder(self, target):
        """An empty temporary folder that replaces the folder ``target`` on commit."""
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=self._parent(target))
        os.chmod(tmp, 0o777 & ~_UMASK)
        self.folders.append((tmp, target))
        return tmp

    def remove(self, target):
        """Remove ``target`` (an output of an earlier run) on commit."""
        self.removals.append(target)

    def commit(self):
        for tmp, target in self.folders:
            old = tmp + ".old"
            if os.path.exists(target):
                os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        for tmp, target in self.files:
            os.replace(tmp, target)
        for target in self.removals:
            if os.path.exists(target):
                os.remove(target)
        self.files, self.folders, self.made = [], [], []

    def discard(self):
        for tmp, _ in self.files:
            if os.path.exists(tmp):
                os.remove(tmp)
        for tmp, _ in self.folders:
            shutil.rmtree(tmp, ignore_errors=True)
        for folder in reversed(self.made):  # deepest first; only if still empty
            with contextlib.suppress(OSError):
                os.rmdir(folder)


@contextlib.contextmanager
def writing(what, outcome="the previous outputs are unchanged"):
    """Turn a failed write (full disk, no permission, a bad path) into one line naming ``what``."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        hint = "free some space and run again" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "check the path and its permissions"
        raise UserError(f"cannot write {what} ({reason}); {outcome}: {hint}") from None


def write_table(path, result, classes):
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "label"] + [f"score_{c}" for c in classes])
        for name, answer in result.parsed.items():
            writer.writerow([name, answer.label] + [f"{x:.6f}" for x in answer.scores])


def write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_vector(path, vector):
    with open(path, "wb") as f:
        np.save(f, vector)


def check_feature_folder(folder, out_paths):
    """DIR must be a folder of score vectors (it is replaced), and no other output may lie inside it."""
    if os.path.basename(os.path.abspath(folder)) in ("", ".", "..") or os.path.normpath(folder) in (".", ".."):
        raise UserError(f"--as_feature {folder}: name a folder of its own, e.g. features/vlm-scores-UTT")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"--as_feature {folder} is a file; pass a folder for the score vectors")
    inside = os.path.abspath(folder) + os.sep
    for flag, path in out_paths:
        if os.path.abspath(path).startswith(inside):
            raise UserError(f"{flag} {path} lies inside --as_feature {folder}, which is replaced by score vectors; put it elsewhere")
    if os.path.isdir(folder):
        try:
            entries = os.listdir(folder)
        except OSError as exc:
            raise UserError(f"cannot list --as_feature {folder} ({exc.strerror or exc}); check its permissions") from None
        foreign = sorted(e for e in entries if not (e.endswith(".npy") and os.path.isfile(os.path.join(folder, e)))
                         and not (e.startswith(".") and os.path.isfile(os.path.join(folder, e))))
        if foreign:
            raise UserError(f"--as_feature {folder} holds {foreign[0]!r}, which is not a score vector; this run replaces "
                            "the folder, so pass an empty folder or one written by this script")


def stage_features(stage, folder, result, classes, fill, missing):
    """DIR/<name>.npy per parsed clip (and per missing clip with fill) into a staging folder, and
    DIR.missing.txt; returns the info for the summary."""
    before = set()
    if os.path.isdir(folder):
        before = {e for e in os.listdir(folder) if e.endswith(".npy")}
    with writing(f"--as_feature {folder}"):
        staged = stage.folder(folder)
    vectors = {name: answer.scores.astype(np.float32) for name, answer in result.parsed.items()}
    if fill == "uniform":
        vectors.update((name, np.full(len(classes), 1.0 / len(classes), dtype=np.float32)) for name in missing)
    for name, vector in vectors.items():
        with writing(os.path.join(folder, name + ".npy")):
            write_vector(os.path.join(staged, name + ".npy"), vector)
    missing_list = folder.rstrip("/\\") + ".missing.txt"
    if missing:
        with writing(missing_list):
            write_text(stage.file(missing_list), "".join(n + "\n" for n in missing))
    else:
        stage.remove(missing_list)
    return {"dir": folder, "files": len(vectors), "filled_uniform": len(missing) if fill == "uniform" else 0,
            "missing": len(missing), "missing_list": missing_list if missing else None,
            "stale_removed": len(before - {name + ".npy" for name in vectors})}


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
            print(f"  removed {feature['stale_removed']} vectors left by an earlier run for clips without a vector now")
        name = os.path.basename(os.path.normpath(feature["dir"]))
        print("add the VLM as an expert: paste into a FEAT_*_DICT of config.py (FEAT_VIDEO_DICT, say), then pass it to --feat:")
        print(f'    {name!r}: [{len(classes)}, {config_path(feature["dir"])!r}],')


def check_outputs(args, summary_path):
    """Refuse output paths that cannot work before anything is read or written."""
    for flag, path in (("--out", args.out), ("--out", summary_path)):
        if os.path.isdir(path):
            raise UserError(f"{flag} {path} is a folder; pass a file path such as {os.path.join(path, 'vlm.csv')}")
        parent = os.path.dirname(os.path.abspath(path))
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise UserError(f"{flag} {path}: {parent} is a file, not a folder; pass a path in a folder")
        if os.path.exists(args.answers) and os.path.abspath(path) == os.path.abspath(args.answers):
            raise UserError(f"{flag} {path} would overwrite --answers; pass another output path")
    if args.as_feature:
        inputs = [("--out", args.out), ("--out", summary_path), ("--answers", args.answers)]
        check_feature_folder(args.as_feature, inputs + ([("--names", args.names)] if args.names else []))


@cli
def main(argv=None):
    args = parse_args(argv)
    if args.fill != "none" and not args.as_feature:
        raise UserError("--fill uniform only applies with --as_feature DIR")
    summary_path = os.path.splitext(args.out)[0] + ".summary.json"
    check_outputs(args, summary_path)
    from dataloader.registry import Registry

    classes = Registry.from_config().classes(args.emo_rule)
    expected = read_names(args.names) if args.names else None
    records = vlm_answers.read_answers(args.answers)
    result = vlm_answers.parse_answers(records, classes, expected)
    if not result.parsed:
        counts = ", ".join(f"{r} {len(n)}" for r, n in result.skipped.items()) or "no clip of --names has an answer"
        raise UserError(f"no usable answer among the {result.read} read from {args.answers} ({counts}); "
                        "answers must hold a JSON object with a label or scores over the classes (see prompt.txt)")

    missing = [n for reason, names in result.skipped.items() if reason != vlm_answers.UNREADABLE for n in names]
    summary = {
        "answers": args.answers, "out": args.out, "summary": summary_path, "classes": classes,
        "read": result.read, "duplicates": result.duplicates, "not_in_names": len(result.not_expected),
        "expected": len(expected) if expected is not None else None,
        "parsed": len(result.parsed), "skipped": {r: len(n) for r, n in result.skipped.items()},
        "label_distribution": result.label_counts(classes), "repairs": result.note_counts(),
        "mean_contribution": result.mean_contribution(),
        "missing_examples": missing[:N_EXAMPLES], "skipped_names": result.skipped,
    }
    stage = Staging()
    try:
        with writing(f"--out {args.out}"):
            write_table(stage.file(args.out), result, classes)
        feature = stage_features(stage, args.as_feature, result, classes, args.fill, missing) if args.as_feature else None
        summary["feature"] = feature
        with writing(summary_path):
            write_text(stage.file(summary_path), json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
        with writing("the outputs (renaming them into place)", "some may be from this run, some from the last"):
            stage.commit()
    finally:
        stage.discard()
    report(summary, feature, classes)
    return summary


if __name__ == "__main__":
    main()
