"""Report the dimension of every feature folder, optionally check every file, and print config.py entries.

    python preprocess/check_feat_dim.py                           # data/demo/features, 200 files per folder
    python preprocess/check_feat_dim.py --root /data/mer/features --all
    python preprocess/check_feat_dim.py --root /data/mer/features --emit-config

One line per feature folder: ``NAME, dim=C, files=N``. Utterance-level files hold ``(C,)`` (``(1, C)`` is
accepted and squeezed); frame-level folders (``-FRM``) hold ``(T, C)`` with T varying and get
``NAME, dim=C, files=N, T=min..max (p50 X, p95 Y, from K of N files)`` over the files read (pick
--max_frames of train.py from it). Without ``--all`` up to ``--sample`` evenly spaced files per folder are
read; ``--all`` reads every file. The files read must have the same shape (the same C, 2-D and T > 0 for
frame level), real numeric values and only finite ones; any problem is listed with the offending files and
the exit status is non-zero.
"""
import collections
import errno
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

import config  # noqa: E402
from dataloader.feature_store import feature_registry, read_npy  # noqa: E402
from dataloader.kinds import kind_for_name  # noqa: E402
from toolkit.errors import ArgumentParser, UserError, bounded, cli  # noqa: E402
from toolkit.io import resolve  # noqa: E402

SHOW = 5  # offending files named per problem
SAMPLE = 200  # files read per folder without --all

# Substrings of feature names that say the modality; audio first ("hubert" contains "bert").
MODALITY_HINTS = [
    ("audio", ["hubert", "wav2vec", "wavlm", "whisper", "audio", "vggish", "emotion2vec", "egemaps",
               "opensmile", "data2vec", "speech"]),
    ("video", ["face", "clip", "vit", "videomae", "manet", "emonet", "dinov2", "internvl", "resnet", "senet",
               "openface", "video", "image", "swin", "llava", "qwen2-vl", "qwen-vl", "blip", "visual"]),
    ("text", ["roberta", "bert", "bloom", "llama", "glm", "baichuan", "qwen", "mistral", "text", "sentence",
              "ernie", "xlnet", "gpt"]),
]
CONFIG_DICTS = {"video": "FEAT_VIDEO_DICT", "audio": "FEAT_AUDIO_DICT", "text": "FEAT_TEXT_DICT"}


def guess_modality(name):
    """'video', 'audio', 'text' or None when the feature name does not say."""
    low = name.lower()
    tokens = low.replace("_", "-").split("-")
    for modality, hints in MODALITY_HINTS:
        if any(h in low for h in hints) or (modality == "video" and "au" in tokens):
            return modality
    return None


def load(path):
    """The array in ``path`` or a problem string (the feature store's checks: numbers, not complex, not .npz)."""
    return read_npy(path)


def sampled(files, n):
    """Up to ``n`` of ``files``, evenly spaced (first and last included); all of them when n is None."""
    if n is None or len(files) <= n:
        return files
    return [files[i] for i in sorted(set(np.linspace(0, len(files) - 1, n).round().astype(int)))]


def list_folder(folder):
    try:
        return os.listdir(folder)
    except OSError as exc:
        raise UserError(f"cannot list feature folder {folder} ({exc.strerror}); fix its permissions (chmod a+rX) "
                        "or remove it from --root") from None


def inspect(folder, name, sample=SAMPLE):
    """Check one feature folder, reading ``sample`` evenly spaced files (None: all); returns a dict with dim,
    files, read, frames, a list of problems and the first offending file."""
    files = sorted(f for f in list_folder(folder) if f.endswith(".npy"))
    info = {"name": name, "folder": folder, "files": len(files), "read": 0, "dim": None, "frames": None,
            "problems": [], "first_bad": None}
    if not files:
        info["problems"].append(f"no .npy files in {folder}")
        return info
    kind = kind_for_name(name)  # the kind the folder name implies (a -FRM name: frames)
    bad = collections.defaultdict(list)  # problem kind -> [file (detail)]
    shapes, lengths = {}, []
    chosen = sampled(files, sample)
    info["read"] = len(chosen)
    for f in tqdm(chosen, desc=name, unit="file", leave=False, disable=None):
        array, problem = load(os.path.join(folder, f))
        if problem is None:
            dim, problem = kind.file_dim(array.shape)
        if problem is not None:
            bad["bad file"].append(f"{f} ({problem})")
            info["first_bad"] = info["first_bad"] or os.path.join(folder, f)
            continue
        shapes[f] = dim
        if kind.frames:
            lengths.append(array.shape[0])
        if not np.all(np.isfinite(array)):
            bad["NaN/inf values"].append(f)
            info["first_bad"] = info["first_bad"] or os.path.join(folder, f)
    if shapes:
        info["dim"] = collections.Counter(shapes.values()).most_common(1)[0][0]  # the majority, not the first
        wrong = [f"{f} (dim {d})" for f, d in shapes.items() if d != info["dim"]]
        if wrong:
            bad[f"dim differs from {info['dim']}"] = wrong
            info["first_bad"] = info["first_bad"] or os.path.join(folder, wrong[0].split(" ")[0])
    if lengths:
        info["frames"] = (min(lengths), max(lengths), float(np.percentile(lengths, 50)), float(np.percentile(lengths, 95)))
    for kind, items in bad.items():
        more = f" and {len(items) - SHOW} more" if len(items) > SHOW else ""
        info["problems"].append(f"{len(items)} file(s) with {kind}: {', '.join(items[:SHOW])}{more}")
    return info


def config_dims():
    """{feature: dim} of config.py (its entries validated as train.py reads them)."""
    return {name: spec.dim for name, spec in feature_registry().items()}


def report_line(info, known):
    line = f"{info['name']}, dim={info['dim']}, files={info['files']}"
    if info["frames"]:
        lo, hi, p50, p95 = info["frames"]
        line += f", T={lo}..{hi} (p50 {p50:g}, p95 {p95:g}, from {info['read']} of {info['files']} files)"
    if info["dim"] is not None and info["name"] in known and known[info["name"]] != info["dim"]:
        line += f"  (config.py says dim={known[info['name']]})"
    return line


def config_path(folder):
    """Folder as config.py should hold it: relative to the repository when inside it, else absolute."""
    folder = os.path.abspath(folder)
    rel = os.path.relpath(folder, config.PROJECT_ROOT)
    if rel.startswith(os.pardir):
        return folder
    return rel.replace(os.sep, "/")


def emit_config(infos, root):
    """Python lines that register the folders in config.py, grouped by the modality the names suggest: print
    them and paste them at the end of config.py, or append them (``--emit-config >> config.py``). Folders
    whose modality the name does not tell are commented out, to be moved into the right dict by hand."""
    groups = collections.defaultdict(list)
    for info in infos:
        if info["dim"] is not None and not info["problems"]:
            groups[guess_modality(info["name"])].append(info)
    lines = [f"# features under {config_path(os.path.abspath(root))} (preprocess/check_feat_dim.py --emit-config); "
             "a -FRM name marks frame level"]
    for modality in ["video", "audio", "text", None]:
        if not groups[modality]:
            continue
        prefix = "" if modality else "# "
        if not modality:
            lines.append("# modality? the names do not say: uncomment these and put each in FEAT_VIDEO/AUDIO/TEXT_DICT")
        lines.append(f"{prefix}{CONFIG_DICTS.get(modality, 'FEAT_?_DICT')}.update({{")
        for info in groups[modality]:
            name, path = json.dumps(info["name"]), json.dumps(config_path(info["folder"]))  # quoted and escaped
            note = f"files={info['files']}"
            if info["frames"]:
                note += f", frames T={info['frames'][0]}..{info['frames'][1]}"
            lines.append(f"{prefix}    {name}: [{info['dim']}, {path}],  # {note}")
        lines.append(f"{prefix}}})")
    return "\n".join(lines)


def feature_folders(root):
    if not os.path.isdir(root):
        raise UserError(f"feature root {root} not found; pass --root DIR holding one folder per feature (DIR/<feature>/<sample>.npy)")
    entries = sorted(list_folder(root))
    for entry in entries:
        path = os.path.join(root, entry)
        if not entry.startswith(".") and os.path.islink(path) and not os.path.exists(path):
            try:
                os.stat(path)
                why = "cannot be followed"
            except OSError as exc:
                why = "is a symlink loop" if exc.errno == errno.ELOOP else "points to a missing target"
            raise UserError(f"{path} {why}; point the link at the real feature folder or remove it")
    folders = [e for e in entries if os.path.isdir(os.path.join(root, e)) and not e.startswith(".")]
    if not folders:
        if any(e.endswith(".npy") for e in entries):
            raise UserError(f"{root} holds .npy files but no feature folders; it looks like one feature folder, pass its parent as --root")
        raise UserError(f"feature root {root} is empty; expected {root}/<feature-name>/<sample>.npy")
    return folders


def build_parser():
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None,
                        help=f"folder holding one sub-folder per feature (default: config.DEMO_FEATURES, {config.DEMO_FEATURES})")
    parser.add_argument("--all", action="store_true",
                        help="read every file, not a sample: same shape, real finite values")
    parser.add_argument("--sample", type=bounded(int, 1), default=SAMPLE, help="without --all, files read per folder, evenly spaced")
    parser.add_argument("--emit-config", dest="emit_config", action="store_true",
                        help="print config.py entries (all output is Python: append it with >> config.py)")
    return parser


@cli
def main(argv=None):
    args = build_parser().parse_args(argv)
    root = args.root or os.path.relpath(resolve(config.DEMO_FEATURES))

    known = config_dims()
    infos = [inspect(os.path.join(root, name), name, None if args.all else args.sample) for name in feature_folders(root)]
    comment = "# " if args.emit_config else ""  # with --emit-config all of stdout is valid Python for config.py
    for info in infos:
        print(comment + report_line(info, known))
        for problem in info["problems"]:
            print(f"{comment}  ! {problem}")
    if args.emit_config:
        print()
        print(emit_config(infos, root))
    failed = [info for info in infos if info["problems"]]
    if failed:
        first = next((info["first_bad"] for info in failed if info["first_bad"]), None)
        named = f"; first bad file: {first}" if first else ""
        raise UserError(f"{len(failed)} of {len(infos)} feature folders have problems ({', '.join(i['name'] for i in failed)}){named}; "
                        "see the lines above")
    return 0


if __name__ == "__main__":
    main()
