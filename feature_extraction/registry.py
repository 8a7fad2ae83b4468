"""Extractor registry: ``extract.py --modality NAME`` builds the extractor registered under NAME, as models are
found by name in ``models``.

An extractor is one file in this package: a subclass of ``feature_extraction.base.Extractor`` decorated with
``@register_extractor("name")``. Its class attributes say what it is:

    modality  audio, video or text: the feature dictionary its folders belong in (config.py's FEAT_*_DICT)
    source    what it reads of a clip (``base.SOURCES``)
    summary   its line in ``extract.py --help``
    options   its flags, made with ``option`` (argparse's arguments); extract.py adds them to its parser.
              Extractors that share a flag share the Option object (e.g. ``encoders.ENCODER_OPTIONS``)

and its classmethod ``build(options, levels)`` makes it from the parsed flags. After building, the instance
says what it writes: ``extractor.features()`` → name, modality, level and width of each feature folder.

Every module of this package is imported on the first use of the registry, so a new file needs no other
edit: ``extract.py --help`` lists it, ``--modality name`` runs it, and the contract tests
(tests/feature_extraction/test_contract.py) check it."""
import argparse
import dataclasses

from feature_extraction.base import MODALITIES, SOURCES, Extractor
from toolkit.errors import UserError, did_you_mean, is_plain_name
from toolkit.plugins import import_submodules, register

EXTRACTORS = {}
_scanned = False


@dataclasses.dataclass(frozen=True, eq=False)
class Option:
    """One flag of extract.py: the arguments of argparse's ``add_argument``; ``needed``: the extractor cannot
    run without it (checked only when that extractor is chosen)."""

    flags: tuple
    kwargs: dict
    needed: bool = False

    @property
    def dest(self):
        return self.kwargs.get("dest") or self.flags[0].lstrip("-").replace("-", "_")


def option(*flags, needed=False, **kwargs):
    """An extractor's flag: ``option("--feature_set", default="eGeMAPSv02", help="...")``."""
    if not flags or not all(str(f).startswith("--") for f in flags) or not kwargs.get("help"):
        raise TypeError(f"option {flags}: give --flag names and a help line")
    return Option(tuple(flags), dict(kwargs), needed)


def _problems(cls):
    """What a class lacks to be a registered extractor (empty when nothing)."""
    problems = []
    if cls.modality not in MODALITIES:
        problems.append(f"modality {cls.modality!r} is not one of {', '.join(MODALITIES)}")
    if cls.source not in SOURCES:
        problems.append(f"source {cls.source!r} is not one of {', '.join(SOURCES)}")
    if not cls.summary or "\n" in cls.summary:
        problems.append("it needs a one-line summary")
    if not all(isinstance(opt, Option) for opt in cls.options):
        problems.append("its options must be made with feature_extraction.registry.option")
    if cls.build.__func__ is Extractor.build.__func__:
        problems.append("it needs a classmethod build(options, levels)")
    return problems


def register_extractor(name):
    """Class decorator: register an Extractor subclass under ``name`` (the value of ``extract.py --modality``)."""

    def add(cls):
        if not (isinstance(cls, type) and issubclass(cls, Extractor)):
            raise TypeError(f"extractor {name!r}: {cls!r} is not a subclass of feature_extraction.base.Extractor")
        problems = ([] if is_plain_name(name) else [f"{name!r} is not a plain name"]) + _problems(cls)
        if problems:
            raise TypeError(f"extractor {name!r} ({cls.__qualname__}): {'; '.join(problems)}")
        cls.registered_name = name
        return register(EXTRACTORS, name, cls, "extractor")

    return add


def _import_all():
    """Import every module of the package once, so each ``@register_extractor`` has run (no hand-kept list)."""
    global _scanned
    if _scanned:
        return
    import feature_extraction

    import_submodules("feature_extraction", feature_extraction.__path__)
    _scanned = True


def known_extractors():
    _import_all()
    return sorted(EXTRACTORS)


def extractor_class(name):
    if name not in known_extractors():
        hint = did_you_mean(name, EXTRACTORS)
        raise UserError(f"unknown extractor {name!r}; registered: {', '.join(known_extractors())}" + (f"; {hint}" if hint else ""))
    return EXTRACTORS[name]


def describe_extractors():
    """One line per registered extractor (name, modality, summary) for ``extract.py --help``."""
    width = max(len(name) for name in known_extractors())
    return "\n".join(f"  {name:<{width}}  {EXTRACTORS[name].modality:<5}  {EXTRACTORS[name].summary}"
                     for name in known_extractors())


def option_users():
    """{dest: (Option, [extractor names])} over the registry, in the order extractors and options come."""
    users = {}
    for name in known_extractors():
        for opt in EXTRACTORS[name].options:
            first, names = users.setdefault(opt.dest, (opt, []))
            if first is not opt:
                raise TypeError(f"extractors {names[0]!r} and {name!r} both declare {opt.flags[0]} with their own "
                                f"Option; declare it once and share the object")
            names.append(name)
    return users


def add_options(parser):
    """Every registered extractor's flags, each once, in a group named after the extractors that take it."""
    groups = {}
    for opt, names in option_users().values():
        title = f"options of --modality {', '.join(names)}"
        if title not in groups:
            groups[title] = parser.add_argument_group(title)
        groups[title].add_argument(*opt.flags, **opt.kwargs)


def extractor_options(name, **values):
    """Extractor ``name``'s options at their defaults with ``values`` over them: how a Python caller builds
    an extractor without a command line (``build_extractor(name, extractor_options(name, model=path), levels)``)."""
    defaults = {opt.dest: opt.kwargs.get("default") for opt in extractor_class(name).options}
    unknown = sorted(set(values) - set(defaults) - {"name"})
    if unknown:
        raise TypeError(f"extractor {name!r} has no option {unknown[0]!r}; its options: {', '.join(defaults)}")
    return argparse.Namespace(**{"name": None, **defaults, **values})


def check_needed(name, options):
    """Refuse ``options`` that lack a flag extractor ``name`` cannot run without; return its class."""
    cls = extractor_class(name)
    for opt in cls.options:
        if opt.needed and getattr(options, opt.dest, None) in (None, ""):
            raise UserError(f"--modality {name} needs {opt.flags[0]}: {opt.kwargs['help']}")
    return cls


def build_extractor(name, options, levels):
    """The extractor registered as ``name``, built from ``options`` (parsed flags: an argparse Namespace) for
    ``levels``; ``options.name``, where given, names its feature folders."""
    cls = check_needed(name, options)
    extractor = cls.build(options, tuple(levels))
    if getattr(options, "name", None):
        extractor.name = options.name
    if not is_plain_name(extractor.name):
        raise UserError(f"feature name {extractor.name!r} cannot name a folder (no /, \\, leading dot or control "
                        f"character); choose one with --name")
    return extractor
