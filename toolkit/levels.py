"""The feature levels and their folder-name suffixes: one place for the names ``utt``/``frm`` and ``-UTT``/``-FRM``.

    utt   one vector per clip, ``(C,)``; folder names end in ``-UTT``
    frm   one row per frame, ``(T, C)`` with T varying; folder names end in ``-FRM``
"""
UTT, FRM = "utt", "frm"
SUFFIXES = {UTT: "-UTT", FRM: "-FRM"}
LEVELS = tuple(SUFFIXES)


def folder_name(stem, level):
    """``hubert`` + ``frm`` → ``hubert-FRM``."""
    return stem + SUFFIXES[level]


def level_from_name(name, default=None):
    """The level a name's suffix says (any letter case), else ``default``."""
    upper = name.upper()
    for level, suffix in SUFFIXES.items():
        if upper.endswith(suffix):
            return level
    return default
