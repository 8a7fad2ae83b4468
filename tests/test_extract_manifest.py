"""extract.py records what it wrote in the data set's features.yaml (modality and level it knows), which the
feature registry reads as it is: a data set registered as data, by the tool that made its features."""
import os

import pytest

import extract
from dataloader.registry import Registry, read_manifest
from tests.bad_inputs.helpers import run_main
from tests.feature_extraction.media import write_release

NAMES = ["s1", "s2", "s3"]


@pytest.fixture
def release(tmp_path):
    return write_release(str(tmp_path / "release"), NAMES)


def test_each_extraction_adds_its_folders_to_the_manifest(release, checkpoints, capsys):
    feats = os.path.join(release, "features")
    for argv in (["--modality", "audio", "--model", checkpoints["hubert"], "--level", "utt", "frm"],
                 ["--modality", "text", "--model", checkpoints["bert"]]):
        code, out, err = run_main(extract.main, ["--data", release, *argv, "--workers", "0", "--no_progress"], capsys)
        assert code == 0, err
        assert f"registered in {os.path.join(feats, 'features.yaml')}" in out
    specs = read_manifest(os.path.join(feats, "features.yaml"))
    assert {n: (s.modality, s.level, s.dim) for n, s in specs.items()} == {
        "hubert-UTT": ("audio", "utt", 16), "hubert-FRM": ("audio", "frm", 16), "bert-UTT": ("text", "utt", 16)}
    registry = Registry.from_dicts().with_manifest(os.path.join(feats, "features.yaml"))
    assert registry.lookup(["hubert-FRM"])[0].folder == os.path.join(feats, "hubert-FRM")
