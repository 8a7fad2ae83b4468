"""preprocess/parse_vlm_answers.py on bad input: exit 2, one line naming the culprit, nothing changed."""
import csv
import errno
import json
import os

import numpy as np
import pytest

from preprocess import parse_vlm_answers as script
from tests.bad_inputs.helpers import assert_one_line_error, run_main, snapshot

GOOD = '{"label": "sad", "scores": {"sad": 0.8, "neutral": 0.2}}'


@pytest.fixture
def root(tmp_path):
    """answers/ with two good answers, and the outputs of an earlier run that must survive a failure."""
    answers = tmp_path / "answers"
    answers.mkdir()
    (answers / "clip_a.txt").write_text(GOOD, encoding="utf-8")
    (answers / "clip_b.json").write_text('{"label": "happy"}', encoding="utf-8")
    feat = tmp_path / "features" / "vlm-scores-UTT"
    feat.mkdir(parents=True)
    np.save(feat / "clip_a.npy", np.full(6, 1 / 6, np.float32))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "vlm.csv").write_text("name,label\nclip_a,sad\n")
    return tmp_path


def fails(root, capsys, argv, *culprits):
    """Run with ``argv``; assert the one-line error and that nothing under ``root`` changed."""
    before = snapshot(root)
    code, out, err = run_main(script.main, argv, capsys)
    line = assert_one_line_error(code, err, *culprits)
    assert snapshot(root) == before
    return line


def args(root, answers="answers", out="out/vlm.csv", as_feature=None, names=None, fill=None):
    """argv with the paths under ``root``."""
    argv = ["--answers", str(root / answers), "--out", str(root / out)]
    argv += ["--as_feature", str(root / as_feature)] if as_feature else []
    argv += ["--names", str(root / names)] if names else []
    return argv + (["--fill", fill] if fill else [])


def test_empty_answer_folder(root, capsys):
    (root / "empty").mkdir()
    fails(root, capsys, args(root, "empty"), "empty", "no <name>.txt or <name>.json files")


def test_unlistable_answer_folder(root, capsys, monkeypatch):
    real = os.listdir
    denied = str(root / "answers")

    def listdir(path="."):
        if str(path) == denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)
    monkeypatch.setattr(os, "listdir", listdir)  # chmod does not stop root, who runs some test machines
    fails(root, capsys, args(root), "cannot list answer folder", denied, "Permission denied")


def test_non_utf8_answer_file(root, capsys):
    (root / "answers" / "clip_c.txt").write_bytes('{"label": "伤心"}'.encode("gbk"))
    fails(root, capsys, args(root), "clip_c.txt", "not UTF-8", "re-save it as UTF-8")


def test_dangling_answer_file(root, capsys, tmp_path_factory):
    answers = tmp_path_factory.mktemp("dangling")  # outside root: a snapshot cannot read a dangling link
    (answers / "clip_a.txt").write_text(GOOD)
    os.symlink(answers / "nowhere.txt", answers / "clip_c.txt")
    fails(root, capsys, args(root, answers), "cannot read answer file", "clip_c.txt", "No such file")


def test_non_utf8_jsonl_names_the_line(root, capsys):
    lines = [json.dumps({"name": "a", "answer": GOOD}), json.dumps({"name": "b", "answer": '{"label": "伤心"}'}, ensure_ascii=False)]
    (root / "answers.jsonl").write_bytes("\n".join(lines).encode("gbk"))
    fails(root, capsys, args(root, "answers.jsonl"), "answers.jsonl", "not UTF-8", "line 2")


def test_non_utf8_csv(root, capsys):
    (root / "answers.csv").write_bytes("name,answer\nb,伤心\n".encode("gbk"))
    fails(root, capsys, args(root, "answers.csv"), "answers.csv", "not UTF-8")


def test_jsonl_of_deeply_nested_lines(root, capsys):
    (root / "deep.jsonl").write_text("[" * 100_000 + "\n" + '{"a":' * 50_000)
    fails(root, capsys, args(root, "deep.jsonl"), "deep.jsonl", "no line is a JSON object")


def test_out_is_a_folder(root, capsys):
    fails(root, capsys, args(root, "answers", "out"), "--out", "is a folder")


def test_out_under_a_file(root, capsys):
    fails(root, capsys, args(root, "answers", "out/vlm.csv/x.csv"), "--out", "vlm.csv/x.csv", "is a file, not a folder")


def test_out_would_overwrite_the_answers(root, capsys):
    with open(root / "answers.csv", "w", newline="") as f:
        csv.writer(f).writerows([["name", "answer"], ["clip_a", GOOD]])
    fails(root, capsys, args(root, "answers.csv", "answers.csv"), "--out", "would overwrite --answers")


def test_as_feature_is_a_file(root, capsys):
    fails(root, capsys, args(root, "answers", "out/vlm.csv", as_feature="out/vlm.csv"), "--as_feature", "is a file")


def test_as_feature_holding_other_files(root, capsys):
    fails(root, capsys, args(root, "answers", "out/vlm.csv", as_feature="answers"), "--as_feature", "clip_a.txt", "not a score vector")


def test_out_inside_as_feature(root, capsys):
    fails(root, capsys, args(root, "answers", "features/vlm-scores-UTT/vlm.csv", as_feature="features/vlm-scores-UTT"),
          "--out", "lies inside --as_feature")


def test_names_not_utf8(root, capsys):
    (root / "names.csv").write_bytes("name\n伤心\n".encode("gbk"))
    fails(root, capsys, args(root, "answers", "out/vlm.csv", names="names.csv"), "--names", "names.csv", "not UTF-8")


def test_names_with_a_nul_byte(root, capsys):
    (root / "names.csv").write_text("name\nclip_a\nbad\0name\n")
    fails(root, capsys, args(root, "answers", "out/vlm.csv", names="names.csv", as_feature="features/vlm-scores-UTT",
                             fill="uniform"), "--names", "line 3", "cannot name a clip file")


def test_only_non_finite_scores(root, capsys):
    (root / "inf").mkdir()
    (root / "inf" / "clip_a.txt").write_text('{"scores": {"sad": Infinity, "happy": 1}}')
    fails(root, capsys, args(root, "inf"), "no usable answer", "non_finite_score 1")
