"""Shared helpers: user-facing errors, atomic file output, split dicts, metrics and plots."""
