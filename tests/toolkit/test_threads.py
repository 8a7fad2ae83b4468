"""The thread count: usable CPUs (affinity, cgroup quota), the other load, jobs, the variables and --threads."""
import argparse
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from toolkit.errors import UserError
from toolkit.threads import (cgroup_cpus, env_threads, local_jobs, other_load, parse_threads, thread_choice,
                             usable_cpus)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


@pytest.fixture
def idle(tmp_path):
    """Where nothing is read: no cgroup quota, a machine with no other load."""
    return {"environ": {}, "cgroup_root": str(tmp_path / "no-cgroup"), "loadavg": write(str(tmp_path / "loadavg"), "0.00 0.01 0.05 1/120 999\n"),
            "looks": 1}


def test_parse_threads_takes_auto_and_whole_numbers():
    assert parse_threads("auto") == 0 and parse_threads("0") == 0 and parse_threads("3") == 3
    for bad in ("-1", "two", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_threads(bad)


@pytest.mark.parametrize("text, cpus", [("max 100000\n", None), ("200000 100000\n", 2.0), ("150000 100000\n", 1.5),
                                         ("50000 100000\n", 0.5)])
def test_cgroup_v2_quota(tmp_path, text, cpus):
    write(str(tmp_path / "cpu.max"), text)
    assert cgroup_cpus(str(tmp_path)) == cpus


@pytest.mark.parametrize("folder", ["cpu", "cpu,cpuacct"])
def test_cgroup_v1_quota(tmp_path, folder):
    write(str(tmp_path / folder / "cpu.cfs_period_us"), "100000\n")
    write(str(tmp_path / folder / "cpu.cfs_quota_us"), "-1\n")
    assert cgroup_cpus(str(tmp_path)) is None
    write(str(tmp_path / folder / "cpu.cfs_quota_us"), "250000\n")
    assert cgroup_cpus(str(tmp_path)) == 2.5


def test_no_cgroup_files_mean_no_quota(tmp_path):
    assert cgroup_cpus(str(tmp_path)) is None
    write(str(tmp_path / "cpu.max"), "garbage\n")
    assert cgroup_cpus(str(tmp_path)) is None


def test_the_quota_caps_the_affinity_rounded_up(tmp_path):
    write(str(tmp_path / "cpu.max"), "150000 100000\n")
    assert usable_cpus(str(tmp_path), affinity=8) == 2
    assert usable_cpus(str(tmp_path), affinity=1) == 1
    write(str(tmp_path / "cpu.max"), "10000 100000\n")
    assert usable_cpus(str(tmp_path), affinity=8) == 1


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no affinity masks on this platform")
def test_the_affinity_mask_of_the_process_counts(tmp_path):
    code = ("import os; from toolkit.threads import usable_cpus, thread_choice; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            f"print(usable_cpus({str(tmp_path)!r}), thread_choice(environ={{}}, cgroup_root={str(tmp_path)!r})[0])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.split() == ["1", "1"]
    assert usable_cpus(str(tmp_path)) == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("line, load", [("3.50 2.0 1.0 2/120 7", 1.0), ("0.20 0.3 0.3 6/120 7", 0.2), ("2.60 2.0 1.0 4/120 7", 2.6),
                                        ("0.00 0.0 0.0 1/120 7", 0.0), ("not a loadavg", 0.0)])
def test_other_load_is_the_smaller_of_the_average_and_the_runnable_threads_now(tmp_path, line, load):
    assert other_load(write(str(tmp_path / "loadavg"), line + "\n"), looks=1) == load


def test_the_other_load_is_taken_off_on_a_whole_machine_only(idle, tmp_path):
    busy = {**idle, "loadavg": write(str(tmp_path / "busy"), "2.10 2.0 2.0 3/120 7\n")}
    assert thread_choice(affinity=4, machine=4, **busy)[0] == 2
    assert thread_choice(affinity=2, machine=2, **busy)[0] == 1  # never below 1
    assert thread_choice(affinity=4, machine=4, **idle)[0] == 4
    assert thread_choice(affinity=4, machine=8, **busy)[0] == 4  # an affinity mask is this process's share
    write(str(tmp_path / "quota" / "cpu.max"), "400000 100000\n")
    count, how = thread_choice(affinity=8, machine=8, **{**busy, "cgroup_root": str(tmp_path / "quota")})
    assert count == 4 and "load not counted" in how


def test_jobs_share_the_cpus(idle):
    assert [thread_choice(jobs=jobs, affinity=8, machine=8, **idle)[0] for jobs in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]


def test_variables_replace_the_automatic_choice_and_the_flag_wins_over_them(idle):
    where = {k: v for k, v in idle.items() if k != "environ"}
    assert thread_choice(environ={"OMP_NUM_THREADS": "3"}, jobs=2, affinity=8, machine=8, **where) == (3, "OMP_NUM_THREADS=3")
    assert thread_choice(environ={"MKL_NUM_THREADS": "5"}, affinity=8, machine=8, **where) == (5, "MKL_NUM_THREADS=5")
    assert thread_choice(environ={"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "5"}, **where)[0] == 2
    assert thread_choice(environ={"OMP_NUM_THREADS": "4,2"}, **where)[0] == 4  # OpenMP's nested form
    assert thread_choice(environ={"OMP_NUM_THREADS": " "}, affinity=8, machine=8, **where)[0] == 8  # empty: unset
    assert thread_choice(6, environ={"OMP_NUM_THREADS": "3"}, **where) == (6, "--threads")


@pytest.mark.parametrize("value", ["0", "abc", "-2"])
def test_a_bad_variable_is_a_one_line_error(value):
    with pytest.raises(UserError, match=f"OMP_NUM_THREADS='{value}' is not a positive whole number"):
        env_threads({"OMP_NUM_THREADS": value})


def test_local_world_size_counts_as_jobs():
    assert local_jobs({"LOCAL_WORLD_SIZE": "4"}) == 4
    assert local_jobs({}) == 1 and local_jobs({"LOCAL_WORLD_SIZE": "x"}) == 1


def run_script(args, env):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


def test_the_flag_reaches_torch_in_train_and_predict(tiny_project, tmp_path):
    """--threads 3 (more than the variable's 1) in a real train.py and predict.py: torch computes with 3 threads."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run_dir = str(tmp_path / "run")
    done = run_script(["train.py", *tiny_project["argv"], "--epochs", "2", "--no_plots", "--save_model", "--threads", "3"], env)
    assert done.returncode == 0, done.stderr
    assert "3 CPU threads (--threads)" in done.stdout
    assert json.load(open(os.path.join(run_dir, "summary.json")))["threads"] == 3
    assert "threads: 3 CPU threads (--threads)" in open(os.path.join(run_dir, "info.log")).read()
    names = write(str(tmp_path / "names.csv"), "name\n" + "\n".join(tiny_project["names"][:5]) + "\n")
    predicted = run_script(["predict.py", "--run", run_dir, "--names", names, "--out", str(tmp_path / "preds"), "--no_progress",
                            "--threads", "3"], env)
    assert predicted.returncode == 0, predicted.stderr
    assert "(3 CPU threads (--threads))" in predicted.stdout


def test_the_variable_wins_over_auto_in_train(tiny_project, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = run_script(["train.py", *tiny_project["argv"], "--epochs", "1", "--no_plots"], env)
    assert done.returncode == 0, done.stderr
    assert json.load(open(os.path.join(tmp_path, "run", "summary.json")))["threads"] == 1
    assert "1 CPU thread (OMP_NUM_THREADS=1)" in done.stdout


def test_extract_help_says_how_threads_are_chosen_and_the_flag_reaches_torch(tmp_path):
    from tests.feature_extraction.media import write_release

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    helped = run_script(["extract.py", "--help"], env).stdout
    assert "--threads N" in helped and "OMP_NUM_THREADS" in helped and "LOCAL_WORLD_SIZE" in helped
    release = write_release(str(tmp_path / "release"), ["s1", "s2"])
    done = run_script(["extract.py", "--data", release, "--modality", "opensmile", "--workers", "0", "--no_progress",
                       "--threads", "3"], env)
    assert done.returncode == 0, done.stderr
    assert "3 CPU threads (--threads)" in done.stdout
