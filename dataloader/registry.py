"""The feature registry: what ``config.py`` (and any data set's ``features.yaml`` manifest) registers, read in
one place into an object that scripts pass down. Nothing else reads ``config.py``, and nothing changes the
registry at run time: a caller that needs other features builds a registry of its own.

    registry = Registry.from_config()                       # config.py, plus the manifests it includes
    registry = registry.with_manifest("data/mine/features/features.yaml")
    specs = registry.lookup(["hubert-UTT", "clip-UTT"])     # FeatureSpecs; unknown names get "did you mean"
    Registry.from_dicts(video={"f-UTT": [12, "folder"]})    # for tests and benchmarks

A manifest is data, never code: a YAML file beside the feature folders (``check_feat_dim.py --manifest``
and ``extract.py`` write it)::

    features:
      hubert-UTT: {dim: 768, modality: audio, level: utt, folder: hubert-UTT}

with folders relative to the manifest. Registering a second data set never changes the first one's names:
a name registered twice is an error that names both sources.
"""
import dataclasses
import os
import runpy

from dataloader.feature_store import MODALITY_DICTS, parse_entry
from toolkit.errors import UserError, did_you_mean
from toolkit.io import PROJECT_ROOT, read_yaml, resolve
from toolkit.tables import MER_CLASSES

CONFIG_FILE = os.path.join(PROJECT_ROOT, "config.py")
CONFIG_VARIABLE = "MER_CONFIG"  # another file of config.py's form to read instead (one per data set, or a test's)
MANIFEST_NAME = "features.yaml"
MODALITIES = tuple(MODALITY_DICTS)  # video, audio, text
MODALITY_LETTERS = {"V": "video", "A": "audio", "T": "text"}
MANIFEST_KEYS = ("dim", "modality", "level", "folder", "columns", "pool")
KNOWN_SHOWN = 20  # known feature names listed after an unknown one
DEFAULT_PATHS = {"PATH_TO_TRAIN_LST": "train_lst", "PATH_TO_CACHE": "cache", "PATH_TO_SAVED": "saved"}


def relative_to(config_path):
    """How a relative path in the file at ``config_path`` is read: against that file's folder. The project's
    config.py keeps its paths as written (they are resolved against the project root, its folder, where used),
    so what runs record stays relative; another file (``$MER_CONFIG``) gets absolute paths, so its splits,
    cache and runs never land in the project's folders."""
    folder = os.path.dirname(os.path.abspath(config_path))
    if os.path.samefile(folder, PROJECT_ROOT):
        return lambda value: value
    return lambda value: os.path.join(folder, value) if isinstance(value, str) and not os.path.isabs(value) else value


def local_entries(entries, local):
    """A feature dict ``{name: [dim, folder, ...]}`` with its folders read by ``local`` (anything malformed is left
    as it is for the registry's checks to name)."""
    if not isinstance(entries, dict):
        return entries
    return {name: [entry[0], local(entry[1]), *entry[2:]] if isinstance(entry, (list, tuple)) and len(entry) >= 2 else entry
            for name, entry in entries.items()}


def unique_paths(paths):
    """``paths`` without repeats of one file, in order: a manifest included twice (the registration step run
    again appends its line again) is read once, not refused as registering its own names twice."""
    seen, unique = set(), []
    for path in paths:
        key = os.path.realpath(resolve(path)) if isinstance(path, (str, os.PathLike)) else id(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


@dataclasses.dataclass(frozen=True)
class Registry:
    """Registered features ({name: FeatureSpec}), where each came from, class lists and default paths."""

    features: dict
    sources: dict  # {name: "config.py" or a manifest path}
    emo_rules: dict
    default_features: tuple = ()
    train_lst: str = "train_lst"
    cache_dir: str = "cache"
    save_root: str = "saved"

    @classmethod
    def from_config(cls, path=None, manifests=()):
        """``config.py`` (default: $MER_CONFIG, else the project's), the manifests its ``FEATURE_MANIFESTS`` lists,
        then ``manifests``."""
        path = path or os.environ.get(CONFIG_VARIABLE) or CONFIG_FILE
        try:
            values = runpy.run_path(path)
        except (FileNotFoundError, IsADirectoryError):
            raise UserError(f"{path} does not exist or is no file; the project's config.py (or the file ${CONFIG_VARIABLE} "
                            "names) registers the features") from None
        except SyntaxError as err:
            raise UserError(f"{path} line {err.lineno}: {err.msg}; fix the Python syntax of the feature dicts") from None
        except Exception as err:  # noqa: BLE001 - any failure of the user's file is theirs to fix
            raise UserError(f"{path} fails when read ({type(err).__name__}: {err}); fix it") from None
        where, local = os.path.basename(path), relative_to(path)
        dicts = {m: local_entries(values.get(d, {}), local) for m, d in MODALITY_DICTS.items()}
        registry = cls.from_dicts(**dicts, emo_rules=values.get("EMO_RULE"), default_features=values.get("DEFAULT_FEATURES", ()),
                                  where=where, **{k: local(values.get(v, DEFAULT_PATHS[v])) for k, v in
                                                  (("train_lst", "PATH_TO_TRAIN_LST"), ("cache_dir", "PATH_TO_CACHE"),
                                                   ("save_root", "PATH_TO_SAVED"))})
        for manifest in unique_paths([*map(local, values.get("FEATURE_MANIFESTS", [])), *manifests]):
            registry = registry.with_manifest(manifest)
        return registry

    @classmethod
    def from_dicts(cls, video=None, audio=None, text=None, emo_rules=None, default_features=(), where="config.py", **paths):
        """A registry from ``{name: [dim, folder, options]}`` dicts per modality (the config.py format)."""
        emo_rules = dict(emo_rules or {"MER": list(MER_CLASSES)})
        features, sources = {}, {}
        for modality, entries in (("video", video), ("audio", audio), ("text", text)):
            for name, entry in (entries or {}).items():
                if name in features:
                    raise UserError(f"{where}: feature '{name}' is in two dicts ({features[name].modality}, {modality}); keep one")
                features[name] = parse_entry(name, entry, modality, f"{where} {MODALITY_DICTS[modality]}['{name}']")
                sources[name] = where
        return cls(features, sources, emo_rules, tuple(default_features), **paths)

    def with_manifest(self, path):
        """This registry plus the features of the manifest at ``path``; a name already registered is an error."""
        specs = read_manifest(path)
        clash = [name for name in specs if name in self.features]
        if clash:
            name = clash[0]
            raise UserError(f"{path}: feature '{name}' is already registered by {self.sources[name]} (folder "
                            f"{self.features[name].folder}); rename one of the two folders, so a data set never "
                            "re-points another's features")
        return dataclasses.replace(self, features={**self.features, **specs},
                                   sources={**self.sources, **{name: str(path) for name in specs}})

    def with_features(self, specs, source="caller"):
        """This registry plus ``specs`` (FeatureSpecs), e.g. a benchmark's variant of a feature."""
        return dataclasses.replace(self, features={**self.features, **{s.name: s for s in specs}},
                                   sources={**self.sources, **{s.name: source for s in specs}})

    def lookup(self, names):
        """FeatureSpecs for ``names``; an unknown name is a UserError with the closest known names first."""
        unknown = [n for n in names if n not in self.features]
        if unknown:
            known = sorted(self.features)
            more = f" and {len(known) - KNOWN_SHOWN} more" if len(known) > KNOWN_SHOWN else ""
            hint = did_you_mean(unknown[0], known, n=3)
            raise UserError(
                f"unknown feature {unknown[0]!r}{f' ({hint})' if hint else ''}: register it in config.py or a data set's "
                f"{MANIFEST_NAME} (python preprocess/check_feat_dim.py --root DIR --manifest writes one); "
                f"known: {', '.join(known[:KNOWN_SHOWN])}{more}")
        if len(set(names)) != len(names):
            raise UserError(f"feature list {list(names)} names a feature twice; list each once")
        return [self.features[n] for n in names]

    def classes(self, emo_rule):
        """The class list of ``emo_rule``; an unknown key names the known ones."""
        if emo_rule not in self.emo_rules:
            raise UserError(f"--emo_rule {emo_rule!r} is not in config.EMO_RULE; known: {', '.join(self.emo_rules)}")
        return list(self.emo_rules[emo_rule])


def write_manifest(root, entries, writer, keep_others=True):
    """Write ROOT/features.yaml with ``entries`` {name: {dim, modality, level, folder}}; ``keep_others``: the
    entries already there for other names stay (extract.py adds one feature at a time). Atomic; returns its path."""
    import yaml

    from toolkit.io import save_text

    path = os.path.join(root, MANIFEST_NAME)
    old = read_yaml(path, "feature manifest", "remove it and write it again", missing_ok=True) if keep_others else None
    old = old.get("features") if isinstance(old, dict) and isinstance(old.get("features"), dict) else {}
    merged = {**old, **entries}
    header = f"# feature manifest of the folders beside it (written by {writer}): name -> dim, modality, level, folder\n"
    save_text(path, header + yaml.safe_dump({"features": merged}, sort_keys=True, allow_unicode=False))
    return path


def read_manifest(path):
    """{name: FeatureSpec} of a ``features.yaml`` manifest (folders relative to it); every problem names the file."""
    path = resolve(path)
    values = read_yaml(path, "feature manifest", "write it with python preprocess/check_feat_dim.py --root DIR --manifest")
    entries = values.get("features") if isinstance(values, dict) else None
    if not isinstance(entries, dict):
        raise UserError(f"feature manifest {path} must hold 'features:' mapping names to {{dim, modality, level, folder}}")
    base = os.path.dirname(path)
    return {str(name): manifest_spec(path, base, str(name), entry) for name, entry in entries.items()}


def manifest_spec(path, base, name, entry):
    where = f"{path} features['{name}']"
    if not isinstance(entry, dict):
        raise UserError(f"{where} must map dim, modality, level and folder, got {entry!r}")
    unknown = [k for k in entry if k not in MANIFEST_KEYS]
    if unknown:
        hint = did_you_mean(unknown[0], MANIFEST_KEYS)
        raise UserError(f"{where}: unknown key {unknown[0]!r}; {hint + ' ' if hint else ''}keys: {', '.join(MANIFEST_KEYS)}")
    modality = entry.get("modality")
    if modality not in MODALITIES:
        raise UserError(f"{where}: modality must be one of {', '.join(MODALITIES)}, got {modality!r}; "
                        f"set it with check_feat_dim.py --modality '{name}=V' (A, V or T)")
    folder = entry.get("folder", name)
    if not isinstance(folder, str) or not folder:
        raise UserError(f"{where}: folder must be a folder name or path, got {folder!r}")
    options = {k: entry[k] for k in ("level", "columns", "pool") if entry.get(k) is not None}
    return parse_entry(name, [entry.get("dim"), os.path.join(base, folder), options], modality, where)

