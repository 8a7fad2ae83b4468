"""Registries that fill themselves: a package's modules register by decorator when imported."""
import importlib
import pkgutil


def import_submodules(package_name, path):
    """Import every module of a package (its ``__path__``), so that each registers itself by decorator: the
    model and extractor registries need no hand-kept list of files."""
    for info in pkgutil.iter_modules(path):
        importlib.import_module(f"{package_name}.{info.name}")
