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
