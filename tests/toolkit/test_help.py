"""toolkit.errors.HelpFormatter: every flag's help ends with its default (or says it is required)."""
import argparse

from toolkit.errors import HelpFormatter as DefaultsHelpFormatter


def undocumented_defaults(parser):
    """Flags whose --help says neither their default nor that they are required."""
    formatter = parser._get_formatter()
    return [action.option_strings[-1] for action in parser._actions
            if action.option_strings and action.default is not argparse.SUPPRESS
            and not any(word in formatter._get_help_string(action) for word in ("default", "(required)"))]


def test_formatter_adds_defaults_once():
    p = argparse.ArgumentParser(formatter_class=DefaultsHelpFormatter, description="line one\n  kept as written")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate")
    p.add_argument("--out", required=True, help="where to write")
    p.add_argument("--root", help="folder (default: the repository)")
    p.add_argument("--cache", help="cache folder")
    text = " ".join(p.format_help().split())
    assert "learning rate (default: 0.01)" in text and "where to write (required)" in text
    assert "(default: the repository)" in text and text.count("default") == 3 and "cache folder (default: none)" in text
    assert "line one\n  kept as written" in p.format_help()
    assert undocumented_defaults(p) == []
    p.formatter_class = argparse.HelpFormatter
    assert undocumented_defaults(p) == ["--lr", "--out", "--cache"]
