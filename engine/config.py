"""``TrainConfig``: the one description of a run. ``train.py``'s flags and ``--help`` are generated from it, a
YAML file loads into it, a Python caller builds it, and the run directory records it resolved (config.yaml).

    from engine import TrainConfig, run
    cfg = TrainConfig(feat=["demo-clip-UTT", "demo-hubert-UTT"], epochs=20, hparams={"hidden_dim": 32})
    result = run(cfg)                                  # RunResult; result.summary is summary.json

The model's own settings (its config dataclass in models/) are nested under ``hparams``, so a model field can
never collide with a training field. Precedence: defaults < YAML (``--config``) < flags; a flag counts when it
is given, also when it equals its default. Fields that name the same choice in two ways (``dataset`` or
``folds``; ``feat`` or ``feat_topn``) follow the same precedence: the later source's choice replaces the other.
"""
import ast
import dataclasses
import os

from toolkit.device import DEVICE_HELP, DEVICES, GPU_HELP
from toolkit.errors import UserError, did_you_mean
from toolkit.schema import build, fields, setting, to_dict
from toolkit.threads import THREADS_HELP, parse_threads

VALENCE_NOTE = "valence targets that are NaN (e.g. MER2026 splits without valence) are ignored"
ALTERNATIVES = (("dataset", "folds"), ("feat", "feat_topn"))  # each pair names one choice in two ways
DERIVED_KEYS = ("n_train", "feat_dims", "feat_levels", "num_classes", "start_time")  # args.yaml's values from the data
LEGACY_KEYS = ("config", "help")  # args.yaml keys of earlier versions that are no settings


def parse_feature_list(text):
    """``"['a','b']"`` (the format users know), ``a,b`` or ``a b`` → list of names."""
    text = text.strip()
    if text.startswith("["):
        try:
            names = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise UserError(f"--feat {text!r} is not a Python list of names; write it as \"['feat-a','feat-b']\"") from None
    else:
        names = text.replace(",", " ").split()
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise UserError(f"--feat {text!r} names no features; give at least one name from config.py")
    return list(names)


@dataclasses.dataclass(slots=True)
class TrainConfig:
    """What one training run does. ``None`` paths and features take the registry's (config.py's) values when
    the run starts (``resolved``)."""

    # data
    dataset: str = setting("seed0", "split dict <train_lst>/<dataset>.npy")
    folds: int | None = setting(None, "train fold0..fold{K-1}.npy (preprocess/mer2025_base.py --folds K) into "
                                "<run_dir>/fold{k} and report the mean ± std weighted F1 (instead of --dataset)", min=2)
    emo_rule: str = setting("MER", "class list key in config.EMO_RULE")
    feat: list[str] | None = setting(None, "features, e.g. \"['a','b']\" (default: those of --model_pretrain's checkpoint, "
                                     "else config.DEFAULT_FEATURES)", parse=parse_feature_list)
    feat_topn: int = setting(0, "instead of --feat: the N best features of each modality from a unimodal summary table "
                             "(default: 0, off)", min=0)
    topn_from: str | None = setting(None, "table written by eval_avg_performance.py (default: <save_root>/unimodal/unimodal_summary.csv)")
    topn_modalities: str = setting("AVT", "modalities for --feat_topn: letters of A, V, T")
    repeat: int = setting(1, "expert copies per feature (unimodal sweeps use 3, like a three-branch model)", min=1)
    manifests: list[str] = setting([], "feature manifests (features.yaml) to register besides config.py's features",
                                   parse=lambda text: [part for part in text.split(",") if part])
    train_lst: str | None = setting(None, "folder of split dicts (default: config.PATH_TO_TRAIN_LST)")
    cache_dir: str | None = setting(None, "packed feature cache; 'none' disables it (default: config.PATH_TO_CACHE)")
    cache_dtype: str = setting("float32", "storage type of the packed features (float16 halves memory; batches are float32 "
                               "on the device)", choices=("float32", "float16"))
    mmap: bool = setting(False, "memory-map the packed cache and gather batch rows from it instead of loading it whole (needs a cache)")
    allow_missing: bool = setting(False, "clips may lack some feature files: that expert is masked for that clip "
                                  "(default: a missing file is an error)")
    max_frames: int = setting(64, "frame-level features: longer clips are sampled uniformly down to this many frames", min=1)
    # model
    model: str = setting("moe", "registered model name; `--model NAME --help` lists its hyper-parameter flags")
    model_pretrain: str | None = setting(None, "initialise from a best.pth of a run with the same features and classes "
                                         "(without --feat: its features)")
    hparams: object = setting(None, "the model's settings (its config dataclass; None: its defaults)", flag=False)
    # optimisation
    seed: int = setting(0, "seed of the weights, the batch order and the dropout masks", min=0)
    lr: float = setting(6e-3, "peak learning rate (AdamW)", min=0, min_open=True)
    l2: float = setting(1e-3, "AdamW weight decay (0: none)", min=0)
    batch_size: int = setting(256, "clips per training step", min=1)
    epochs: int = setting(100, "most epochs to train", min=1)
    patience: int = setting(30, "stop after this many epochs without a better valid F1 (0: never)", min=0)
    scheduler: str = setting("cosine", "per-step cosine decay after warm-up", choices=("cosine", "none"))
    warmup_epochs: float = setting(2.0, "linear learning-rate warm-up, in epochs", min=0)
    val_weight: float = setting(0.1, f"weight of the valence MSE loss (0: off); {VALENCE_NOTE}", min=0)
    pseudo_weight: float = setting(1.0, "loss weight of training samples flagged 'pseudo' in the split dict "
                                   "(pseudo_label.py writes them)", min=0)
    label_smoothing: float = setting(0.0, "cross-entropy label smoothing", min=0, max=1, max_open=True)
    # device
    device: str = setting("auto", DEVICE_HELP, choices=DEVICES)
    gpu: int = setting(0, GPU_HELP, min=0)
    amp: str = setting("off", "mixed precision on CUDA (fp16 uses a GradScaler); anything but off on CPU is an error",
                       choices=("off", "bf16", "fp16"))
    compile: bool = setting(False, "torch.compile the model (pays a compile time at start)")
    threads: int = setting(0, THREADS_HELP, min=0, parse=parse_threads)
    num_workers: int = setting(0, "kept for compatibility; features are in memory, no workers are used", min=0)
    # output
    save_root: str | None = setting(None, "parent of run directories (default: config.PATH_TO_SAVED)")
    save_as_time: bool = setting(False, "name the run folder run-<timestamp> instead of run")
    run_dir: str | None = setting(None, "exact run directory (default: <save_root>/<dataset>/<model>/run); an existing "
                                  "folder must be empty or a run of train.py")
    overwrite: bool = setting(False, "replace a previous run in the run directory (default: keep it as "
                                     ".<run>.prev-<finish time> beside it)")
    save_model: bool = setting(False, "write best.pth")
    no_plots: bool = setting(False, "skip the PNG plots")
    no_progress: bool = setting(False, "no tqdm bar")

    def replace(self, **changes):
        """A copy with ``changes`` (unknown names are an error, as everywhere)."""
        return from_dict({**self.to_dict(), **changes}, "TrainConfig.replace")

    def to_dict(self):
        return to_dict(self)

    def resolved(self, registry):
        """A copy with every default that depends on the registry or the data filled in (paths, features,
        the model's settings), checked; what the run directory records."""
        return resolve_config(self, registry)

    @classmethod
    def load(cls, path):
        """The TrainConfig a YAML file describes (a run's config.yaml, a tune.py best.yaml, a --config file)."""
        from toolkit.io import read_yaml

        values = read_yaml(path, "config", "write 'key: value' lines of TrainConfig fields (train.py --help lists them)")
        if values is None:
            values = {}
        if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
            raise UserError(f"config {path} must map setting names to values, e.g. 'lr: 0.001'")
        return from_dict(values, f"config {path}")


TRAIN_FIELDS = {spec.name: spec for spec in fields(TrainConfig)}
# The --help sections: each starts at its first field and runs to the next one's.
SECTION_STARTS = {"dataset": "data", "model": "model", "seed": "optimisation", "device": "device", "save_root": "output"}


def sections():
    """[(title, [field names])] in declaration order."""
    out = []
    for name in TRAIN_FIELDS:
        if name in SECTION_STARTS:
            out.append((SECTION_STARTS[name], []))
        out[-1][1].append(name)
    return out


def model_settings(model):
    """(config class, {name: default}) of model ``model`` (models/hparams.yaml overrides included)."""
    from models import model_config_class, model_defaults

    return model_config_class(model), model_defaults(model)


def split_values(values, model):
    """Split one mapping of settings into (training fields, model fields). Model fields are read from a nested
    ``hparams`` mapping, or, in flat files written before the nesting, from keys that are not training fields."""
    config_class, _ = model_settings(model)
    model_names = {spec.name for spec in fields(config_class)}
    nested = values.get("hparams") or {}
    if not isinstance(nested, dict):
        raise UserError(f"hparams must map {model!r}'s settings to values, got {nested!r}")
    flat = {k: v for k, v in values.items() if k not in TRAIN_FIELDS and k not in DERIVED_KEYS}
    unknown = [k for k in flat if k not in model_names]
    if unknown:
        known = list(TRAIN_FIELDS) + sorted(model_names)
        hint = did_you_mean(unknown[0], known)
        raise UserError(f"unknown key {unknown[0]!r}; {hint + ' ' if hint else ''}keys are TrainConfig fields (train.py "
                        f"--help) and the settings of model {model!r} (under hparams:)")
    train = {k: v for k, v in values.items() if k in TRAIN_FIELDS and k != "hparams"}
    return train, {**flat, **nested}


def from_dict(values, where):
    """A TrainConfig from plain data (flat or with nested ``hparams``); every problem names ``where`` and the key."""
    model = values.get("model") or "moe"
    if not isinstance(model, str):
        raise UserError(f"{where}: model must be a registered model name, got {model!r}")
    try:
        train, hparams = split_values(values, model)
    except UserError as err:
        raise UserError(f"{where}: {err}") from None
    cfg = build(TrainConfig, {k: v for k, v in train.items()}, where)
    cfg.hparams = model_config(model, hparams, where)
    return cfg


def model_config(model, values, where):
    """Model ``model``'s config dataclass with ``values`` (a dict, an instance of its class, or None) over its defaults."""
    from models.hparams import make_config

    config_class, defaults = model_settings(model)
    if values is None:
        values = {}
    elif isinstance(values, config_class):
        values = dataclasses.asdict(values)
    elif dataclasses.is_dataclass(values):
        raise UserError(f"{where}: hparams is a {type(values).__name__}, but model {model!r} takes {config_class.__name__}")
    elif not isinstance(values, dict):
        raise UserError(f"{where}: hparams must be a mapping or a {config_class.__name__}, got {values!r}")
    return make_config(config_class, {**defaults, **values}, f"{where} [{model}]")


def merge_sources(*sources):
    """Later sources win, key by key; for each pair of ALTERNATIVES, a source that sets one side drops what an
    earlier source set on the other side (``--dataset seed0`` on the command line beats ``folds: 5`` in YAML)."""
    merged = {}
    for source in sources:
        for a, b in ALTERNATIVES:
            if a in source and b not in source:
                merged.pop(b, None)
            elif b in source and a not in source:
                merged.pop(a, None)
        hparams = {**(merged.get("hparams") or {}), **(source.get("hparams") or {})}
        merged.update(source)
        if hparams:
            merged["hparams"] = hparams
    return merged


def check_choices(cfg, where):
    """Rules between fields."""
    if cfg.folds is not None and cfg.dataset != TRAIN_FIELDS["dataset"].default:
        raise UserError(f"{where}: give either --folds {cfg.folds} (fold0..fold{cfg.folds - 1}.npy) or --dataset {cfg.dataset}, not both")
    bad = set(cfg.topn_modalities.upper()) - set("AVT")
    if bad or not cfg.topn_modalities:
        raise UserError(f"{where}: topn_modalities {cfg.topn_modalities!r} must be letters of A, V, T")


def resolve_config(cfg, registry):
    """See ``TrainConfig.resolved``."""
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"a run is described by an engine.TrainConfig, got {type(cfg).__name__}")
    where = "TrainConfig"
    model_config(cfg.model, cfg.hparams, where)  # an instance of another model's config class is refused
    checked = from_dict(cfg.to_dict(), where)
    check_choices(checked, where)
    registry.classes(checked.emo_rule)  # an unknown class list is refused before any loading
    checked.train_lst = checked.train_lst or registry.train_lst
    checked.cache_dir = checked.cache_dir or registry.cache_dir
    checked.save_root = checked.save_root or registry.save_root
    checked.topn_from = checked.topn_from or os.path.join(checked.save_root, "unimodal", "unimodal_summary.csv")
    checked.feat = resolve_features(checked, registry)
    return checked


def resolve_features(cfg, registry):
    from toolkit.io import resolve
    from toolkit.results import top_features

    if cfg.feat_topn:
        picked = top_features(resolve(cfg.topn_from), cfg.feat_topn, cfg.topn_modalities)
        if cfg.feat is not None and list(cfg.feat) != picked:  # a resolved config holds what the table picked
            raise UserError("TrainConfig: give either --feat or --feat_topn, not both")
        return picked
    if cfg.feat is not None:
        return list(cfg.feat)
    if cfg.model_pretrain:
        names, repeat = checkpoint_features(cfg.model_pretrain)
        if cfg.repeat == TRAIN_FIELDS["repeat"].default:
            cfg.repeat = repeat  # the checkpoint's expert copies, unless the run asks for others
        return names
    return list(registry.default_features)


def checkpoint_features(path):
    """(feature names, repeat) a best.pth was trained on (its expert keys are ``feat``, ``feat#2``, ...)."""
    from dataloader.feature_store import feature_of
    from toolkit.runs import load_checkpoint

    experts = list(load_checkpoint(path).get("feat_dims") or {})
    names = list(dict.fromkeys(feature_of(key) for key in experts))
    if not names:
        raise UserError(f"--model_pretrain {path} lists no features; pass --feat")
    return names, len(experts) // len(names)


def load_run_config(run_dir):
    """The TrainConfig a finished run recorded (config.yaml; runs written before it: args.yaml), or None when
    neither reads as one."""
    from toolkit.runs import ARGS_FILE, CONFIG_FILE, run_file

    path = run_file(run_dir, CONFIG_FILE)
    try:
        if os.path.exists(path):
            return TrainConfig.load(path)
        from toolkit.io import read_yaml

        values = read_yaml(run_file(run_dir, ARGS_FILE), "run settings", "retrain the run", missing_ok=True)
        if not isinstance(values, dict):
            return None
        return from_dict({k: v for k, v in values.items() if k not in DERIVED_KEYS + LEGACY_KEYS}, run_file(run_dir, ARGS_FILE))
    except UserError:
        return None
