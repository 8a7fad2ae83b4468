"""The tree passes ruff (ruff.toml: pyflakes, bugbear, complexity cap) and no function of the toolkit is longer
than a screen."""
import ast
import os
import subprocess
import sys

from tests.conftest import REPO
from tests.test_layers import project_modules

MAX_FUNCTION_LINES = 60


def test_ruff_passes():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", REPO], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_function_fits_on_a_screen():
    long = []
    for _, path in project_modules():
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                long.append(f"{os.path.relpath(path, REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []
