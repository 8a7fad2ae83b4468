"""extract.py flags that name places or layers: one line naming the flag, exit 2, nothing created anywhere."""
import os

import pytest

import extract
from tests.bad_inputs.helpers import assert_one_line_error, run_main, snapshot
from tests.feature_extraction.media import write_release


def tree(root):
    """Every file (with its content hash) and every folder under ``root``."""
    folders = sorted(os.path.relpath(folder, root) for folder, _, _ in os.walk(root))
    return snapshot(root), folders


@pytest.fixture
def release(tmp_path):
    return write_release(str(tmp_path / "deep" / "down" / "release"), ["c1"])


def refused(argv, tmp_path, capsys, *culprits):
    before = tree(tmp_path)
    code, _, err = run_main(extract.main, argv + ["--workers", "0", "--no_progress"], capsys)
    line = assert_one_line_error(code, err, *culprits)
    assert tree(tmp_path) == before
    return line


def test_out_at_an_existing_file(release, tmp_path, capsys):
    target = tmp_path / "features.txt"
    target.write_text("not a folder")
    refused(["--data", release, "--modality", "opensmile", "--out", str(target)], tmp_path, capsys, "--out", str(target))


def test_the_default_out_at_an_existing_file(release, tmp_path, capsys):
    with open(os.path.join(release, "features"), "w") as f:
        f.write("not a folder")
    refused(["--data", release, "--modality", "opensmile"], tmp_path, capsys, "--out", os.path.join(release, "features"))


@pytest.mark.parametrize("name", ["../../esc", "a/b", "a\\b", "..", ".hidden", "two\nlines", ""])
def test_a_name_that_is_not_a_plain_folder_stem(name, release, tmp_path, capsys):
    refused(["--data", release, "--modality", "opensmile", "--name", name], tmp_path, capsys, "--name")


@pytest.fixture(scope="module")
def four_layer_hubert(tmp_path_factory):
    """A tiny HuBERT deep enough for the default last4, so an ignored --layers would go unnoticed."""
    from preprocess.make_demo_encoders import build_encoder

    return build_encoder("hubert", str(tmp_path_factory.mktemp("encoders") / "hubert4"), hidden=16, layers=4)


@pytest.mark.parametrize("layers", ["", " ", "top", "1,,2"])
def test_layers_that_say_no_layer(layers, release, four_layer_hubert, tmp_path, capsys):
    refused(["--data", release, "--modality", "audio", "--model", four_layer_hubert, "--layers", layers],
            tmp_path, capsys, "--layers", repr(layers))
