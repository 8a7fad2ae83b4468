"""Layers import only downward: toolkit (ground) → dataloader → models → engine → inference → stages (the
scripts, preprocess/, stages/, feature_extraction/) → benchmarks. A module may import its own layer and the ones below."""
import ast
import os

from tests.conftest import REPO

LAYERS = [
    ["config", "toolkit"],
    ["dataloader"],
    ["models"],
    ["engine"],
    ["inference"],
    ["stages", "preprocess", "train", "predict", "test", "tune", "ensemble", "evaluate", "eval_avg_performance", "pseudo_label", "describe",
     "select_features",
     "feature_extraction", "extract"],
    ["benchmarks"],
]
LAYER_OF = {name: rank for rank, names in enumerate(LAYERS) for name in names}
SKIP = {".venv", "tests", "data", "saved", "cache", "train_lst", ".git"}


def project_modules():
    """(top-level name, path) of every Python file of the project."""
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP and not d.startswith(".")]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, REPO)
                yield rel.split(os.sep)[0].removesuffix(".py"), path


def imported_tops(path):
    """Top-level names of every import in the file (function-level imports included)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def test_every_top_level_name_has_a_layer():
    unknown = sorted({top for top, _ in project_modules() if top not in LAYER_OF})
    assert unknown == [], f"give these a layer in tests/test_layers.py: {unknown}"


def test_no_import_runs_upward():
    upward = []
    for top, path in project_modules():
        for line, imported in imported_tops(path):
            if imported in LAYER_OF and LAYER_OF[imported] > LAYER_OF[top]:
                upward.append(f"{os.path.relpath(path, REPO)}:{line} imports {imported}")
    assert upward == []


def test_the_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from inference.predictor import load_run\n")
    assert list(imported_tops(bad)) == [(2, "inference")] and LAYER_OF["inference"] > LAYER_OF["toolkit"]
