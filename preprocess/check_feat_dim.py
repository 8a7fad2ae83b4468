"""Report the dimension of every feature folder, optionally check every file, and register the folders.

    python preprocess/check_feat_dim.py                           # data/demo/features, 200 files per folder
    python preprocess/check_feat_dim.py --root /data/mer/features --all
    python preprocess/check_feat_dim.py --root /data/mer/features --manifest --modality 'hv-vlm-UTT=V' '*hubert*=A'
    python preprocess/check_feat_dim.py --root /data/mer/features --emit-config --modality ... >> config.py

--manifest writes ROOT/features.yaml (name, dim, modality, level, folder of each good folder: data, never code)
and prints how to use it: ``--manifests ROOT/features.yaml`` for train.py, or the include line for config.py
that --emit-config prints (its only Python line; every other line is a comment, and names are escaped).
Each folder's modality comes from --modality NAME=A|V|T (fnmatch patterns allowed) or from the manifest
already there (extract.py records it); it is never guessed: folders without one are listed with a
suggested --modality and nothing is written. A folder name with a control character is refused.

One line per feature folder: ``NAME, dim=C, files=N``. Utterance-level files hold ``(C,)`` (``(1, C)`` is
accepted and squeezed); frame-level folders (``-FRM``) hold ``(T, C)`` with T varying and get
``NAME, dim=C, files=N, T=min..max (p50 X, p95 Y, from K of N files)``: frame counts from the header of every
file (K: those holding (T, C) with T > 0), nearest-rank percentiles (pick --max_frames of train.py from them),
the same with or without ``--all``. Without ``--all`` up to ``--sample`` evenly spaced files per folder are
read whole; ``--all`` reads every file. The files read must have the same shape (the same C, 2-D and T > 0 for
frame level), real numeric values and only finite ones; any problem is listed with the offending files and
the exit status is non-zero.
"""
import collections
import errno
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from dataloader.feature_store import read_npy  # noqa: E402
from dataloader.npyfile import frame_counts, nearest_rank  # noqa: E402
from dataloader.kinds import kind_for_name  # noqa: E402
from dataloader.registry import MANIFEST_NAME, MODALITY_LETTERS, Registry, write_manifest  # noqa: E402
from toolkit.errors import ArgumentParser, UserError, bounded, cli  # noqa: E402
from toolkit.io import PROJECT_ROOT, read_yaml, resolve  # noqa: E402

DEMO_FEATURES = os.path.join("data", "demo", "features")

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
def guess_modality(name):
    """'video', 'audio', 'text' or None when the feature name does not say (only a suggestion, never used as is)."""
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
    info = {"name": name, "folder": folder, "files": len(files), "dim": None, "frames": None,
            "problems": [], "first_bad": None}
    if not files:
        info["problems"].append(f"no .npy files in {folder}")
        return info
    kind = kind_for_name(name)  # the kind the folder name implies (a -FRM name: frames)
    bad = collections.defaultdict(list)  # problem kind -> [file (detail)]
    shapes = {}
    for f in tqdm(sampled(files, sample), desc=name, unit="file", leave=False, disable=None):
        array, problem = load(os.path.join(folder, f))
        if problem is None:
            dim, problem = kind.file_dim(array.shape)
        if problem is not None:
            bad["bad file"].append(f"{f} ({problem})")
            info["first_bad"] = info["first_bad"] or os.path.join(folder, f)
            continue
        shapes[f] = dim
        if not np.all(np.isfinite(array)):
            bad["NaN/inf values"].append(f)
            info["first_bad"] = info["first_bad"] or os.path.join(folder, f)
    if shapes:
        info["dim"] = collections.Counter(shapes.values()).most_common(1)[0][0]  # the majority, not the first
        wrong = [f"{f} (dim {d})" for f, d in shapes.items() if d != info["dim"]]
        if wrong:
            bad[f"dim differs from {info['dim']}"] = wrong
            info["first_bad"] = info["first_bad"] or os.path.join(folder, wrong[0].split(" ")[0])
    lengths = frame_counts([os.path.join(folder, f) for f in files]) if kind.frames else []
    if lengths:  # every file's header, read or not: the same figures with and without --all
        info["frames"] = (min(lengths), max(lengths), nearest_rank(lengths, 50), nearest_rank(lengths, 95), len(lengths))
    for kind, items in bad.items():
        more = f" and {len(items) - SHOW} more" if len(items) > SHOW else ""
        info["problems"].append(f"{len(items)} file(s) with {kind}: {', '.join(items[:SHOW])}{more}")
    return info


def registered_dims():
    """{feature: dim} of config.py and the manifests it includes (entries validated as train.py reads them)."""
    return {name: spec.dim for name, spec in Registry.from_config().features.items()}


def shown(name):
    """A name as printed: control characters escaped, so no name can end a comment line or start code."""
    return name.encode("unicode_escape").decode("ascii") if not name.isprintable() else name


def report_line(info, known):
    line = f"{shown(info['name'])}, dim={info['dim']}, files={info['files']}"
    if info["frames"]:
        lo, hi, p50, p95, counted = info["frames"]
        line += f", T={lo}..{hi} (p50 {p50}, p95 {p95}, from {counted} of {info['files']} files)"
    if info["dim"] is not None and info["name"] in known and known[info["name"]] != info["dim"]:
        line += f"  (config.py says dim={known[info['name']]})"
    return line


def project_path(path):
    """A path as config.py should hold it: relative to the repository when inside it, else absolute."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path, PROJECT_ROOT)
    return path if rel.startswith(os.pardir) else rel.replace(os.sep, "/")


def parse_modalities(items):
    """[(pattern, modality)] from ``NAME=A|V|T`` items."""
    pairs = []
    for item in items or []:
        pattern, _, letter = item.rpartition("=")
        if not pattern or letter.upper() not in MODALITY_LETTERS:
            raise UserError(f"--modality {item!r}: write NAME=A, NAME=V or NAME=T (A audio, V video, T text; NAME may be a "
                            "pattern such as '*hubert*')")
        pairs.append((pattern, MODALITY_LETTERS[letter.upper()]))
    return pairs


def modality_of(name, pairs, previous):
    """The last --modality pattern that matches ``name``, else the manifest's entry, else None."""
    import fnmatch

    for pattern, modality in reversed(pairs):
        if fnmatch.fnmatchcase(name, pattern):
            return modality
    return (previous.get(name) or {}).get("modality")


def manifest_entries(infos, root, pairs):
    """{name: {dim, modality, level, folder}} of the good folders; a folder without a modality is an error that
    suggests the --modality items to add."""
    path = os.path.join(root, MANIFEST_NAME)
    previous = read_yaml(path, "feature manifest", "remove it and run check_feat_dim.py --manifest again", missing_ok=True)
    previous = previous.get("features", {}) if isinstance(previous, dict) and isinstance(previous.get("features"), dict) else {}
    good = [info for info in infos if info["dim"] is not None and not info["problems"]]
    unknown = [info["name"] for info in good if modality_of(info["name"], pairs, previous) is None]
    if unknown:
        letters = {m: letter for letter, m in MODALITY_LETTERS.items()}
        hint = " ".join(f"'{n}={letters.get(guess_modality(n), '?')}'" for n in unknown[:8])
        raise UserError(f"{len(unknown)} feature folders have no modality ({', '.join(unknown[:8])}); say it with --modality "
                        f"{hint} (A audio, V video, T text; the letters shown are suggestions from the names, check them)")
    return {info["name"]: {"dim": int(info["dim"]), "modality": modality_of(info["name"], pairs, previous),
                           "level": kind_for_name(info["name"]).name, "folder": info["name"]} for info in good}


def write_root_manifest(infos, root, pairs):
    """Write ROOT/features.yaml for every good folder under it; returns its path."""
    return write_manifest(root, manifest_entries(infos, root, pairs), "preprocess/check_feat_dim.py", keep_others=False)


def include_line(manifest):
    """The one Python line that makes config.py include a manifest (the path through repr: data, never code)."""
    return f'FEATURE_MANIFESTS = [*globals().get("FEATURE_MANIFESTS", []), {project_path(manifest)!r}]'


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
    parser.add_argument("--root", default=None, help=f"folder holding one sub-folder per feature (default: {DEMO_FEATURES})")
    parser.add_argument("--all", action="store_true",
                        help="read every file, not a sample: same shape, real finite values")
    parser.add_argument("--sample", type=bounded(int, 1), default=SAMPLE, help="without --all, files read per folder, evenly spaced")
    parser.add_argument("--manifest", action="store_true", help=f"write ROOT/{MANIFEST_NAME}, the folders' registration as data")
    parser.add_argument("--modality", nargs="+", default=[], metavar="NAME=A|V|T",
                        help="each folder's modality (fnmatch patterns allowed, later items win; default: the manifest's)")
    parser.add_argument("--emit-config", dest="emit_config", action="store_true",
                        help="--manifest, and print config.py's include line for it (all output is Python: append it "
                             "with >> config.py)")
    return parser


@cli
def main(argv=None):
    args = build_parser().parse_args(argv)
    root = args.root or os.path.relpath(resolve(DEMO_FEATURES))
    pairs = parse_modalities(args.modality)
    known = registered_dims()
    infos = [inspect(os.path.join(root, name), name, None if args.all else args.sample) for name in feature_folders(root)]
    for info in infos:
        if not info["name"].isprintable():
            info["problems"].append("the folder name holds a control character; rename the folder")
    comment = "# " if args.emit_config else ""  # with --emit-config all of stdout is valid Python for config.py
    for info in infos:
        print(comment + report_line(info, known))
        for problem in info["problems"]:
            print(f"{comment}  ! {shown(problem)}")
    failed = [info for info in infos if info["problems"]]
    if failed:
        first = next((info["first_bad"] for info in failed if info["first_bad"]), None)
        named = f"; first bad file: {first}" if first else ""
        raise UserError(f"{len(failed)} of {len(infos)} feature folders have problems ({', '.join(i['name'] for i in failed)}){named}; "
                        "see the lines above")
    if args.manifest or args.emit_config:
        manifest = write_root_manifest(infos, root, pairs)
        print(f"{comment}wrote {shown(manifest)}: train with --manifests {shown(project_path(manifest))}, or include it in config.py:")
        print(include_line(manifest) if args.emit_config else f"  {include_line(manifest)}")
    return 0


if __name__ == "__main__":
    main()
