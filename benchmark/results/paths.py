"""Paths read from results files, confined to the folder they belong to.

A manifest, a leaderboard or a run folder is data that anyone may have edited: a path in it is
only a name inside its folder. :func:`confined` turns such a name into a path and refuses one
that is absolute, climbs out with ``..``, or passes through a symbolic link that leads outside
the folder (a linked mask folder, a linked image), so nothing is read, written or deleted
outside the folder the file describes.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from benchmark.errors import DataError


def is_within(path: Path, root: Path) -> bool:
    """Whether ``path``, with every symbolic link resolved, lies inside ``root`` (resolved)."""
    try:
        resolved = path.resolve()
        base = root.resolve()
    except (OSError, RuntimeError):  # a link loop
        return False
    return resolved == base or base in resolved.parents


def confined(root: str | Path, name: object, what: str) -> Path:
    """``root / name`` for a relative ``name`` from a results file, checked to stay in ``root``.

    Refused with a one-line :class:`DataError` naming ``what`` (the file it came from): a name
    that is not text, empty, absolute (also ``C:\\...``), holds ``..`` or a NUL, or that leads
    outside ``root`` through a symbolic link (resolved, then checked for containment).

    >>> confined("/exports/a", "lines/000000_mask.png", "manifest").as_posix()
    '/exports/a/lines/000000_mask.png'
    >>> confined("/exports/a", "/etc/passwd", "manifest")
    Traceback (most recent call last):
    ...
    benchmark.errors.DataError: manifest: path '/etc/passwd' is not inside its folder /exports/a
    """
    root = Path(root)
    text = name if isinstance(name, str) else None
    parts = PurePosixPath(text).parts if text else ()
    if (
        not text
        or "\x00" in text
        or PurePosixPath(text).is_absolute()
        or PureWindowsPath(text).is_absolute()
        or PureWindowsPath(text).drive
        or ".." in parts
        or ".." in PureWindowsPath(text).parts
    ):
        raise DataError(f"{what}: path {name!r} is not inside its folder {root}")
    path = root.joinpath(*parts)
    if not is_within(path, root):
        raise DataError(
            f"{what}: path {text!r} leads outside its folder {root} (through a symbolic link)"
        )
    return path
