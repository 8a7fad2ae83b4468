"""preprocess/parse_vlm_answers.py: inputs, outputs, summary, feature folder and the one-line errors."""
import ast
import builtins
import csv
import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from preprocess import parse_vlm_answers as script
from tests.bad_inputs.helpers import assert_one_line_error, run_main, snapshot
from toolkit.tables import MER_CLASSES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "preprocess", "parse_vlm_answers.py")
CLASSES = list(MER_CLASSES)


def zh_answer(label, scores):
    body = {"推理过程": "综合判断{情绪}", "情绪": dict(zip(CLASSES, scores)), "label": label,
            "贡献度": {"视频": 0.5, "音频": 0.3, "字幕": 0.2}}
    return "```json\n" + json.dumps(body, ensure_ascii=False, indent=2) + "\n```"


GOOD = {
    "clip_a": zh_answer("sad", [0.1, 0.1, 0.1, 0.4, 0.2, 0.1]),
    "clip_b": "分析如下：" + zh_answer("Happiness", [1, 0, 6, 0, 1, 0]) + "\n以上。",
    "clip_c": '{"scores": {"neutral": 0.7, "worried": 0.3}, "reasoning": "flat", "contribution": {"video": 1}}',
}
BAD = {"clip_d": zh_answer("sad", [0.1] * 6)[:60], "clip_e": "", "clip_f": zh_answer("contempt", [0.2] * 6), "clip_g": "no idea"}
ANSWERS = {**GOOD, **BAD}


def write_folder(root):
    folder = root / "answers"
    folder.mkdir()
    for i, (name, text) in enumerate(ANSWERS.items()):
        (folder / (name + (".txt" if i % 2 else ".json"))).write_text(text, encoding="utf-8")
    (folder / "notes.md").write_text("not an answer")
    return str(folder)


def run(tmp_path, answers, *extra):
    out = str(tmp_path / "out" / "vlm.csv")
    summary = script.main(["--answers", answers, "--out", out, *extra])
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return out, rows, summary


def check_table(rows):
    assert rows[0] == ["name", "label"] + [f"score_{c}" for c in CLASSES]
    table = {r[0]: r for r in rows[1:]}
    assert sorted(table) == ["clip_a", "clip_b", "clip_c"]
    assert [table[n][1] for n in ("clip_a", "clip_b", "clip_c")] == ["sad", "happy", "neutral"]
    np.testing.assert_allclose([float(x) for x in table["clip_b"][2:]], [0.125, 0, 0.75, 0, 0.125, 0])
    for r in rows[1:]:
        assert sum(float(x) for x in r[2:]) == pytest.approx(1, abs=1e-5)


def test_folder_input_table_and_summary(tmp_path, capsys):
    out, rows, summary = run(tmp_path, write_folder(tmp_path))
    check_table(rows)
    with open(os.path.join(os.path.dirname(out), "vlm.summary.json"), encoding="utf-8") as f:
        saved = json.load(f)
    assert saved["read"] == 7 and saved["parsed"] == 3
    assert saved["skipped"] == {"truncated": 1, "empty": 1, "out_of_class_label": 1, "unparseable": 1}
    assert saved["skipped_names"]["out_of_class_label"] == ["clip_f"]
    assert saved["label_distribution"] == {"neutral": 1, "angry": 0, "happy": 1, "sad": 1, "worried": 0, "surprise": 0}
    assert saved["repairs"]["label_from_scores"] == 1 and saved["mean_contribution"]["video"] == pytest.approx(2 / 3, abs=1e-3)
    printed = capsys.readouterr().out
    assert "parsed 3 of 7 clips" in printed and "truncated" in printed and "clip_d" in printed


def test_jsonl_input_with_paths_duplicates_and_bad_lines(tmp_path):
    path = tmp_path / "answers.jsonl"
    lines = [json.dumps({"name": f"videos/{n}.mp4", "answer": t}, ensure_ascii=False) for n, t in ANSWERS.items()]
    lines += ['{"name": "clip_a", "answer": ""}', '{"name": "clip_x", "answ', "",
              json.dumps({"name": "clip_h", "answer": {"label": "惊讶"}}, ensure_ascii=False)]
    path.write_text("\n".join(lines), encoding="utf-8")
    _, rows, summary = run(tmp_path, str(path))
    assert [r[0] for r in rows[1:]] == ["clip_a", "clip_b", "clip_c", "clip_h"] and rows[-1][1] == "surprise"
    assert summary["read"] == 10 and summary["duplicates"] == 1
    assert summary["skipped"]["unreadable_record"] == 1 and summary["parsed"] == 4


def test_csv_input(tmp_path):
    path = tmp_path / "answers.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "answer"])
        writer.writerows((n + ".mp4", t) for n, t in ANSWERS.items())
    _, rows, summary = run(tmp_path, str(path))
    check_table(rows)
    assert summary["parsed"] == 3 and sum(summary["skipped"].values()) == 4


def test_as_feature_and_names(tmp_path, capsys):
    names = tmp_path / "names.csv"
    names.write_text("name,discrete\n" + "".join(f"{n}.mp4,sad\n" for n in ["clip_a", "clip_b", "clip_d", "clip_z"]))
    feat = tmp_path / "features" / "vlm-scores-UTT"
    feat.mkdir(parents=True)
    np.save(feat / "clip_d.npy", np.zeros(6, np.float32))  # left by an earlier run
    answers = write_folder(tmp_path)
    _, rows, summary = run(tmp_path, answers, "--as_feature", str(feat), "--names", str(names))
    assert [r[0] for r in rows[1:]] == ["clip_a", "clip_b"]
    assert summary["skipped"] == {"truncated": 1, "no_answer": 1} and summary["not_in_names"] == 4
    assert sorted(os.listdir(feat)) == ["clip_a.npy", "clip_b.npy"]
    vec = np.load(feat / "clip_b.npy")
    assert vec.dtype == np.float32 and vec.shape == (6,) and vec[2] == pytest.approx(0.75)
    missing = tmp_path / "features" / "vlm-scores-UTT.missing.txt"
    assert missing.read_text().split() == ["clip_d", "clip_z"]
    printed = capsys.readouterr().out
    assert "2 clips have no usable answer" in printed
    (entry,) = [line for line in printed.splitlines() if line.strip().startswith("'vlm-scores-UTT'")]
    # the line to paste into a FEAT_*_DICT of config.py: a Python entry (name and folder through repr)
    assert ast.literal_eval("{" + entry.strip().rstrip(",") + "}") == {"vlm-scores-UTT": [6, feat.as_posix()]}

    run(tmp_path, answers, "--as_feature", str(feat), "--names", str(names), "--fill", "uniform")
    assert sorted(os.listdir(feat)) == ["clip_a.npy", "clip_b.npy", "clip_d.npy", "clip_z.npy"]
    np.testing.assert_allclose(np.load(feat / "clip_z.npy"), np.full(6, 1 / 6, np.float32))
    assert missing.read_text().split() == ["clip_d", "clip_z"]  # which vectors are fills


def test_config_entry_is_relative_inside_the_project():
    assert script.config_path(os.path.join(REPO, "data", "demo", "features", "vlm-scores-UTT")) == "data/demo/features/vlm-scores-UTT"


@pytest.mark.parametrize("setup,message", [
    (lambda d: None, "no <name>.txt or <name>.json files"),
    (lambda d: (d / "a.txt").write_text("sorry, I cannot help"), "no usable answer among the 1"),
])
def test_bad_input_is_one_line_error_and_writes_nothing(tmp_path, setup, message):
    folder = tmp_path / "answers"
    folder.mkdir()
    setup(folder)
    out = tmp_path / "out" / "vlm.csv"
    proc = subprocess.run([sys.executable, SCRIPT, "--answers", str(folder), "--out", str(out),
                           "--as_feature", str(tmp_path / "feat")], capture_output=True, text=True, cwd=str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and message in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "feat").exists()


def test_missing_answers_path_and_bad_options(tmp_path):
    from toolkit.errors import UserError
    with pytest.raises(UserError, match="not found"):
        script.main.__wrapped__(["--answers", str(tmp_path / "nope"), "--out", str(tmp_path / "v.csv")])
    with pytest.raises(UserError, match="--fill uniform only applies"):
        script.main.__wrapped__(["--answers", str(tmp_path), "--out", str(tmp_path / "v.csv"), "--fill", "uniform"])
    with pytest.raises(UserError, match="EMO_RULE"):
        script.main.__wrapped__(["--answers", str(tmp_path), "--out", str(tmp_path / "v.csv"), "--emo_rule", "IEMOCAP"])
    bad_csv = tmp_path / "answers.csv"
    bad_csv.write_text("name,text\na,{}\n")
    with pytest.raises(UserError, match="columns 'name' and 'answer'"):
        script.main.__wrapped__(["--answers", str(bad_csv), "--out", str(tmp_path / "v.csv")])


# ----------------------------------------------------------------------------------------------------
# All outputs or none: a write failing midway leaves the previous outputs byte-identical
# ----------------------------------------------------------------------------------------------------
def full_disk_after(n_writes):
    """An ``open`` that fails with ENOSPC on the write-mode open after ``n_writes`` successful ones."""
    count = [0]

    def fake_open(path, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax"):
            if count[0] >= n_writes:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            count[0] += 1
        return builtins.open(path, mode, *args, **kwargs)
    return fake_open


def as_feature_argv(tmp_path):
    names = tmp_path / "names.csv"
    names.write_text("name\n" + "".join(f"{n}\n" for n in ["clip_a", "clip_b", "clip_c", "clip_d", "clip_z"]))
    argv = ["--answers", str(tmp_path / "answers"), "--out", str(tmp_path / "out" / "vlm.csv"),
            "--as_feature", str(tmp_path / "features" / "vlm-scores-UTT"), "--names", str(names)]
    return argv


# writes: vlm.csv, 3 vectors, the missing list, the summary -> fail at each of the 6
@pytest.mark.parametrize("n_writes", range(6))
def test_full_disk_midway_leaves_previous_outputs_intact(tmp_path, capsys, monkeypatch, n_writes):
    write_folder(tmp_path)
    argv = as_feature_argv(tmp_path)
    assert run_main(script.main, argv, capsys)[0] == 0  # the previous outputs
    (tmp_path / "answers" / "clip_c.json").write_text('{"label": "angry"}')  # this run would change them
    before = snapshot(tmp_path)
    monkeypatch.setattr(script, "open", full_disk_after(n_writes), raising=False)
    code, _, err = run_main(script.main, argv, capsys)
    line = assert_one_line_error(code, err, "No space left on device", "previous outputs are unchanged")
    assert any(x in line for x in ("vlm.csv", ".npy", "missing.txt", "summary.json"))
    assert snapshot(tmp_path) == before  # nothing changed, no temporary file or folder left (hidden ones count)
    monkeypatch.undo()
    assert run_main(script.main, argv, capsys)[0] == 0
    assert "\nclip_c,angry," in (tmp_path / "out" / "vlm.csv").read_text()


def test_full_disk_on_a_first_run_leaves_nothing(tmp_path, capsys, monkeypatch):
    write_folder(tmp_path)
    monkeypatch.setattr(script, "open", full_disk_after(2), raising=False)
    argv = as_feature_argv(tmp_path)
    argv[3] = str(tmp_path / "out" / "nested" / "vlm.csv")  # folders made for the outputs go too
    code, _, err = run_main(script.main, argv, capsys)
    assert_one_line_error(code, err, os.path.join("vlm-scores-UTT", "clip_b.npy"))
    assert not (tmp_path / "out").exists() and not (tmp_path / "features").exists()


def test_feature_folder_is_replaced_and_agrees_with_the_table(tmp_path):
    answers = write_folder(tmp_path)
    feat = tmp_path / "features" / "vlm-scores-UTT"
    feat.mkdir(parents=True)
    np.save(feat / "clip_old.npy", np.zeros(6, np.float32))  # a clip this run does not give a vector
    _, rows, summary = run(tmp_path, answers, "--as_feature", str(feat))
    assert sorted(os.listdir(feat)) == sorted(r[0] + ".npy" for r in rows[1:])
    assert summary["feature"]["stale_removed"] == 1
    assert (tmp_path / "features" / "vlm-scores-UTT.missing.txt").read_text().split() == summary["skipped_names"]["truncated"] + \
        summary["skipped_names"]["empty"] + summary["skipped_names"]["out_of_class_label"] + summary["skipped_names"]["unparseable"]


# ----------------------------------------------------------------------------------------------------
# --help
# ----------------------------------------------------------------------------------------------------
def test_help_shows_defaults_and_a_whole_description(capsys):
    with pytest.raises(SystemExit) as exit_:
        script.parse_args(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    flat = " ".join(text.split())
    for option in ["--fill {none,uniform} --as_feature: uniform vector for clips without a usable answer (default: none)",
                   "--emo_rule EMO_RULE class list in config.EMO_RULE (default: MER)",
                   "(an utterance feature) (default: none, no feature folder)",
                   "(others are ignored) (default: none, every answered clip)"]:
        assert option in flat, option
    assert flat.count("(default:") == 4 and flat.count("(required)") == 2
    description = script.__doc__.strip()
    assert description.endswith(".") and " ".join(description.split()) in flat  # all of it, ending a sentence
