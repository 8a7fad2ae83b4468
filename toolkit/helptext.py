"""--help that shows every flag's default (and says which flags are required)."""
import argparse


class DefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and ends each flag's help with its default, unless the help
    already names it; required flags say ``(required)`` instead."""

    def _get_help_string(self, action):
        help = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS or "default" in help:
            return help
        if action.required:
            return help + " (required)"
        return help + (" (default: none)" if action.default is None else " (default: %(default)s)")
