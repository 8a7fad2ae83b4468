"""tune.py's worker processes: started, watched and stopped by the main process, and --out held by one command.

A worker that dies without a word (SIGKILL, as the out-of-memory killer sends) leaves its trial RUNNING in the
study. The main process sees the worker's end, marks that trial failed and starts a new worker for the rest of
the dead one's share, so the study goes on; after more deaths than --jobs it stops the others and ends with one
line. Workers ignore SIGINT: Ctrl-C (to the whole terminal group) or SIGTERM reaches the main process, which
stops the workers with SIGTERM; each ends its trial as failed, and the same command resumes the study.

Each trial records the worker that runs it (``WORKER_PID``), so the main process knows whose trial it was."""
import contextlib
import datetime
import logging
import os
import re
import signal
import sys
import threading
import time

from toolkit.errors import UserError

WORKER_PID = "worker_pid"  # trial user attribute: the process that runs the trial
STOPPED = 128 + signal.SIGTERM  # the exit code of a worker that SIGTERM stopped
STOP_GRACE_S = 30  # how long a worker stopped with SIGTERM may take to end its trial before it is killed


def claim_out(out):
    """Hold ``out`` for this command (a lock naming its pid) while the block runs: a second tune command on
    the same --out would mark this one's running trials failed, so it is refused in one line."""
    from toolkit.runs import exclusive

    if os.path.lexists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} is a file, not a folder; pass the study's folder (new, or one tune.py wrote)")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot make the folder ({exc.strerror or exc}); pass a folder you can write to") from None
    return exclusive(os.path.join(out, ".tune.lock"), f"--out {out}")


class JournalLock:
    """The journal file's write lock as an ``flock``, which the kernel drops when its process dies: a worker
    killed while appending (SIGKILL) never holds up the others (Optuna's own lock file is waited for 30 s, with
    a warning every 10 s, then taken by force). Duck-types Optuna's journal file locks (acquire, release)."""

    def __init__(self, path):
        self.path, self.fd = path, None

    def acquire(self):
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return True

    def release(self):
        import fcntl

        fd, self.fd = self.fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def tagged(objective):
    """``objective`` that first records this process in the trial (``WORKER_PID``)."""

    def run_trial(trial):
        trial.set_user_attr(WORKER_PID, os.getpid())
        return objective(trial)

    return run_trial


class _ReportedElsewhere(logging.Filter):
    """Drops Optuna's "Trial N failed" records (the first with a traceback, then "Trial N failed with value")
    for the failures the toolkit reports itself in one line: Ctrl-C or SIGTERM, a UserError, and a trial that
    another command finished meanwhile."""

    def __init__(self):
        super().__init__()
        self.dropped = set()  # numbers of the trials whose failure record was dropped

    def filter(self, record):
        from optuna.exceptions import UpdateFinishedTrialError

        exc = record.exc_info[1] if record.exc_info else None
        trial = re.match(r"Trial (\d+) failed", record.getMessage())
        if isinstance(exc, (KeyboardInterrupt, SystemExit, UserError, UpdateFinishedTrialError)):
            self.dropped.add(trial and trial[1])
            return False
        return not (trial and trial[1] in self.dropped)


def quiet_reported_failures():
    """Install ``_ReportedElsewhere`` on Optuna's log handlers (once)."""
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(f, _ReportedElsewhere) for f in handler.filters):
            handler.addFilter(_ReportedElsewhere())


@contextlib.contextmanager
def finished_elsewhere_is_one_line(plan):
    """A trial that another command marked failed while this one ran it (two commands on one study, e.g. on a
    shared --storage) ends the worker with a UserError instead of Optuna's two tracebacks."""
    from optuna.exceptions import UpdateFinishedTrialError

    try:
        yield
    except Exception as exc:  # noqa: BLE001 - only Optuna's errors of a finished trial are translated
        cause = exc
        while cause is not None and not isinstance(cause, UpdateFinishedTrialError):
            cause = cause.__cause__ or cause.__context__
        told_late = isinstance(exc, ValueError) and str(exc).startswith("Cannot tell a ")  # its end, told after the other's
        if cause is None and not told_late:
            raise
        raise UserError(f"another command marked a trial of study '{plan.study}' ({plan.storage}) failed while this one ran it: "
                        "run one tune command per study at a time; finished trials are kept, rerun the command to resume") from None


def _worker_main(task, conn):
    """A worker process: run its share of trials; send back the UserError message that stopped it, or None."""
    signal.signal(signal.SIGTERM, _interrupt)
    from tqdm import tqdm

    from stages.search import work

    tqdm.set_lock(threading.RLock())  # not tqdm's default named semaphore, which a killed worker would leak
    try:
        conn.send(work(task))
    except KeyboardInterrupt:  # SIGTERM: Optuna has marked the trial failed
        sys.exit(STOPPED)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigint_ignored():
    """Processes started in the block ignore SIGINT (an ignored signal stays ignored across exec)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Workers:
    """The running worker processes of one tune command: {sentinel: (process, result pipe, task, start time)}."""

    def __init__(self, plan):
        import multiprocessing

        self.plan, self.context, self.running = plan, multiprocessing.get_context("spawn"), {}

    def start(self, task):
        receive, send = self.context.Pipe(duplex=False)
        process = self.context.Process(target=_worker_main, args=(task, send), name=f"tune-worker-{task[1]}", daemon=True)
        started = datetime.datetime.now()
        with _sigint_ignored():
            process.start()
        send.close()
        self.running[process.sentinel] = (process, receive, task, started)

    def stop(self):
        """SIGTERM to every running worker (each ends its trial as failed), SIGKILL after STOP_GRACE_S; trials
        left running by a killed one are marked failed here."""
        workers = list(self.running.values())
        for process, *_ in workers:
            process.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for process, *_ in workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        if workers:
            fail_running(self.plan, [(process.pid, started) for process, _, _, started in workers])
        self.running.clear()


def trials_of(study, pid, started):
    """The trials of the worker ``pid`` started at ``started`` (a pid of an earlier command does not count)."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get(WORKER_PID) == pid and t.datetime_start is not None and t.datetime_start >= started]


def fail_running(plan, workers):
    """Mark the RUNNING trials of ``workers`` [(pid, start time)] failed; returns their numbers."""
    from optuna.trial import TrialState

    from stages.search import load_study

    study = load_study(plan)
    numbers = [t.number for pid, started in workers for t in trials_of(study, pid, started) if t.state == TrialState.RUNNING]
    for number in numbers:
        study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    return numbers


def replace_dead(workers, process, task, started, deaths):
    """After the worker ``process`` was killed: mark its trial failed, say so in one line and start a worker
    for the rest of its share (more deaths than --jobs stop the command with one line)."""
    from optuna.trial import TrialState

    from stages.search import load_study

    plan, (_, _, share, done) = workers.plan, task
    failed = fail_running(plan, [(process.pid, started)])
    counted = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials_of(load_study(plan), process.pid, started))
    signum = -process.exitcode if process.exitcode < 0 else process.exitcode - 128
    how = f"killed by {signal.Signals(signum).name}" + (" (as the out-of-memory killer does)" if signum == signal.SIGKILL else "")
    lost = f"its trial {failed[0]} is marked failed" if failed else "no trial of it was running"
    if deaths > plan.jobs:
        raise UserError(f"tune worker {process.pid} was {how} ({deaths} workers died); {lost}. Finished trials are kept in "
                        f"{plan.storage}: rerun the same command to resume (with fewer --jobs or a smaller --batch_size if memory ran out)")
    left = share - counted
    print(f"tune worker {process.pid} was {how}: {lost}; a new worker runs the {left} trial(s) left of its share", flush=True)
    if left > 0:
        workers.start((plan, plan.jobs + deaths - 1, left, done))


def supervise(plan, tasks):
    """Run ``tasks`` [(plan, worker, n trials, done)] in worker processes until all end; returns the messages of
    the UserErrors that stopped workers. Workers still running when this ends (Ctrl-C, an error) are stopped."""
    from multiprocessing.connection import wait

    workers, errors, deaths = Workers(plan), [], 0
    try:
        for task in tasks:
            workers.start(task)
        while workers.running:
            for sentinel in wait(list(workers.running)):
                process, receive, task, started = workers.running.pop(sentinel)
                process.join()
                if process.exitcode == 0:
                    with contextlib.suppress(EOFError):
                        errors.append(receive.recv())
                elif process.exitcode < 0 or process.exitcode == STOPPED:  # killed, or stopped by someone else
                    deaths += 1
                    replace_dead(workers, process, task, started, deaths)
                else:
                    errors.append(f"tune worker {process.pid} stopped with exit code {process.exitcode} (its error is above)")
                receive.close()
    finally:
        workers.stop()
    return [e for e in errors if e]
