"""One owner per shared format: the split file's keys, the run directory's file names, the level names and YAML
reading are each spelled in one module outside the tests."""
import os
import re

from tests.test_layers import project_modules

OWNERS = {'"train_info"': "toolkit/io.py", '"valid_info"': "toolkit/io.py", '"best.pth"': "toolkit/runs.py",
          '"args.yaml"': "toolkit/runs.py", '"summary.json"': "toolkit/runs.py", '"-FRM"': "toolkit/levels.py",
          "yaml.safe_load(": "toolkit/io.py"}


def test_each_format_literal_lives_in_one_module():
    found = {literal: [] for literal in OWNERS}
    for _, path in project_modules():
        text = open(path, encoding="utf-8").read()
        rel = os.path.relpath(path, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        for literal in OWNERS:
            if re.search(re.escape(literal), text):
                found[literal].append(rel.replace(os.sep, "/"))
    assert {literal: files for literal, files in found.items()} == {literal: [owner] for literal, owner in OWNERS.items()}


def test_no_library_module_imports_a_script():
    """stages/, engine/, inference/ and benchmarks/ configure runs with TrainConfig objects, never through train.py."""
    from tests.test_layers import imported_tops

    offenders = [(os.path.relpath(path), line) for top, path in project_modules()
                 if top in ("stages", "engine", "inference", "benchmarks", "dataloader", "models", "toolkit")
                 for line, name in imported_tops(path) if name == "train"]
    assert offenders == []
