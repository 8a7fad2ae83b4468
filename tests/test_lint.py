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


def test_tests_and_scripts_run_the_interpreter_they_are_given():
    """Child processes run ``sys.executable`` (tests) or ``$PYTHON`` (shell scripts), never whatever ``python``
    is first on PATH nor a virtualenv assumed at .venv: a conda environment or a CI layout runs them too."""
    import re

    found = []
    for folder, _, names in os.walk(os.path.join(REPO, "tests")):
        for name in (n for n in names if n.endswith(".py")):
            path = os.path.join(folder, name)
            for number, line in enumerate(open(path, encoding="utf-8"), 1):
                if re.search(r"[\"']python3?[\"']|[\"']\.venv[\"'], [\"']bin[\"']", line):
                    found.append(f"{os.path.relpath(path, REPO)}:{number}: {line.strip()}")
    scripts = []
    for folder, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("saved", "data")]
        scripts += [os.path.relpath(os.path.join(folder, n), REPO) for n in names if n.endswith(".sh")]
    assert "run_eval_unimodal.sh" in scripts
    for rel in scripts:
        for number, line in enumerate(open(os.path.join(REPO, rel), encoding="utf-8"), 1):
            if re.search(r"(^|[;&|(]\s*|exec\s+)python3?\b", line.split("#")[0]):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert found == []
