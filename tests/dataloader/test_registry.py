"""The feature registry: config.py read in one place into an object that is passed down, data sets registered as
data (features.yaml manifests), never as code built from names, and never re-pointing another data set's names."""
import ast
import dataclasses
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

from dataloader.registry import Registry, read_manifest
from preprocess import check_feat_dim
from tests.bad_inputs.helpers import assert_one_line_error, run_main
from tests.conftest import REPO
from tests.test_layers import project_modules
from toolkit.errors import UserError


def feature_tree(root, names, dim=4, clips=3):
    for name in names:
        folder = os.path.join(root, name)
        os.makedirs(folder)
        for i in range(clips):
            np.save(os.path.join(folder, f"c{i}.npy"), np.full(dim, i, np.float32))
    return str(root)


def test_no_module_imports_config_and_none_changes_a_registry():
    importers = []
    for top, path in project_modules():
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module] if isinstance(node, ast.ImportFrom) else []
            if "config" in names and top != "config":
                importers.append(os.path.relpath(path, REPO))
    assert importers == []
    registry = Registry.from_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        registry.features = {}  # frozen: a caller that wants other features builds its own registry


def test_a_second_data_set_never_repoints_the_first(tmp_path):
    demo = Registry.from_config()
    root = feature_tree(tmp_path / "mine", ["demo-clip-UTT", "mine-hubert-UTT"])
    code = check_feat_dim.main(["--root", root, "--manifest", "--modality", "*clip*=V", "*hubert*=A"])
    assert code == 0
    manifest = os.path.join(root, "features.yaml")
    with pytest.raises(UserError, match="demo-clip-UTT.*already registered by config.py"):
        demo.with_manifest(manifest)
    os.rename(os.path.join(root, "demo-clip-UTT"), os.path.join(root, "mine-clip-UTT"))
    os.remove(manifest)
    check_feat_dim.main(["--root", root, "--manifest", "--modality", "*clip*=V", "*hubert*=A"])
    both = demo.with_manifest(manifest)
    assert both.features["demo-clip-UTT"] == demo.features["demo-clip-UTT"]  # unchanged
    assert both.features["mine-clip-UTT"].folder == os.path.join(root, "mine-clip-UTT")
    assert (both.features["mine-clip-UTT"].modality, both.features["mine-hubert-UTT"].modality) == ("video", "audio")


def test_the_modality_is_said_never_guessed(tmp_path, capsys):
    root = feature_tree(tmp_path / "views", ["hv-vlm-UTT", "view3-UTT", "x-hubert-UTT"])
    code, _, err = run_main(check_feat_dim.main, ["--root", root, "--manifest"], capsys)
    assert_one_line_error(code, err, "hv-vlm-UTT", "view3-UTT", "--modality")
    assert not os.path.exists(os.path.join(root, "features.yaml"))
    assert check_feat_dim.main(["--root", root, "--manifest", "--modality", "*=V", "x-hubert-UTT=A"]) == 0
    specs = read_manifest(os.path.join(root, "features.yaml"))
    assert {n: s.modality for n, s in specs.items()} == {"hv-vlm-UTT": "video", "view3-UTT": "video", "x-hubert-UTT": "audio"}
    assert check_feat_dim.main(["--root", root, "--manifest"]) == 0  # the manifest already says it


@pytest.mark.parametrize("evil", ["z\nimport os; os.system('touch MARK')\n#-UTT", "z\rimport os; os.system('touch MARK')\r#-UTT"])
def test_a_folder_name_never_becomes_code(tmp_path, evil):
    repo = tmp_path / "repo"
    os.makedirs(repo)
    shutil.copy(os.path.join(REPO, "config.py"), repo / "config.py")
    root = feature_tree(tmp_path / "feats", [evil, "q'u\"o;te..x-UTT"])
    proc = subprocess.run([sys.executable, "preprocess/check_feat_dim.py", "--root", root, "--emit-config", "--modality", "*=V"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "control character" in proc.stdout + proc.stderr
    assert not os.path.exists(os.path.join(root, "features.yaml"))
    shutil.rmtree(os.path.join(root, evil))
    proc = subprocess.run([sys.executable, "preprocess/check_feat_dim.py", "--root", root, "--emit-config", "--modality", "*=V"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    code_lines = [line for line in proc.stdout.splitlines() if line.strip() and not line.startswith("#")]
    assert len(code_lines) == 1 and code_lines[0].startswith("FEATURE_MANIFESTS = ")
    with open(repo / "config.py", "a", encoding="utf-8") as f:
        f.write(proc.stdout)
    registry = Registry.from_config(str(repo / "config.py"))
    assert "q'u\"o;te..x-UTT" in registry.features and not os.path.exists(tmp_path / "MARK") and not os.path.exists("MARK")


def test_a_printed_snippet_escapes_names(tmp_path, capsys):
    root = feature_tree(tmp_path / "feats", ["ok-UTT"])
    os.makedirs(os.path.join(root, "bad\nname-UTT"))
    np.save(os.path.join(root, "bad\nname-UTT", "c0.npy"), np.zeros(3, np.float32))
    code, out, _ = run_main(check_feat_dim.main, ["--root", root, "--emit-config", "--modality", "*=V"], capsys)
    assert code == 2
    assert all(line.startswith("#") or not line.strip() for line in out.splitlines())  # every line stays a comment


def test_bad_manifests_are_one_line(tmp_path):
    path = tmp_path / "features.yaml"
    for content, match in [("features: [a]\n", "must hold 'features:'"),
                           ("features: {a-UTT: {dim: 3, modality: smell, folder: a}}\n", "modality must be one of"),
                           ("features: {a-UTT: {dim: 3, modality: audio, folder: a, colour: red}}\n", "unknown key 'colour'"),
                           ("features: {a-UTT: {dim: -3, modality: audio, folder: a}}\n", "dim -3"),
                           ("!!python/object:os.system {}\n", "not valid YAML")]:
        path.write_text(content)
        with pytest.raises(UserError, match=match):
            read_manifest(str(path))
    path.write_text(yaml.safe_dump({"features": {"a-FRM": {"dim": 3, "modality": "video", "level": "frm", "folder": "a"}}}))
    spec = read_manifest(str(path))["a-FRM"]
    assert (spec.dim, spec.level, spec.folder) == (3, "frm", os.path.join(str(tmp_path), "a"))


def test_another_config_file_reads_its_relative_paths_against_its_own_folder(tmp_path):
    """One config file per data set (MER_CONFIG): its splits, cache, runs and folders stay beside it, never in the
    project's train_lst/ or saved/; the project's own config.py keeps its paths relative."""
    feature_tree(tmp_path / "features", ["lab-a-UTT"])
    manifest_root = feature_tree(tmp_path / "more", ["lab-b-UTT"])
    check_feat_dim.main(["--root", manifest_root, "--manifest", "--modality", "lab-b-UTT=A"])
    (tmp_path / "mine.py").write_text('FEAT_VIDEO_DICT = {"lab-a-UTT": [4, "features/lab-a-UTT"]}\n'
                                      'FEATURE_MANIFESTS = ["more/features.yaml"]\nPATH_TO_TRAIN_LST = "splits"\n')
    registry = Registry.from_config(str(tmp_path / "mine.py"))
    assert registry.features["lab-a-UTT"].folder == str(tmp_path / "features" / "lab-a-UTT")
    assert registry.features["lab-b-UTT"].folder == str(tmp_path / "more" / "lab-b-UTT")
    assert (registry.train_lst, registry.cache_dir, registry.save_root) == tuple(
        str(tmp_path / name) for name in ("splits", "cache", "saved"))
    assert Registry.from_config().train_lst == "train_lst"


def test_the_registration_step_run_twice_registers_once(tmp_path, capsys):
    """--emit-config >> config.py run again appends the same include line again: the manifest is read once."""
    root = feature_tree(tmp_path / "feats", ["twice-UTT"])
    code, out, _ = run_main(check_feat_dim.main, ["--root", root, "--emit-config", "--modality", "*=A"], capsys)
    assert code == 0
    config = tmp_path / "config.py"
    config.write_text(out + out)
    assert [line.startswith("FEATURE_MANIFESTS = ") for line in config.read_text().splitlines()].count(True) == 2
    registry = Registry.from_config(str(config), manifests=[os.path.join(root, "features.yaml")])
    assert registry.features["twice-UTT"].modality == "audio"
