"""One error type for bad user input, reported as a single line by every script."""
import functools
import sys


class UserError(Exception):
    """Bad input the user can fix: the message names the file/key/sample and says how to fix it."""


def cli(main):
    """Decorate a script's ``main``: a UserError becomes one line on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper
