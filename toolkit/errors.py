"""One error type for bad user input, reported as a single line by every script."""
import argparse
import errno
import functools
import os
import signal
import sys


class UserError(Exception):
    """Bad input the user can fix: the message names the file/key/sample and says how to fix it."""


# errno → what to do when writing fails with it
_WRITE_FIXES = {
    errno.ENOSPC: "free some space and run again",
    errno.EDQUOT: "free some space (or raise the quota) and run again",
    errno.EFBIG: "the file is over the size limit of this shell (ulimit -f) or of the file system; raise it or write elsewhere",
    errno.EACCES: "check the folder's permissions or write elsewhere",
    errno.EPERM: "check the folder's permissions or write elsewhere",
    errno.EROFS: "the file system is read-only; write elsewhere",
}
FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # a write that ran out of room


class WriteError(UserError):
    """Writing ``path`` failed (a full disk, a file size limit, no permission): one line naming the file, the
    cause and what to do. ``code`` is the errno when known."""

    def __init__(self, path, code=None, detail=None):
        self.path, self.code, self.detail = path, code, detail
        cause = os.strerror(code) if code else (detail or "the write failed")
        fix = _WRITE_FIXES.get(code, "check the path and its folders" if code else "check the free space and the path")
        super().__init__(f"cannot write {path} ({cause}); {fix}")

    def moved(self, path):
        """The same failure, naming ``path`` (where the file was headed) instead."""
        return WriteError(path, self.code, self.detail)


def cli(main):
    """Decorate a script's ``main``: a UserError becomes one line on stderr and exit code 2, and so does an
    OSError of a full disk or a file size limit; Ctrl-C prints ``interrupted`` and exits 130 (the shell's code
    for SIGINT), without a traceback.

    SIGTERM (``kill``, a scheduler's time limit) exits like Ctrl-C, so ``finally`` blocks remove
    temporary files and staging folders instead of leaving them behind."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except OSError as err:
            if err.errno not in FULL_DISK:
                raise
            print(f"error: {WriteError(err.filename or 'a file', err.errno)}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and ends each flag's help with its default, unless the help
    already names it; required flags say ``(required)`` instead."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS or "default" in text:
            return text
        if action.required:
            return text + " (required)"
        return text + (" (default: none)" if action.default is None else " (default: %(default)s)")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the toolkit's error style: a bad flag value is one ``error:`` line (exit 2) instead of
    the usage block, and ``--help`` shows every default."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UserError(f"{self.prog}: {message} (see --help)")


def bounded(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse ``type`` that parses ``kind`` and refuses NaN, inf and values outside [low, high]
    (``low_open``/``high_open``: the bound itself is excluded)."""
    import math

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            lo = "" if low is None else f"{'(' if low_open else '['}{low}"
            hi = "" if high is None else f"{high}{')' if high_open else ']'}"
            where = f"in {lo}, {hi}" if lo and hi else (f"{'>' if low_open else '>='} {low}" if lo else f"{'<' if high_open else '<='} {high}")
            raise argparse.ArgumentTypeError(f"must be {where}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def is_plain_name(text):
    """A name usable as one file or folder name: not empty, no folder separator, no leading dot (so not ..),
    no control character such as a newline."""
    return bool(text) and "/" not in text and "\\" not in text and not text.startswith(".") and text.isprintable()


def dataset_name(text):
    """An argparse ``type`` for a split name: a file name without folders (it becomes <train_lst>/<name>.npy)."""
    if not is_plain_name(text):
        raise argparse.ArgumentTypeError(f"{text!r} must be a plain name such as seed0_pl (no folders, no leading dot)")
    return text


def did_you_mean(name, known, n=1):
    """``"did you mean 'a' or 'b'?"`` for the up to ``n`` known names closest to ``name`` (letter case
    ignored), or ``""`` when none is close: the hint after an unknown feature, flag or key."""
    import difflib

    lowered = {str(k).lower(): k for k in known}
    close = [lowered[k] for k in difflib.get_close_matches(str(name).lower(), lowered, n=n)]
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else ""

