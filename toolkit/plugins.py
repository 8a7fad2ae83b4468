"""Registries that fill themselves: a package's modules register by decorator when imported."""
import importlib
import pkgutil


def import_submodules(package_name, path):
    """Import every module of a package (its ``__path__``), so that each registers itself by decorator: the
    model and extractor registries need no hand-kept list of files."""
    for info in pkgutil.iter_modules(path):
        importlib.import_module(f"{package_name}.{info.name}")


def register(registry, name, cls, what):
    """Put ``cls`` in ``registry`` under ``name``; a name taken by another class is an error (the same class
    registering again, as on a module reload, is not)."""
    previous = registry.get(name)
    if previous is not None and (previous.__module__, previous.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"{what} name {name!r} is taken by {previous.__module__}.{previous.__qualname__}")
    registry[name] = cls
    return cls
