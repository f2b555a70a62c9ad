"""Read the plain values of a pickle without running it (for CIFAR-10 batches).

``pickle`` executes a small program; even a restricted unpickler that only allows numpy's array
reconstruction lets a crafted file build arrays of object dtype (whose bytes are then read as
pointers) or arrays whose size disagrees with the bytes in the file. This module never calls
anything the file names. It walks the opcodes with :func:`pickletools.genops` (stdlib) and
builds only ``dict``, ``list``, ``tuple``, ``int``, ``bool``, ``None``, ``str`` and ``bytes``.
A call the file asks for (opcode ``REDUCE``, plus ``BUILD`` for its state) becomes an inert
:class:`Call` record for the caller to inspect; the one exception is ``_codecs.encode(text,
"latin1")``, which Python 3 writes for every ``bytes`` value at protocol 2, and which is
evaluated here because it only turns text into bytes. Hand-written because no library reads a
pickle's data without executing it.
"""

from __future__ import annotations

import pickletools
from dataclasses import dataclass
from typing import Any

#: Globals a file may name; anything else is refused at its ``GLOBAL`` opcode.
ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)
_LATIN1 = ("latin1", "latin-1", "iso-8859-1", "iso8859-1")


class PickleFormatError(ValueError):
    """The pickle uses something a plain data file does not need, or is malformed."""


@dataclass(frozen=True)
class Global:
    """A global the pickle names (never imported)."""

    module: str
    name: str


@dataclass(eq=False)
class Call:
    """A call the pickle asks for, not made: ``func(*args)`` then ``__setstate__(state)``."""

    func: Global
    args: tuple
    state: Any = None
    has_state: bool = False


class _Mark:
    """The stack marker of the ``MARK`` opcode."""


_MARK = _Mark()
_STRING_OPS = {"SHORT_BINSTRING", "BINSTRING"}  # Python 2 ``str``: raw bytes (read as latin-1)
_BYTES_OPS = {"SHORT_BINBYTES", "BINBYTES", "BINBYTES8"}
_TEXT_OPS = {"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
_INT_OPS = {"BININT", "BININT1", "BININT2"}
_PUT_OPS = {"BINPUT", "LONG_BINPUT"}
_GET_OPS = {"BINGET", "LONG_BINGET"}
_IGNORED_OPS = {"PROTO", "FRAME"}
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_EMPTY = {"EMPTY_DICT": dict, "EMPTY_LIST": list}
_TUPLE_SIZES = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}


def read_plain_pickle(data: bytes) -> Any:
    """The value pickled in ``data``, built from plain types and inert :class:`Call` records.

    Raises :class:`PickleFormatError` for a truncated or malformed pickle, an opcode outside
    the plain-data set, a global outside :data:`ALLOWED_GLOBALS`, or trailing bytes. The
    memory used is bounded by a small multiple of ``len(data)``.
    """
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    budget = [len(data)]  # bytes that _codecs.encode may still produce (memo reuse is free)
    end = None
    try:
        for opcode, arg, pos in pickletools.genops(data):
            name = opcode.name
            if name == "STOP":
                end = pos + 1
                break
            _step(name, arg, pos, stack, memo, budget)
    except PickleFormatError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, UnicodeError) as exc:
        # genops raises ValueError on truncation and unknown opcodes
        raise PickleFormatError(
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        ) from exc
    if end is None:
        raise PickleFormatError("pickle exhausted before its STOP opcode")
    if end != len(data):
        raise PickleFormatError(f"{len(data) - end} bytes after the end of the pickle")
    if len(stack) != 1 or stack[0] is _MARK:
        raise PickleFormatError("malformed pickle (stack does not hold one value at STOP)")
    return stack[0]


def _pop_mark(stack: list[Any], pos: int) -> list[Any]:
    """Pop everything above the topmost MARK (and the MARK itself)."""
    for depth in range(len(stack) - 1, -1, -1):
        if stack[depth] is _MARK:
            items = stack[depth + 1 :]
            del stack[depth:]
            return items
    raise PickleFormatError(f"no MARK on the stack at byte {pos}")


def _pop(stack: list[Any], pos: int) -> Any:
    if not stack or stack[-1] is _MARK:
        raise PickleFormatError(f"stack underflow at byte {pos}")
    return stack.pop()


def _top(stack: list[Any], pos: int) -> Any:
    if not stack or stack[-1] is _MARK:
        raise PickleFormatError(f"nothing to memoize at byte {pos}")
    return stack[-1]


def _key(key: Any, pos: int) -> str | bytes | int:
    if not isinstance(key, (str, bytes, int)) or isinstance(key, bool):
        raise PickleFormatError(f"dict key of type {type(key).__name__} at byte {pos}")
    return key


def _step(
    name: str, arg: Any, pos: int, stack: list[Any], memo: dict[int, Any], budget: list[int]
) -> None:
    """Apply one opcode to ``stack``/``memo``; refuse anything outside the plain-data set."""
    if name in _IGNORED_OPS:
        return
    if name == "MARK":
        stack.append(_MARK)
    elif name in _CONSTANTS:
        stack.append(_CONSTANTS[name])
    elif name in _INT_OPS:
        stack.append(int(arg))
    elif name in _STRING_OPS:
        stack.append(arg.encode("latin-1"))
    elif name in _BYTES_OPS:
        stack.append(bytes(arg))
    elif name in _TEXT_OPS:
        stack.append(str(arg))
    elif name in _EMPTY:
        stack.append(_EMPTY[name]())
    elif name == "EMPTY_TUPLE":
        stack.append(())
    elif name in _TUPLE_SIZES:
        items = [_pop(stack, pos) for _ in range(_TUPLE_SIZES[name])]
        stack.append(tuple(reversed(items)))
    elif name == "TUPLE":
        stack.append(tuple(_pop_mark(stack, pos)))
    elif name in ("APPEND", "APPENDS"):
        items = [_pop(stack, pos)] if name == "APPEND" else _pop_mark(stack, pos)
        target = stack[-1] if stack else None
        if not isinstance(target, list):
            raise PickleFormatError(f"{name} to a {type(target).__name__} at byte {pos}")
        target.extend(items)
    elif name in ("SETITEM", "SETITEMS"):
        if name == "SETITEM":
            value = _pop(stack, pos)
            items = [_pop(stack, pos), value]
        else:
            items = _pop_mark(stack, pos)
        target = stack[-1] if stack else None
        if not isinstance(target, dict) or len(items) % 2:
            raise PickleFormatError(f"malformed {name} at byte {pos}")
        for k in range(0, len(items), 2):
            target[_key(items[k], pos)] = items[k + 1]
    elif name in _PUT_OPS:
        memo[int(arg)] = _top(stack, pos)
    elif name == "MEMOIZE":
        memo[len(memo)] = _top(stack, pos)
    elif name in _GET_OPS:
        if int(arg) not in memo:
            raise PickleFormatError(f"memo entry {arg} used before it is set, at byte {pos}")
        stack.append(memo[int(arg)])
    elif name in ("GLOBAL", "STACK_GLOBAL"):
        if name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
        else:
            attr, module = _pop(stack, pos), _pop(stack, pos)
            if not isinstance(module, str) or not isinstance(attr, str):
                raise PickleFormatError(f"malformed STACK_GLOBAL at byte {pos}")
        if (module, attr) not in ALLOWED_GLOBALS:
            raise PickleFormatError(f"unexpected object {module}.{attr} at byte {pos}")
        stack.append(Global(module, attr))
    elif name == "REDUCE":
        args, func = _pop(stack, pos), _pop(stack, pos)
        if not isinstance(func, Global) or not isinstance(args, tuple):
            raise PickleFormatError(f"malformed REDUCE at byte {pos}")
        stack.append(_reduce(func, args, pos, budget))
    elif name == "BUILD":
        state = _pop(stack, pos)
        target = stack[-1] if stack else None
        if not isinstance(target, Call) or target.has_state:
            raise PickleFormatError(f"BUILD on a {type(target).__name__} at byte {pos}")
        target.state, target.has_state = state, True
    else:
        raise PickleFormatError(f"unexpected pickle opcode {name} at byte {pos}")


def _reduce(func: Global, args: tuple, pos: int, budget: list[int]) -> Any:
    """``_codecs.encode(text, 'latin1')`` evaluated; any other call kept as a :class:`Call`."""
    if (func.module, func.name) != ("_codecs", "encode"):
        return Call(func, args)
    if (
        len(args) != 2
        or not isinstance(args[0], str)
        or not isinstance(args[1], str)
        or args[1].lower() not in _LATIN1
    ):
        raise PickleFormatError(f"unexpected _codecs.encode arguments at byte {pos}")
    budget[0] -= len(args[0])
    if budget[0] < 0:
        raise PickleFormatError(f"the pickle expands to more bytes than it holds, at byte {pos}")
    try:
        return args[0].encode("latin-1")
    except UnicodeEncodeError as exc:
        raise PickleFormatError(f"text that is not latin-1 at byte {pos}") from exc
