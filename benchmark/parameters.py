"""Types of registry parameters: a spec's text values converted by the constructor's annotations.

``name:key=value`` gives every value as text. Only the entry knows what a parameter is, so the
text is converted by the annotation of that parameter in the registered constructor (or, with
no annotation, by the type of its default), never by what the text looks like: ``path=007``
stays ``"007"`` and ``path=2024_01`` stays ``"2024_01"``, while ``radius=5`` becomes ``5``.

==========================  =====================================================================
annotation                  accepted text
==========================  =====================================================================
``str``, ``Path``           anything, unchanged (also in a union: text wins over every other type)
``bool``                    ``true`` or ``false`` (any case)
``int``                     decimal digits with an optional sign (``5.0``, ``1e3``, ``2_0``: no)
``float``                   a decimal or exponent number, ``inf``, ``nan``
``None`` (in a union)       ``none`` or ``null`` (any case)
``Literal[...]``            the text of one of its values
anything else, or unknown   the text, unchanged (the constructor decides)
==========================  =====================================================================
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import types
import typing
from collections.abc import Callable
from typing import Any

#: Integers as written by people: digits with an optional sign (Python's int() also takes
#: ``2_0`` and surrounding blanks, which nobody means in a parameter).
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE
)
_NONE = ("none", "null")
_BOOLS = {"true": True, "false": False}
#: Annotation text (when it cannot be evaluated) -> type, for the simple cases.
_NAMED: dict[str, type] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "None": type(None),
    "Path": str,
    "pathlib.Path": str,
}

#: What a parameter accepts: a tuple of types and literal values, or None when unknown.
Kinds = tuple[Any, ...] | None


@functools.lru_cache(maxsize=1024)
def _signature(factory: Callable[..., Any]) -> inspect.Signature:
    """The signature with annotations evaluated where the module lets them be."""
    try:
        return inspect.signature(factory, eval_str=True)
    except Exception:  # a name only imported for type checkers: keep the annotation text
        return inspect.signature(factory)


def _flatten(annotation: Any) -> list[Any] | None:
    """The alternatives of ``annotation`` (types, or ``("literal", value)`` pairs)."""
    if isinstance(annotation, str):
        parts = [p.strip() for p in annotation.split("|")]
        if all(p in _NAMED for p in parts):
            return [_NAMED[p] for p in parts]
        return None
    if annotation is None or annotation is type(None):
        return [type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        found: list[Any] = []
        for arg in typing.get_args(annotation):
            inner = _flatten(arg)
            if inner is None:
                return None
            found += inner
        return found
    if origin is typing.Literal:
        return [("literal", value) for value in typing.get_args(annotation)]
    if isinstance(annotation, type):
        if issubclass(annotation, (str, os.PathLike)):
            return [str]
        if annotation in (bool, int, float):
            return [annotation]
    return None


def kinds(parameter: inspect.Parameter) -> Kinds:
    """What text value ``parameter`` accepts (see the module table); None: unknown."""
    annotation = parameter.annotation
    if annotation is inspect.Parameter.empty or annotation is Any or annotation == "Any":
        default = parameter.default
        if isinstance(default, (bool, int, float, str)):
            return (type(default),)
        return None
    found = _flatten(annotation)
    return tuple(found) if found else None


def convert(text: str, accepted: Kinds) -> Any:
    """``text`` as the type ``accepted`` names; ``ValueError`` saying what was expected."""
    if accepted is None or str in accepted:
        return text
    literals = [value for kind in accepted if isinstance(kind, tuple) for value in kind[1:]]
    for value in literals:
        if text == (str(value).lower() if isinstance(value, bool) else str(value)):
            return value
    lowered = text.lower()
    if type(None) in accepted and lowered in _NONE:
        return None
    if bool in accepted and lowered in _BOOLS:
        return _BOOLS[lowered]
    if int in accepted and _INT.fullmatch(text):
        return int(text)
    if float in accepted and _FLOAT.fullmatch(text):
        return float(text)
    wanted = [f"{value!r}" for value in literals]
    wanted += [
        label
        for kind, label in (
            (bool, "true or false"),
            (int, "an integer"),
            (float, "a number"),
            (type(None), "none"),
        )
        if kind in accepted
    ]
    raise ValueError(f"expected {' or '.join(wanted) or 'another value'}, got {text!r}")


def typed_parameters(factory: Callable[..., Any], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with every text value converted for ``factory``'s parameter of that name.

    Values that are not text (set by code, not typed by a user) and names the factory does not
    take are returned unchanged. A text that does not fit is a ``ValueError`` naming the key.
    """
    parameters = _signature(factory).parameters
    out = {}
    for key, value in values.items():
        parameter = parameters.get(key)
        if isinstance(value, str) and parameter is not None:
            try:
                value = convert(value, kinds(parameter))
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        out[key] = value
    return out
