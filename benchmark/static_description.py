"""What ``list`` shows of a registry entry, read from its module's source without importing it.

A lazily declared entry (``"module:attribute"``, see
:meth:`benchmark.registry.Registry.add_lazy`) is described from the module's syntax tree: the
keyword parameters of the class's ``__init__`` (or the function) with their defaults, the first
paragraph of its docstring and a ``slow_note`` class attribute. Only what the source states
plainly is read: a default that is not a literal, a base class defined in another module, or a
docstring that is missing gives ``None``, and the caller imports the module instead. A test
checks, for every built-in entry, that this equals what the imported factory says.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Description:
    """Keyword parameters with defaults, the docstring's first paragraph, the slow note."""

    parameters: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    slow_note: str = ""


class _Unclear(Exception):
    """The source does not state it plainly: import the module instead."""


def static_description(target: str) -> Description | None:
    """The :class:`Description` of ``"module:attribute"`` from source, or None when unclear."""
    module_name, _, attribute = target.partition(":")
    try:
        definitions, _ = _module(module_name)
        node = definitions.get(attribute)
        if node is None:
            return None
        if isinstance(node, ast.FunctionDef):
            return Description(_parameters(node, skip_first=False), _summary(node), "")
        return _describe_class(node, module_name)
    except (_Unclear, OSError, SyntaxError, ValueError, ImportError):
        return None


#: Base classes that define neither ``__init__`` nor ``slow_note``.
_TERMINAL_BASES = {"ABC", "object", "Generic"}


@functools.lru_cache(maxsize=256)
def _module(name: str) -> tuple[dict[str, ast.AST], dict[str, str]]:
    """Top-level classes and functions of module ``name``, and where its ``from X import Y``
    names come from (``Y -> X``), read from its source."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise _Unclear(f"no Python source for {name}")
    with open(spec.origin, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    definitions = {
        node.name: node for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef))
    }
    imported = {
        alias.asname or alias.name: node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
        for alias in node.names
    }
    return definitions, imported


def _describe_class(node: ast.ClassDef, module_name: str) -> Description:
    chain = _class_chain(node, module_name)
    init = next((m for c in chain for m in c.body if _is_function(m, "__init__")), None)
    parameters = _parameters(init, skip_first=True) if init is not None else {}
    slow_note = next((v for c in chain if (v := _class_string(c, "slow_note")) is not None), "")
    return Description(parameters, _summary(node), slow_note)


def _class_chain(node: ast.ClassDef, module_name: str) -> list[ast.ClassDef]:
    """``node`` and its base classes in Python's method resolution order (C3), following
    ``from module import Base`` into other modules' sources."""
    return [cls for _, cls in _linearize((module_name, node.name), node, {})]


_Key = tuple[str, str]  # (module, class name)


def _linearize(
    key: _Key, node: ast.ClassDef, seen: dict[_Key, list[tuple[_Key, ast.ClassDef]]]
) -> list[tuple[_Key, ast.ClassDef]]:
    if key in seen:
        return seen[key]
    bases = []
    for base in node.bases:
        if isinstance(base, ast.Name) and base.id in _TERMINAL_BASES:
            continue
        if not isinstance(base, ast.Name):
            raise _Unclear(f"base {ast.unparse(base)} of {node.name}")
        bases.append(_resolve(key[0], base.id))
    sequences = [_linearize(k, n, seen) for k, n in bases] + [bases]
    order = [(key, node)]
    while any(sequences):
        for sequence in (s for s in sequences if s):
            head = sequence[0]
            if not any(head[0] in [k for k, _ in s[1:]] for s in sequences):
                break
        else:
            raise _Unclear(f"no consistent method resolution order for {node.name}")
        order.append(head)
        sequences = [[item for item in s if item[0] != head[0]] for s in sequences]
    seen[key] = order
    return order


def _resolve(module: str, name: str) -> tuple[_Key, ast.ClassDef]:
    """The class ``name`` as seen from ``module``: defined there or imported by name."""
    definitions, imported = _module(module)
    if name not in definitions:
        if name not in imported:
            raise _Unclear(f"base class {name} is not found")
        module = imported[name]
        definitions = _module(module)[0]
    found = definitions.get(name)
    if not isinstance(found, ast.ClassDef):
        raise _Unclear(f"base {name} is not a class")
    return (module, name), found


def _is_function(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.FunctionDef) and node.name == name


def _parameters(function: ast.FunctionDef, skip_first: bool) -> dict[str, Any]:
    args = function.args
    if args.vararg is not None or args.kwarg is not None:
        raise _Unclear("*args or **kwargs")
    positional = [*args.posonlyargs, *args.args][1 if skip_first else 0 :]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    found: dict[str, Any] = {}
    for arg, default in zip(positional, defaults):
        if arg in args.posonlyargs:
            continue
        found[arg.arg] = _literal(default)
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        found[arg.arg] = _literal(default)
    return found


def _literal(node: ast.expr | None) -> Any:
    if node is None:
        raise _Unclear("a parameter without a default")
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise _Unclear(f"default {ast.unparse(node)} is not a literal") from None


def _summary(node: ast.ClassDef | ast.FunctionDef) -> str:
    doc = ast.get_docstring(node)
    if doc is None:
        raise _Unclear("no docstring of its own")
    return doc.strip().split("\n\n")[0]


def _class_string(node: ast.ClassDef, name: str) -> str | None:
    for statement in node.body:
        targets = (
            statement.targets
            if isinstance(statement, ast.Assign)
            else [statement.target]
            if isinstance(statement, ast.AnnAssign) and statement.value is not None
            else []
        )
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            value = _literal(statement.value)
            if not isinstance(value, str):
                raise _Unclear(f"{name} is not a string")
            return value
    return None
