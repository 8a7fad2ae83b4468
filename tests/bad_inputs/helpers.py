"""What every bad-input test checks: exit code 2, one line on stderr naming the culprit, no traceback,
and nothing already written changed."""
import hashlib
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_main(main, argv, capsys):
    """Call a script's ``main(argv)`` in-process; return (exit code, stdout, stderr)."""
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_script(script, *args, cwd=REPO, timeout=300, env=None):
    """Run ``python <script> args`` from the repository in a subprocess; return the CompletedProcess."""
    return subprocess.run([sys.executable, os.path.join(REPO, script), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


# runs a script as ``python <script> args`` does, in a process whose files cannot grow past a size limit
_FILE_LIMITED = """
import os, resource, runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG instead of killing
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.argv = sys.argv[2:]
sys.path[0] = os.path.dirname(sys.argv[0])
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_script_on_a_full_disk(script, limit, *args, cwd=REPO, timeout=300, env=None):
    """``run_script`` in a process that cannot write a file past ``limit`` bytes (RLIMIT_FSIZE): every
    write beyond it fails with ``OSError: File too large`` (EFBIG), as writes to a full disk fail."""
    env = {**(os.environ if env is None else env), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", _FILE_LIMITED, str(limit), os.path.join(REPO, script), *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(code, err, *culprits):
    """Exit 2, exactly one line ``error: ...`` on stderr that names every culprit, and no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, f"exit code {code}, stderr: {err}"
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for culprit in culprits:
        assert str(culprit) in lines[0], f"{culprit!r} not named in: {lines[0]}"
    return lines[0]


def snapshot(root):
    """{relative path: sha1} of every file under ``root`` (hidden files included), to prove nothing changed."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, root)] = hashlib.sha1(f.read()).hexdigest()
    return files
