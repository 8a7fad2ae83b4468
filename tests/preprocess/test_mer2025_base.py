import math
"""preprocess/mer2025_base.py and make_lst.sh: exact split format, stratification, folds, validation errors."""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.bad_inputs.helpers import assert_one_line_error, run_main, snapshot
from preprocess import mer2025_base as script
from toolkit.io import TRAIN_KEY, VALID_KEY, load_split
from toolkit.tables import MER_CLASSES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "preprocess", "mer2025_base.py")
CLASSES = list(MER_CLASSES)
COUNTS = [87, 82, 69, 38, 46, 15]  # a tenth of the MER prior


def write_csv(path, rows, header="name,discrete,valence"):
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def labels(tmp_path):
    rng = np.random.default_rng(0)
    emos = rng.permutation(np.repeat(CLASSES, COUNTS))
    rows = [(f"videos/sample_{i:08d}.mp4", e, round(float(v), 2)) for i, (e, v) in enumerate(zip(emos, rng.normal(0, 2, len(emos))))]
    return write_csv(tmp_path / "labels.csv", rows), rows


def split(csv, save_root, *extra):
    return script.main(["--label_csv", csv, "--save_root", str(save_root), *extra])


def check_format(path):
    raw = np.load(path, allow_pickle=True).item()
    assert (TRAIN_KEY, VALID_KEY) == ("train_info", "valid_info")  # the published format, which users exchange
    assert type(raw) is dict and list(raw) == [TRAIN_KEY, VALID_KEY, "source"]
    assert set(raw["source"]) == {"label_csv", "sha256"} and os.path.isabs(raw["source"]["label_csv"])
    for key in (TRAIN_KEY, VALID_KEY):
        assert list(raw[key]) == ["names", "emos", "vals"]
        assert all(type(raw[key][f]) is list for f in ("names", "emos", "vals"))
        assert all(type(x) is str for x in raw[key]["names"] + raw[key]["emos"])
        assert all(type(x) is float for x in raw[key]["vals"])
    load_split(path)  # the toolkit's own reader accepts it
    return raw


def test_seed_split_format_and_content(labels, tmp_path, capsys):
    csv, rows = labels
    written = split(csv, tmp_path / "lst", "--seed", "3")
    assert written == [str(tmp_path / "lst" / "seed3.npy")]
    s = check_format(written[0])
    train, valid = s[TRAIN_KEY], s[VALID_KEY]
    assert len(valid["names"]) == round(0.2 * len(rows)) and len(train["names"]) + len(valid["names"]) == len(rows)
    assert not set(train["names"]) & set(valid["names"])
    truth = {f"sample_{i:08d}": (e, v) for i, (_, e, v) in enumerate(rows)}  # keys are file stems
    assert set(train["names"]) | set(valid["names"]) == set(truth)
    for info in (train, valid):
        assert all(truth[n] == (e, v) for n, e, v in zip(info["names"], info["emos"], info["vals"]))
    out = capsys.readouterr().out
    assert "seed3.npy   train" in out and "seed3.npy   valid" in out and "surprise" in out


def test_seeds_differ_and_repeat(labels, tmp_path):
    csv, _ = labels
    a = check_format(split(csv, tmp_path / "a", "--seed", "0")[0])
    b = check_format(split(csv, tmp_path / "b", "--seed", "0")[0])
    c = check_format(split(csv, tmp_path / "c", "--seed", "1")[0])
    assert a == b and a[VALID_KEY]["names"] != c[VALID_KEY]["names"]


def test_stratified_split_keeps_class_proportions(labels, tmp_path):
    csv, _ = labels
    s = check_format(split(csv, tmp_path, "--stratify", "--valid_ratio", "0.25")[0])
    valid = s[VALID_KEY]["emos"]
    assert [valid.count(c) for c in CLASSES] == [round(0.25 * n) for n in COUNTS]


@pytest.mark.parametrize("stratify", [[], ["--stratify"]])
def test_folds_are_disjoint_and_cover_everything(labels, tmp_path, stratify):
    csv, rows = labels
    written = split(csv, tmp_path, "--folds", "5", *stratify)
    assert [os.path.basename(p) for p in written] == [f"fold{k}.npy" for k in range(5)]
    valids = []
    for path in written:
        s = check_format(path)
        train, valid = set(s[TRAIN_KEY]["names"]), set(s[VALID_KEY]["names"])
        assert not train & valid and len(train | valid) == len(rows)
        valids.append(s[VALID_KEY])
    names = [n for v in valids for n in v["names"]]
    assert len(names) == len(set(names)) == len(rows)
    sizes = [len(v["names"]) for v in valids]
    assert max(sizes) - min(sizes) <= 1
    if stratify:
        for c, n in zip(CLASSES, COUNTS):
            per_fold = [v["emos"].count(c) for v in valids]
            assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == n


def test_without_valence_vals_are_nan(tmp_path, capsys):
    rows = [(f"clip{i}", CLASSES[i % 6]) for i in range(20)]
    csv = write_csv(tmp_path / "track1_train.csv", rows, header="name,discrete")
    s = check_format(split(csv, tmp_path / "lst")[0])
    vals = s[TRAIN_KEY]["vals"] + s[VALID_KEY]["vals"]
    assert all(isinstance(v, float) and math.isnan(v) for v in vals)
    assert "no valence column: vals set to NaN" in capsys.readouterr().out


def test_label_case_and_spaces_are_accepted(tmp_path):
    csv = write_csv(tmp_path / "l.csv", [(f"c{i}", [" Happy", "SAD"][i % 2], 1.0) for i in range(10)])
    s = check_format(split(csv, tmp_path / "lst")[0])
    assert set(s[TRAIN_KEY]["emos"] + s[VALID_KEY]["emos"]) == {"happy", "sad"}


@pytest.mark.parametrize("case, header, rows, extra, message", [
    ("bad label", "name,discrete,valence", [("a", "happy", 1), ("b", "contempt", 0), ("c", "sad", 0)], [],
     "label(s) outside the classes [neutral, angry, happy, sad, worried, surprise]: line 3 b 'contempt'"),
    ("duplicates", "name,discrete,valence", [("x/a.mp4", "happy", 1), ("a.wav", "sad", 0), ("b", "sad", 0)], [],
     "1 duplicated sample name(s): a (x2)"),
    ("missing column", "name,emotion", [("a", "happy"), ("b", "sad")], [],
     "lacks column(s) discrete; found name, emotion"),
    ("bad valence", "name,discrete,valence", [("a", "happy", "high"), ("b", "sad", 0), ("c", "sad", 1)], [],
     "valence value(s) are not numbers: line 2 a 'high'"),
    ("folds and ratio", "name,discrete", [("a", "happy"), ("b", "sad")], ["--folds", "2", "--valid_ratio", "0.3"],
     "either --folds K"),
    ("unknown rule", "name,discrete", [("a", "happy"), ("b", "sad")], ["--emo_rule", "IEMOCAP"],
     "--emo_rule 'IEMOCAP' is not in config.EMO_RULE; known: MER"),
    ("too few", "name,discrete", [("a", "happy")], [], "leave train or valid empty"),
])
def test_errors_are_one_line_and_write_nothing(tmp_path, capsys, case, header, rows, extra, message):
    csv = write_csv(tmp_path / "l.csv", rows, header=header)
    with pytest.raises(SystemExit) as err:
        split(csv, tmp_path / "lst", *extra)
    captured = capsys.readouterr()
    assert err.value.code == 2 and message in captured.err and captured.err.count("\n") == 1
    assert not (tmp_path / "lst").exists()


def test_cli_error_without_traceback(tmp_path):
    csv = write_csv(tmp_path / "l.csv", [("a", "joy", 0), ("b", "sad", 0)])
    proc = subprocess.run([sys.executable, SCRIPT, "--label_csv", csv, "--save_root", str(tmp_path / "lst")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and "'joy'" in proc.stderr
    assert not (tmp_path / "lst").exists()


def test_make_lst_writes_five_seeds(labels, tmp_path):
    csv, _ = labels
    env = dict(os.environ, LABEL_CSV=csv, PYTHON=sys.executable)
    proc = subprocess.run(["bash", os.path.join(REPO, "preprocess", "make_lst.sh"), "--save_root", str(tmp_path), "--stratify"],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(tmp_path)) == sorted(["labels.csv"] + [f"seed{k}.npy" for k in range(5)])
    for k in range(5):
        check_format(tmp_path / f"seed{k}.npy")


def test_source_is_recorded_and_rerun_with_same_csv_is_fine(labels, tmp_path):
    csv, _ = labels
    first = split(csv, tmp_path / "lst", "--seed", "1")[0]
    raw = check_format(first)
    assert raw["source"]["label_csv"] == os.path.abspath(csv)
    assert raw["source"]["sha256"] == hashlib.sha256(open(csv, "rb").read()).hexdigest()
    before = open(first, "rb").read()
    split(csv, tmp_path / "lst", "--seed", "1")  # same CSV: idempotent
    assert open(first, "rb").read() == before


def test_split_from_another_csv_needs_overwrite(labels, tmp_path, capsys):
    csv, rows = labels
    first = split(csv, tmp_path / "lst", "--seed", "0")[0]
    other = write_csv(tmp_path / "other.csv", rows[:-10])
    before = snapshot(tmp_path / "lst")
    code, _, err = run_main(script.main, ["--label_csv", other, "--save_root", str(tmp_path / "lst"), "--seed", "0"], capsys)
    assert_one_line_error(code, err, first, csv, other, "--overwrite")
    assert snapshot(tmp_path / "lst") == before
    split(other, tmp_path / "lst", "--seed", "0", "--overwrite")
    assert np.load(first, allow_pickle=True).item()["source"]["label_csv"] == os.path.abspath(other)


def test_make_lst_passes_overwrite_through(labels, tmp_path):
    csv, rows = labels
    other = write_csv(tmp_path / "other.csv", rows[:-10])
    run = lambda label_csv, *extra: subprocess.run(  # noqa: E731
        ["bash", os.path.join(REPO, "preprocess", "make_lst.sh"), "--save_root", str(tmp_path / "lst"), *extra],
        capture_output=True, text=True, cwd=REPO, env=dict(os.environ, LABEL_CSV=label_csv, PYTHON=sys.executable, SEEDS="0"))
    assert run(csv).returncode == 0
    refused = run(other)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    assert run(other, "--overwrite").returncode == 0
    assert np.load(tmp_path / "lst" / "seed0.npy", allow_pickle=True).item()["source"]["label_csv"] == other


def test_help_shows_every_default(capsys):
    from tests.toolkit.test_help import undocumented_defaults

    parser = script.build_parser()
    assert undocumented_defaults(parser) == []
    text = " ".join(parser.format_help().split())
    assert "(default: 0)" in text and "(default: MER)" in text and "(default: False)" in text and "(required)" in text


def test_temporary_files_of_a_killed_run_are_removed(labels, tmp_path):
    from tests.toolkit.test_io import dead_pid
    from toolkit.io import atomic_path

    csv, _ = labels
    lst = tmp_path / "lst"
    with atomic_path(lst / "probe" / "x.npy") as tmp:
        owner = os.path.basename(tmp).split(".")[2]
    stale = lst / f".seed0.{dead_pid()}-{owner.split('-')[1]}.k1ll3d_x.tmp.npy"
    stale.write_bytes(b"half a split")
    os.utime(stale, (0, 0))
    split(csv, lst, "--seed", "0")
    assert sorted(os.listdir(lst)) == ["probe", "seed0.npy"]
