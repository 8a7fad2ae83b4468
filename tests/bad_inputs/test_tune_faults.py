"""tune.py under faults: a worker killed as the out-of-memory killer does, a second command on the same study,
Ctrl-C and SIGTERM. Each ends in one line at most (or goes on), leaves no trial RUNNING, and the same command
resumes the study with its trial numbers continuing."""
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import optuna
import pytest

import tune
from stages import search
from stages.search_workers import WORKER_PID
from tests.bad_inputs.helpers import REPO, assert_one_line_error, run_main, run_script, snapshot
from tests.conftest import registered_env
from tests.stages.test_search import tune_argv
from tests.test_train_folds import write_folds

SLOW = ("--epochs", "20")  # a trial then takes seconds, long enough to be caught running


@pytest.fixture
def folds(tiny_project):
    write_folds(tiny_project, 2)
    return tiny_project


class Tune:
    """tune.py in its own process group (as a terminal starts it); its stdout is collected as it comes."""

    def __init__(self, folds, tmp_path, out, *flags):
        self.proc = subprocess.Popen([sys.executable, os.path.join(REPO, "tune.py"), *tune_argv(folds, out, *SLOW, *flags)],
                                     cwd=REPO, env=registered_env(folds, tmp_path), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.pid, self.printed = self.proc.pid, []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.printed.append(line)

    def finish(self, timeout=300):
        """(exit code, stdout, stderr); the whole group is killed if it has not ended by ``timeout`` (a hang)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait()
            pytest.fail(f"tune.py did not end within {timeout}s (hung); stdout: {''.join(self.printed)[-2000:]}")
        self.reader.join()
        return self.proc.returncode, "".join(self.printed), self.proc.stderr.read()

    def running_trial(self, storage_at, timeout=240):
        """A trial that a worker runs, seen before it is far along (1 to 25 of its 40 epochs reported), so that it
        still runs a while (an idle machine trains an epoch of the tiny project in a few hundredths of a second). The study is read only once the command says it runs trials (its store is made then)."""
        deadline = time.time() + timeout
        while time.time() < deadline and self.proc.poll() is None:
            if any("worker(s)" in line for line in self.printed):
                with contextlib.suppress(Exception):  # the study is being written
                    for t in trials(storage_at()):
                        if t.state.name == "RUNNING" and WORKER_PID in t.user_attrs and 0 < len(t.intermediate_values) <= 25:
                            return t
            time.sleep(0.1)
        code, out, err = self.finish(timeout=30)
        pytest.fail(f"no trial was seen running (exit code {code}); stdout: {out[-2000:]} stderr: {err[-2000:]}")


def storage_of(out):
    return search.open_storage(f"journal:{out}/study.journal") if os.path.exists(out / "study.journal") else f"sqlite:///{out}/study.db"


def trials(storage):
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()


def states(storage):
    return [t.state.name for t in sorted(trials(storage), key=lambda t: t.number)]


def resume_continues(folds, out, capsys):
    """The same command (in one process) asked for one trial more than the study holds runs it, numbered after the others."""
    before = len(trials(storage_of(out)))
    trials_wanted = states(storage_of(out)).count("COMPLETE") + 1
    code, _, err = run_main(tune.main, tune_argv(folds, out, *SLOW, "--trials", str(trials_wanted)), capsys)
    assert code == 0 and "Traceback" not in err, err
    every = sorted(trials(storage_of(out)), key=lambda t: t.number)
    assert [t.number for t in every] == list(range(len(every))) and len(every) > before
    assert [t.state.name for t in every].count("COMPLETE") == trials_wanted and "RUNNING" not in [t.state.name for t in every]


def test_a_killed_worker_fails_its_trial_and_a_new_worker_goes_on(folds, tmp_path, capsys):
    out = tmp_path / "study"
    tune_run = Tune(folds, tmp_path, out, "--jobs", "2", "--trials", "3")
    victim = tune_run.running_trial(lambda: storage_of(out))
    os.kill(victim.user_attrs[WORKER_PID], signal.SIGKILL)
    code, printed, err = tune_run.finish()
    assert code == 0 and err.strip() == "", err
    assert f"tune worker {victim.user_attrs[WORKER_PID]} was killed by SIGKILL (as the out-of-memory killer does): " \
           f"its trial {victim.number} is marked failed" in printed
    by_number = {t.number: t.state.name for t in trials(storage_of(out))}
    assert by_number[victim.number] == "FAIL" and list(by_number.values()).count("COMPLETE") == 3 and len(by_number) == 4
    resume_continues(folds, out, capsys)


def test_a_second_command_on_the_same_out_is_refused_and_the_first_goes_on(folds, tmp_path, capsys):
    out = tmp_path / "study"
    first = Tune(folds, tmp_path, out, "--trials", "6")  # enough trials to outlast the second command's start
    first.running_trial(lambda: storage_of(out))
    second = run_script("tune.py", *tune_argv(folds, out, *SLOW, "--trials", "6"), env=registered_env(folds, tmp_path))
    assert_one_line_error(second.returncode, second.stderr, f"--out {out}", f"pid {first.pid}")
    code, _, err = first.finish()
    assert code == 0 and "Traceback" not in err, err
    assert states(storage_of(out)) == ["COMPLETE"] * 6
    resume_continues(folds, out, capsys)


def test_two_commands_on_one_shared_storage_end_in_one_line(folds, tmp_path):
    """With --storage two --out folders can share a study: the one whose running trial the other marks failed
    ends in one line (instead of Optuna's UpdateFinishedTrialError and 'Cannot tell a FAIL trial')."""
    storage = f"sqlite:///{tmp_path}/shared.db"
    shared = ["--storage", storage, "--study", "shared"]
    first = Tune(folds, tmp_path, tmp_path / "a", *shared, "--trials", "20")  # still running when the second starts
    first.running_trial(lambda: storage)
    second = Tune(folds, tmp_path, tmp_path / "b", *shared, "--trials", "1")  # marks the first one's trial failed
    code, _, err = first.finish()
    assert_one_line_error(code, err, "another command marked a trial of study 'shared'", "rerun the command to resume")
    assert second.finish()[0] == 0
    assert "FAIL" in states(storage) and "RUNNING" not in states(storage)


@pytest.mark.parametrize("jobs, signum, group, said", [
    (1, signal.SIGINT, False, "interrupted"),
    (2, signal.SIGINT, True, "interrupted"),  # Ctrl-C in a terminal: the whole process group gets it
    (2, signal.SIGTERM, False, ""),  # kill, a scheduler's time limit: the main process only
])
def test_ctrl_c_and_sigterm_print_at_most_one_line_and_the_study_resumes(folds, tmp_path, capsys, jobs, signum, group, said):
    out = tmp_path / "study"
    tune_run = Tune(folds, tmp_path, out, "--jobs", str(jobs), "--trials", "3")
    taken = tune_run.running_trial(lambda: storage_of(out))
    (os.killpg if group else os.kill)(tune_run.pid, signum)
    code, _, err = tune_run.finish(timeout=120)
    assert code == 128 + signum and err.strip() == said, err
    by_number = {t.number: t.state.name for t in trials(storage_of(out))}
    assert by_number[taken.number] == "FAIL" and "RUNNING" not in by_number.values()
    resume_continues(folds, out, capsys)


def test_out_at_an_existing_file_is_one_line(folds, tmp_path, capsys):
    out = tmp_path / "study"
    out.write_text("mine")
    before = snapshot(tmp_path)
    code, _, err = run_main(tune.main, tune_argv(folds, out), capsys)
    assert_one_line_error(code, err, f"--out {out} is a file")
    assert snapshot(tmp_path) == before


def test_the_journal_lock_of_a_killed_process_is_free_at_once(tmp_path):
    """A worker killed while it appends to the journal does not hold up the others."""
    from stages.search_workers import JournalLock

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]); "
                               "from stages.search_workers import JournalLock; JournalLock(sys.argv[2]).acquire(); "
                               "print('held', flush=True); time.sleep(60)", REPO, str(tmp_path / "j.flock")],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    lock, start = JournalLock(str(tmp_path / "j.flock")), time.monotonic()
    assert lock.acquire() and time.monotonic() - start < 1
    lock.release()
