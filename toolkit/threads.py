"""How many CPU threads PyTorch computes with: chosen once per process, in one place.

The count, first rule that applies:

1. ``--threads N`` (N >= 1, a TrainConfig field and a flag of every script that computes): N.
2. ``OMP_NUM_THREADS``, else ``MKL_NUM_THREADS``, when set: its value (per process, as these variables always mean).
   torchrun sets ``OMP_NUM_THREADS=1`` for its processes when it starts several and the variable is unset.
3. Otherwise (``--threads 0`` or ``auto``) automatic: the CPUs this process may use (``os.sched_getaffinity``,
   capped by the cgroup CPU quota: cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us / cpu.cfs_period_us``), less the
   load other programs put on them, divided by the parallel jobs that share them (the sweep's and the tuner's
   ``--jobs``, ``LOCAL_WORLD_SIZE`` under torchrun); at least 1.

Why the load counts. PyTorch's default is one thread per CPU. Its OpenMP threads meet at a barrier after every
parallel operator, so when other programs keep a CPU busy, the whole team waits for its slowest, descheduled
member. On the 2-core machine this was measured on (``benchmarks/bench_threads.py``; other programs kept its
load average at 6-10), a demo training epoch took 4.0 s with 2 threads and 0.37 s with 1; with two more busy
programs, 14.2 s and 1.1 s. The automatic choice took 1 thread there, at the speed of 1. On an idle machine
it takes every usable CPU, as PyTorch does. The other load is the smaller of the 1-minute load average and
the number of threads runnable right now besides this one (the median of a few looks at /proc/loadavg): the
average alone still counts a program that ended a minute ago (the previous run of a script), the instant
count alone a compiler that runs for a second. It is rounded to whole CPUs.

The load counts only when the process may use every CPU of the machine and no quota caps it. Where an
affinity mask or a quota gives the process its share (a container, a batch scheduler's allocation), the
load average still counts the whole host, whose other programs mostly run outside that share.

The choice is made once per process: later runs in the same process (the folds of a run, the runs of a sweep
worker) keep it unless they name a count, since the load a process measures after training counts itself.
The count changes results only by float rounding (parallel reductions add in another order); every run
writes its count into info.log and summary.json, and ``--threads N`` repeats it.
"""
import argparse
import math
import os
import statistics
import time

from toolkit.errors import UserError

ENV_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
CGROUP_ROOT = "/sys/fs/cgroup"
LOADAVG = "/proc/loadavg"
THREADS_HELP = ("CPU threads of PyTorch; 0 or auto: the CPUs this process may use (affinity, cgroup quota) less the "
                "machine's other load, split between parallel jobs; OMP_NUM_THREADS or MKL_NUM_THREADS, when set, "
                "replace that choice, and a number given here wins over both (default: auto)")


def parse_threads(text):
    """An argparse ``type`` for --threads: ``auto`` or a whole number >= 0 (0 = auto) → int."""
    if str(text).strip().lower() == "auto":
        return 0
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of threads or auto, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0: auto), got {text}")
    return value


def add_thread_flag(group):
    """The --threads flag of a script that computes with PyTorch (train.py's comes from TrainConfig, same rules)."""
    group.add_argument("--threads", type=parse_threads, default=0, metavar="N", help=THREADS_HELP)
    return group


def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def cgroup_cpus(root=CGROUP_ROOT):
    """The CPUs the cgroup CPU quota allows (quota / period, a float), or None when no quota is set or readable."""
    text = read_text(os.path.join(root, "cpu.max"))  # cgroup v2: "max 100000" or "<quota> <period>"
    if text is not None:
        quota, _, period = text.strip().partition(" ")
        pairs = [(quota, period or "100000")]
    else:  # cgroup v1, under either mount name
        pairs = [(read_text(os.path.join(root, folder, "cpu.cfs_quota_us")), read_text(os.path.join(root, folder, "cpu.cfs_period_us")))
                 for folder in ("cpu", "cpu,cpuacct", "cpuacct,cpu")]
    for quota, period in pairs:
        try:
            quota, period = int(quota), int(period)
        except (TypeError, ValueError):  # "max", -1 as text is fine below; None or garbage: no quota
            continue
        if quota > 0 and period > 0:
            return quota / period
    return None


def affinity_cpus():
    """The CPUs this process may run on (all of them where the platform has no affinity mask)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def usable_cpus(cgroup_root=CGROUP_ROOT, affinity=None):
    """The CPUs this process may use: its affinity mask (``affinity``: that count instead), capped by the cgroup
    quota rounded up, at least 1."""
    return _capped(affinity_cpus() if affinity is None else affinity, cgroup_cpus(cgroup_root))


def _capped(affinity, quota):
    return max(1, affinity if quota is None else min(affinity, math.ceil(quota)))


def other_load(loadavg=LOADAVG, looks=5, interval=0.01):
    """The runnable load of other programs: the smaller of the 1-minute load average and the median number of
    threads runnable besides this one over ``looks`` reads of /proc/loadavg; 0.0 where it cannot be read."""
    averages, runnable = [], []
    for i in range(looks):
        text = read_text(loadavg)
        try:
            fields = text.split()
            averages.append(float(fields[0]))
            runnable.append(int(fields[3].split("/")[0]) - 1)  # "running/total" counts the thread reading it
        except (AttributeError, IndexError, ValueError):
            return 0.0
        if i + 1 < looks:
            time.sleep(interval)
    return max(0.0, min(averages[-1], statistics.median(runnable)))


def env_threads(environ=None):
    """(variable, count) of the first of OMP_NUM_THREADS, MKL_NUM_THREADS that is set, or None. A value that is
    not a positive whole number is a UserError (OpenMP's nested form ``4,2`` gives 4)."""
    environ = os.environ if environ is None else environ
    for name in ENV_VARIABLES:
        text = environ.get(name, "").strip()
        if not text:
            continue
        first = text.split(",")[0].strip()
        if not first.isdigit() or int(first) < 1:
            raise UserError(f"{name}={text!r} is not a positive whole number of threads; set it to e.g. 1, "
                            f"unset it, or give --threads N")
        return name, int(first)
    return None


def thread_choice(requested=0, jobs=1, environ=None, cgroup_root=CGROUP_ROOT, loadavg=LOADAVG, affinity=None, machine=None,
                  looks=5):
    """(count, how it was chosen) by the rules of this module's docstring; ``jobs``: processes sharing the CPUs.
    The other arguments stand for what is read from the system: the environment, the cgroup folder,
    /proc/loadavg, the affinity mask's CPU count and the machine's (os.cpu_count())."""
    if requested:
        return requested, "--threads"
    given = env_threads(environ)
    if given:
        return given[1], f"{given[0]}={given[1]}"
    affinity = affinity_cpus() if affinity is None else affinity
    machine = (os.cpu_count() or affinity) if machine is None else machine
    quota = cgroup_cpus(cgroup_root)
    cpus = _capped(affinity, quota)
    whole_machine = quota is None and affinity >= machine
    load = other_load(loadavg, looks) if whole_machine else 0.0
    count = max(1, max(1, cpus - math.floor(load + 0.5)) // max(1, jobs))
    how = (f"auto: {cpus} usable CPUs, " + (f"other load {load:.1f}" if whole_machine else "a share of the machine: its load not counted")
           + (f", {jobs} jobs" if jobs > 1 else ""))
    return count, how


def local_jobs(environ=None):
    """Processes of this job on this machine: torchrun's LOCAL_WORLD_SIZE, else 1."""
    text = (os.environ if environ is None else environ).get("LOCAL_WORLD_SIZE", "")
    return int(text) if text.isdigit() and int(text) > 0 else 1


_state = {"count": None, "how": None, "interop": False}


def apply_threads(count, how="set by the caller"):
    """Make PyTorch compute with ``count`` threads (intra-op; the inter-op pool too, where it is still legal:
    before any inter-op work, once per process). Later ``setup_threads(0)`` calls in this process keep it."""
    import torch

    torch.set_num_threads(count)
    if not _state["interop"]:
        _state["interop"] = True
        try:
            torch.set_num_interop_threads(count)
        except RuntimeError:  # inter-op work already started in this process: its pool stays as it is
            pass
    _state.update(count=count, how=how)
    return count


def setup_threads(requested=0, jobs=None):
    """Choose (once per process, see the module docstring) and apply the thread count; returns it.
    ``jobs`` None: LOCAL_WORLD_SIZE."""
    if not requested and _state["count"] is not None:
        return apply_threads(_state["count"], _state["how"])
    count, how = thread_choice(requested, local_jobs() if jobs is None else jobs)
    return apply_threads(count, how)


def describe_threads():
    """'N CPU threads (how chosen)' of this process, for log lines."""
    import torch

    count = torch.get_num_threads()
    how = _state["how"] if _state["count"] == count else "as the process had them"
    return f"{count} CPU thread{'s' if count != 1 else ''} ({how})"
