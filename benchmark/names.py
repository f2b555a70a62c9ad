"""File-name slugs of specs: run folders, saved images and exports name files after them."""

from __future__ import annotations

import re


def slugify(text: str) -> str:
    """A file-name-safe version of a spec (``lines:max_lines=8`` -> ``lines_max_lines-8``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.replace("=", "-")).strip("_") or "x"
