"""preprocess/make_demo_clips.py: bad flags and a file given as --out are one error line; nothing is written."""
import os

import pytest

from preprocess import make_demo_clips as script
from tests.bad_inputs.helpers import assert_one_line_error, run_main, snapshot


@pytest.mark.parametrize("argv, culprits", [
    (["--size", "160by120"], ["--size", "160by120", "WIDTHxHEIGHT"]),
    (["--size", "161x121"], ["--size", "161x121", "even"]),
    (["--size", "160x40"], ["--size", "height >= 72"]),
    (["--clips", "3"], ["--clips", "3", "[8, 10000]"]),
    (["--fps", "0"], ["--fps", "0"]),
])
def test_bad_flags(tmp_path, capsys, argv, culprits):
    out = tmp_path / "clips"
    code, _, err = run_main(script.main, ["--out", str(out), *argv], capsys)
    assert_one_line_error(code, err, *culprits)
    assert not os.path.exists(out)


def test_out_is_a_file(tmp_path, capsys):
    target = tmp_path / "clips"
    target.write_text("keep me")
    before = snapshot(tmp_path)
    code, _, err = run_main(script.main, ["--out", str(target), "--clips", "8"], capsys)
    assert_one_line_error(code, err, "--out", str(target), "is a file")
    assert snapshot(tmp_path) == before
