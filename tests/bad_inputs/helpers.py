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
