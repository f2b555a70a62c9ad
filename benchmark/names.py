"""File-name slugs of specs: run folders, saved images and exports name files after them.

:func:`slugify` is one-to-one: two different specs never share a slug. A plain registry name
(``telea``, ``lines``) is its own slug; any other text gets a readable part (at most
:data:`READABLE_CHARS` characters) and a short hash of the whole text, so ``folder:a/b`` and
``folder:a_b`` get two folders and a 300-character path still fits a file name.
"""

from __future__ import annotations

import hashlib
import re

#: Longest readable part of a hashed slug (a slug is then at most 59 characters long).
READABLE_CHARS = 48
#: Hex digits of the spec's SHA-256 in a hashed slug (40 bits: collisions need ~10^6 specs).
HASH_CHARS = 10
#: Text that is its own slug: a registry name of ordinary length.
_PLAIN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{READABLE_CHARS - 1}}}")
#: The end of a hashed slug: plain text that ends so is hashed too, so the two never meet.
_HASHED_END = re.compile(rf".*-[0-9a-f]{{{HASH_CHARS}}}")


def readable(text: str) -> str:
    """The lossy, human-readable part of a slug (``lines:max_lines=8`` -> ``lines_max_lines-8``).

    This is the slug rule of inpaint-bench 0.x before slugs were made unique: folders of
    saved images and exports made then are named by it (see :func:`legacy_slug`).
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.replace("=", "-")).strip("_") or "x"


def legacy_slug(text: str) -> str:
    """The folder name older versions gave ``text`` (not unique: ``a/b`` and ``a_b`` share it)."""
    return readable(text)


def slugify(text: str) -> str:
    """A unique, file-name-safe, length-limited name for a spec.

    >>> slugify("telea")
    'telea'
    >>> slugify("lines:max_lines=8")
    'lines_max_lines-8-1ab3c7554a'
    >>> slugify("folder:a/b") != slugify("folder:a_b")
    True
    """
    if (
        _PLAIN.fullmatch(text)
        and text.strip("._-") == text
        and ".." not in text
        and not _HASHED_END.fullmatch(text)
    ):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]
    part = readable(text)[:READABLE_CHARS].strip("._-") or "x"
    return f"{part}-{digest}"
