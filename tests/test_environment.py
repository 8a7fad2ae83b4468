import os
import re

import yaml

from tests.conftest import REPO


def test_requirements_and_environment_pin_the_same_packages():
    with open(os.path.join(REPO, "requirements.txt")) as f:
        pins = {line.split("#")[0].strip() for line in f if line.split("#")[0].strip()}
    with open(os.path.join(REPO, "environment.yml")) as f:
        env = yaml.safe_load(f)
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip_section) == pins
    assert "torch==2.13.0" in pins
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.]+", p) for p in pins)


def test_ci_runs_the_readme_test_command():
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    with open(os.path.join(REPO, ".ci", "run")) as f:
        ci = f.read()
    commands = re.findall(r"^python3 -m venv .*$", readme, flags=re.M)
    assert len(commands) == 2 and commands[0].endswith("bash run_demo.sh")
    assert commands[1] in ci
