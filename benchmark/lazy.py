"""Modules imported on first use, so that commands which never compute (``--help``, ``list``)
do not pay for torch, kornia or OpenCV.

>>> json = lazy_module("json")
>>> json.dumps([1])
'[1]'
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _Deferred:
    """Stands for module ``name`` and imports it (a plain, complete import) the first time one
    of its attributes is read; nothing is put in ``sys.modules`` before that."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attribute)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<module {self._name!r} ({state})>"


def lazy_module(name: str) -> Any:
    """Module ``name``, imported when one of its attributes is first read."""
    return _Deferred(name)
