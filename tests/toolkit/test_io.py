"""toolkit/io.py: the restricted reader of pickled .npy files, split-dict checks and stale temporary files."""
import os
import pickle
import subprocess
import sys
import time

import numpy as np
import pytest

from toolkit.errors import UserError
from toolkit.io import TRAIN_KEY, VALID_KEY, atomic_path, load_npy_data, load_split, remove_stale_temps, save_npy, save_split

RESULTS = {"eval_names": ["a", "b"], "eval_loss": 0.5, "eval_emoprobs": np.full((2, 3), 1 / 3, np.float32),
           "eval_emolabels": np.array([0, 2]), "eval_emoacc": np.float64(0.5), "names": np.array(["x", "y"])}


def npy_of_pickle(path, payload):
    """An object .npy (header of a 0-d '|O' array) followed by the pickle stream ``payload``."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        f.write(payload)
    return str(path)


def numpy1_pickle(obj, protocol=3):
    """A pickle of ``obj`` as numpy 1.x writes it: its array and scalar helpers live in numpy.core.multiarray."""
    stream = pickle.dumps(np.array(obj, dtype=object) if not isinstance(obj, np.ndarray) else obj, protocol=protocol)
    assert b"cnumpy._core.multiarray\n" in stream  # GLOBAL opcodes are text lines below protocol 4
    return stream.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def check_results(loaded):
    assert loaded["eval_names"] == ["a", "b"] and loaded["eval_loss"] == 0.5
    np.testing.assert_array_equal(loaded["eval_emoprobs"], RESULTS["eval_emoprobs"])
    assert loaded["eval_emoprobs"].dtype == np.float32 and loaded["eval_emolabels"].tolist() == [0, 2]
    assert loaded["eval_emoacc"] == 0.5 and loaded["names"].tolist() == ["x", "y"]


def test_reads_what_np_save_writes(tmp_path):
    save_npy(tmp_path / "r.npy", RESULTS)
    check_results(load_npy_data(str(tmp_path / "r.npy"), "results", "rewrite it"))


@pytest.mark.parametrize("protocol", [2, 3])
def test_reads_numpy1_pickles(tmp_path, protocol):
    path = npy_of_pickle(tmp_path / "r.npy", numpy1_pickle(RESULTS, protocol))
    assert b"numpy._core" not in open(path, "rb").read()
    check_results(load_npy_data(path, "results", "rewrite it"))


def test_numeric_npy_is_read_without_pickle(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(4.0))
    assert load_npy_data(str(tmp_path / "a.npy"), "results", "x").tolist() == [0, 1, 2, 3]


def test_seed_code_split_in_numpy1_format_loads(tmp_path):
    split = {TRAIN_KEY: {"names": ["a", "b"], "emos": ["happy", "sad"], "vals": [0.5, float("nan")]},
             VALID_KEY: {"names": ["c"], "emos": ["neutral"], "vals": [np.float64(1.0)]}}
    path = npy_of_pickle(tmp_path / "seed0.npy", numpy1_pickle(split))
    loaded = load_split(path)
    assert loaded[TRAIN_KEY]["names"] == ["a", "b"] and np.isnan(loaded[TRAIN_KEY]["vals"][1])
    assert loaded[VALID_KEY]["vals"] == [1.0]


def test_object_array_inside_is_refused(tmp_path):
    save_npy(tmp_path / "r.npy", {"x": np.array([{"a": 1}, None], dtype=object)})
    with pytest.raises(UserError, match="nested array of dtype object"):
        load_npy_data(str(tmp_path / "r.npy"), "results", "x")


def test_other_classes_are_refused_by_name(tmp_path):
    save_npy(tmp_path / "r.npy", {"when": __import__("datetime").date(2024, 1, 1)})
    with pytest.raises(UserError, match=r"datetime\.date"):
        load_npy_data(str(tmp_path / "r.npy"), "results", "x")


def test_truncated_pickle_is_a_user_error(tmp_path):
    save_npy(tmp_path / "r.npy", RESULTS)
    data = open(tmp_path / "r.npy", "rb").read()
    (tmp_path / "r.npy").write_bytes(data[:len(data) // 2])
    with pytest.raises(UserError, match="not a readable .npy file"):
        load_npy_data(str(tmp_path / "r.npy"), "results", "x")


def test_split_keeps_extra_keys(tmp_path):
    info = {"names": ["a"], "emos": ["happy"], "vals": [0.0]}
    save_split(tmp_path / "s.npy", info, info, {"source": {"label_csv": "/x.csv", "sha256": "ab"}})
    assert load_split(str(tmp_path / "s.npy"))["source"]["sha256"] == "ab"


def test_pseudo_split_with_weights_loads(tmp_path):
    train = {"names": ["a", "b"], "emos": ["happy", "sad"], "vals": [0.0, 1], "weights": [1.0, 0], "pseudo": [False, np.True_]}
    save_split(tmp_path / "s.npy", train, {"names": ["c"], "emos": ["sad"]})
    assert load_split(str(tmp_path / "s.npy"))[TRAIN_KEY]["pseudo"] == [False, True]


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_names_carry_the_pid(tmp_path):
    with atomic_path(tmp_path / "out.npy") as tmp:
        assert os.path.basename(tmp).startswith(f".out.{os.getpid()}-") and tmp.endswith(".tmp.npy")
        open(tmp, "w").close()
        os.utime(tmp, (0, 0))
        assert remove_stale_temps(str(tmp_path), older_than_s=0) == []  # its process (this one) still runs
    assert os.listdir(tmp_path) == ["out.npy"]


def test_remove_stale_temps_only_removes_dead_processes_files(tmp_path):
    with atomic_path(tmp_path / "probe" / "x.npy") as tmp:
        host = os.path.basename(tmp).split(".")[2].split("-")[1]
    pid = dead_pid()
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    stale = tmp_path / f".seed0.{pid}-{host}.ab12cd_9.tmp.npy"
    fresh = tmp_path / f".seed1.{pid}-{host}.zz12cd_9.tmp.npy"
    alive = tmp_path / f".seed2.{os.getpid()}-{host}.ab12cd_9.tmp.npy"
    elsewhere = tmp_path / f".seed3.{pid}-00000000.ab12cd_9.tmp.npy"
    unrelated = tmp_path / f".seed4.{pid}.npy"
    for path in (stale, fresh, alive, elsewhere, unrelated):
        path.write_bytes(b"half")
    old = time.time() - 3600
    for path in (stale, alive, elsewhere, unrelated):
        os.utime(path, (old, old))
    assert remove_stale_temps(str(tmp_path), older_than_s=60) == [str(stale)]
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in (fresh, alive, elsewhere, unrelated))
    assert remove_stale_temps(str(tmp_path / "missing")) == []
