"""Fingerprints: short texts that change whenever what decides a record's value changes.

Every record carries the fingerprints of its method, its mask generator and its data set, so a
rerun never reuses a record made by other code, other weights, other parameters or other files.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path
from typing import Any


def source_hash(obj: object, length: int = 12) -> str:
    """SHA-256 (first ``length`` hex digits) of the source file defining ``obj``'s class.

    ``"unknown"`` when there is no file to read (a class built in a REPL or loaded from a zip).
    """
    cls = obj if inspect.isclass(obj) else type(obj)
    try:
        source = Path(inspect.getsourcefile(cls) or "").read_bytes()
    except (OSError, TypeError):
        return "unknown"
    return hashlib.sha256(source).hexdigest()[:length] if source else "unknown"


def parameters_hash(params: dict[str, Any], length: int = 12) -> str:
    """SHA-256 (first ``length`` hex digits) of ``params`` as canonical JSON (repr for others)."""
    text = json.dumps(params, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def public_state(obj: object) -> dict[str, Any]:
    """``obj``'s public instance attributes (its resolved parameters, by convention)."""
    return {k: v for k, v in sorted(vars(obj).items()) if not k.startswith("_")}
