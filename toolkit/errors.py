"""One error type for bad user input, reported as a single line by every script."""
import functools
import signal
import sys


class UserError(Exception):
    """Bad input the user can fix: the message names the file/key/sample and says how to fix it."""


def cli(main):
    """Decorate a script's ``main``: a UserError becomes one line on stderr and exit code 2.

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

    return wrapper


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)
