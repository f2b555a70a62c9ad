"""One generic registry of named entries, instantiated once per kind.

Entries are callables (usually classes) that build the object from keyword parameters.
Built-in entries register themselves with a decorator when their package is imported;
outside packages add entries through Python entry points, loaded lazily on first use.

>>> COLOURS = Registry("colour")
>>> @COLOURS.register("red", "rouge")
... def red(shade: int = 1) -> str:
...     return f"red{shade}"
>>> COLOURS.names()
['red']
>>> COLOURS.build(parse_spec("rouge:shade=3"))
'red3'
>>> COLOURS.get("rde")
Traceback (most recent call last):
...
benchmark.errors.UnknownNameError: unknown colour 'rde' (did you mean 'red'?); valid colours: red
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.util
import inspect
import re
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

from benchmark.errors import UnknownNameError, UsageError
from benchmark.parameters import typed_parameters
from benchmark.static_description import Description, static_description

T = TypeVar("T")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

#: The folder holding the ``benchmark`` package and its built-in ``methods`` and ``masks``.
HARNESS_ROOT = Path(__file__).resolve().parent.parent
#: Shown by ``list`` as the origin of entries that ship with the harness.
BUILTIN = "built-in"


class PluginWarning(UserWarning):
    """A plug-in could not be used as declared (broken, or its name is taken)."""


def warn(message: str) -> None:
    """Warn about a plug-in; the CLI prints these as one ``warning: ...`` line each."""
    warnings.warn(message, PluginWarning, stacklevel=3)


def import_builtin(module: str) -> ModuleType:
    """Import ``module`` from beside the harness, whatever the working directory holds.

    ``python -m`` and scripts put their own folder first on ``sys.path``, so a user's
    ``methods.py`` there would otherwise be imported instead of the built-in ``methods``
    package. The top-level package is loaded from :data:`HARNESS_ROOT` by location; a module
    of the same name already imported from elsewhere is a clear error, not a silent swap.
    Modules with no package folder beside the harness are imported the usual way.
    """
    top = module.partition(".")[0]
    folder = HARNESS_ROOT / top
    init = folder / "__init__.py"
    if init.is_file():
        loaded = sys.modules.get(top)
        if loaded is None:
            spec = importlib.util.spec_from_file_location(
                top, init, submodule_search_locations=[str(folder)]
            )
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load the built-in package {top!r} from {init}")
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[top] = loaded
            try:
                spec.loader.exec_module(loaded)
            except BaseException:
                sys.modules.pop(top, None)
                raise
        elif not _defined_in(loaded, folder):
            where = getattr(loaded, "__file__", None) or "a namespace package"
            raise UsageError(
                f"the module {top!r} imported from {where} shadows the harness's built-in "
                f"{top!r} package in {folder}: rename that module or run from another folder"
            )
    return importlib.import_module(module)


def _defined_in(module: ModuleType, folder: Path) -> bool:
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve().parent == folder.resolve()


def _distribution(ep: Any) -> str:
    """``"package version"`` of the distribution declaring entry point ``ep``."""
    dist = getattr(ep, "dist", None)
    if dist is not None:
        try:
            return f"{dist.name} {dist.version}"
        except Exception:  # unreadable metadata: fall through to the entry point itself
            pass
    return f"entry point {ep.value}"


def _plugin(ep: Any) -> str:
    """``plug-in PACKAGE VERSION (module:attr)`` for messages."""
    origin = _distribution(ep)
    return f"plug-in {origin}" if origin.endswith(ep.value) else f"plug-in {origin} ({ep.value})"


@dataclass(frozen=True)
class Spec:
    """A registry name with keyword parameters, as written ``name:key=value,key=value``."""

    name: str
    params: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={_format_value(v)}" for k, v in self.params)


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def parse_spec(text: str) -> Spec:
    """Parse ``name`` or ``name:key=value,...`` into a :class:`Spec` with sorted keys.

    Values stay text exactly as written (``007`` is not ``7``): only the registry knows what
    type a parameter takes, and :meth:`Registry.typed` converts them from the constructor's
    annotations when the entry is built or normalised.

    >>> str(parse_spec("lines:max_lines=8,min_lines=2"))
    'lines:max_lines=8,min_lines=2'
    >>> parse_spec("telea:radius=5").kwargs
    {'radius': '5'}

    ``name:PATH,key=value`` is short for ``name:path=PATH,key=value``:

    >>> parse_spec("folder:masks/nvidia,invert=true").kwargs
    {'invert': 'true', 'path': 'masks/nvidia'}
    """
    text = text.strip()
    name, _, rest = text.partition(":")
    if not name or not _NAME_RE.match(name):
        raise UsageError(f"malformed name {text!r}: expected name or name:key=value,...")
    params: dict[str, Any] = {}
    if rest:
        items = rest.split(",")
        if "=" not in items[0]:  # name:PATH shorthand for name:path=PATH (folder:, predictions:)
            params["path"] = items.pop(0).strip()
        for item in items:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or not key.isidentifier():
                raise UsageError(f"malformed parameter {item!r} in {text!r}: expected key=value")
            if key in params:
                raise UsageError(f"parameter {key!r} given twice in {text!r}")
            params[key] = value.strip()
    return Spec(name, tuple(sorted(params.items())))


def _same(default: Any, value: Any) -> bool:
    """``value`` equals ``default`` (3 == 3.0, but True is not 1)."""
    return isinstance(default, bool) == isinstance(value, bool) and default == value


def _origin(factory: Callable[..., Any]) -> tuple[str, str]:
    """Where a factory is defined; the same origin registering twice is a module re-import."""
    return (getattr(factory, "__module__", ""), getattr(factory, "__qualname__", repr(factory)))


def split_specs(text: str) -> list[str]:
    """Split a comma-separated list of specs, keeping ``key=value`` parameters with their name.

    >>> split_specs("telea:radius=5,ns,lines:max_lines=8,min_lines=2")
    ['telea:radius=5', 'ns', 'lines:max_lines=8,min_lines=2']
    """
    specs: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "=" in part and ":" not in part.split("=", 1)[0] and specs:
            specs[-1] += "," + part  # a further key=value of the previous spec
        else:
            specs.append(part)
    return specs


class Registry(Generic[T]):
    """Named factories of one kind (methods, masks, data sets, metrics).

    ``kind`` names the entries in messages; ``builtin_modules`` are imported on first use so
    their decorators run; ``group`` is the entry-point group searched for plug-ins.
    """

    def __init__(
        self, kind: str, group: str | None = None, builtin_modules: Iterable[str] = ()
    ) -> None:
        self.kind = kind
        self.group = group
        self._builtin_modules = tuple(builtin_modules)
        self._builtin_packages = {"benchmark"} | {m.partition(".")[0] for m in builtin_modules}
        self._entries: dict[str, Callable[..., T]] = {}
        #: Entries declared by ``"module:attribute"`` and not imported yet (see :meth:`add_lazy`).
        self._lazy: dict[str, str] = {}
        self._aliases: dict[str, str] = {}
        self._plugins: dict[str, Any] = {}  # name -> importlib.metadata.EntryPoint, not yet loaded
        self._plugin_origins: dict[str, str] = {}  # name -> "package version" of a plug-in
        #: Plug-ins that failed to load while listing: name -> one-line reason (for run.json).
        self.failed_plugins: dict[str, str] = {}
        self._discovered = False

    # -- registration -------------------------------------------------------------------------
    def register(self, name: str, *aliases: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering a factory under ``name`` (and optional aliases)."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            self.add(name, factory, *aliases)
            return factory

        return decorator

    def add(self, name: str, factory: Callable[..., T], *aliases: str) -> None:
        """Register ``factory`` under ``name``; a name already taken is an error.

        A name declared lazily (:meth:`add_lazy`) is taken by the factory it points to, which
        registers itself when its module is imported.
        """
        if name in self._lazy:
            target = self._lazy[name]
            mine = {a for a, n in self._aliases.items() if n == name}
            if target != _target_of(factory) or mine != set(aliases):
                raise ValueError(
                    f"{self.kind} {name!r} is declared as {target} with aliases {sorted(mine)}, "
                    f"but {_target_of(factory)} registers it with aliases {sorted(aliases)}"
                )
            del self._lazy[name]
            self._entries[name] = factory
            return
        if (
            name in self._entries
            and _origin(self._entries[name]) == _origin(factory)
            and {a for a, n in self._aliases.items() if n == name} == set(aliases)
        ):  # the same module imported a second time (pytest's importlib mode does this)
            self._entries[name] = factory
            return
        self._claim(name, aliases)
        self._entries[name] = factory

    def add_lazy(self, name: str, target: str, *aliases: str) -> None:
        """Declare entry ``name`` as ``"module:attribute"`` without importing the module.

        ``names()``, ``origin()`` and :meth:`describe` answer from the declaration and the
        module's source text; anything that needs the factory imports the module, whose
        ``@register`` decorator must register the same name, target and aliases.
        """
        self._claim(name, aliases)
        self._lazy[name] = target

    def _claim(self, name: str, aliases: tuple[str, ...]) -> None:
        """Check that ``name`` and ``aliases`` are valid and free, and map the aliases."""
        for key in (name, *aliases):
            if not _NAME_RE.match(key):
                raise ValueError(f"invalid {self.kind} name {key!r}")
            if key in self._entries or key in self._aliases or key in self._lazy:
                raise ValueError(f"{self.kind} {key!r} is already registered")
        for alias in aliases:
            self._aliases[alias] = name

    def _materialise(self, name: str) -> None:
        """Import a lazily declared entry's module; its decorator registers the factory."""
        target = self._lazy[name]
        module_name, _, attribute = target.partition(":")
        module = import_builtin(module_name)
        if name in self._lazy:  # the module did not register it: take the attribute itself
            factory = getattr(module, attribute)
            self.add(name, factory, *(a for a, n in self._aliases.items() if n == name))

    def remove(self, name: str) -> None:
        """Forget ``name`` and its aliases (used by tests that register temporary entries)."""
        self._entries.pop(name, None)
        self._lazy.pop(name, None)
        self._plugin_origins.pop(name, None)
        self._aliases = {a: n for a, n in self._aliases.items() if n != name}

    # -- discovery ----------------------------------------------------------------------------
    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        try:
            for module in self._builtin_modules:
                import_builtin(module)
        except BaseException:
            self._discovered = False  # every later lookup repeats the real error
            raise
        if not self.group:
            return
        for ep in entry_points(group=self.group):
            taken = self._aliases.get(ep.name, ep.name)
            if taken in self._entries or taken in self._lazy:
                warn(
                    f"{self.kind} {ep.name!r} of {_plugin(ep)} is ignored: the name belongs to "
                    f"{self._describe_origin(taken)}"
                )
            elif ep.name in self._plugins:
                first = self._plugins[ep.name]
                warn(
                    f"{self.kind} {ep.name!r} is declared twice: by {_plugin(first)} and by "
                    f"{_plugin(ep)}; using the first"
                )
            else:
                self._plugins[ep.name] = ep

    def _load_plugin(self, name: str) -> None:
        ep = self._plugins[name]
        try:
            factory = ep.load()
        except Exception as exc:  # a broken plug-in must not hide which one it is
            raise UsageError(
                f"{self.kind} {name!r} of {_plugin(ep)} failed to load: "
                f"{type(exc).__name__}: {_one_line(exc)}"
            ) from exc
        del self._plugins[name]  # kept while broken, so every lookup repeats the real error
        self._entries[name] = factory
        self._plugin_origins[name] = _distribution(ep)

    def origin(self, name: str) -> str:
        """Where entry ``name`` comes from: ``"built-in"``, a plug-in's ``"package version"``,
        or ``"module NAME"`` for entries registered by code outside the harness."""
        self._discover()
        lazy = self._aliases.get(name, name)
        if lazy in self._lazy:
            module = self._lazy[lazy].partition(":")[0]
            return (
                BUILTIN
                if module.partition(".")[0] in self._builtin_packages
                else f"module {module}"
            )
        name = self.canonical(name)
        if name in self._plugin_origins:
            return self._plugin_origins[name]
        module = getattr(self._entries[name], "__module__", None) or "?"
        if module.partition(".")[0] in self._builtin_packages:
            return BUILTIN
        return f"module {module}"

    def plugins(self) -> dict[str, str]:
        """Loaded plug-in entries: name -> ``"package version"`` (for run.json)."""
        return dict(sorted(self._plugin_origins.items()))

    def _describe_origin(self, name: str) -> str:
        if name in self._lazy:
            return f"the {BUILTIN} {self.kind} ({self._lazy[name].replace(':', '.')})"
        factory = self._entries[name]
        where = f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', '?')}"
        origin = self.origin(name)
        return f"the {origin} {self.kind} ({where})" if origin == BUILTIN else f"{origin} ({where})"

    # -- lookup -------------------------------------------------------------------------------
    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names (aliases excluded) matching a shell-style ``pattern``."""
        self._discover()
        for name in list(self._plugins):
            try:
                self._load_plugin(name)
            except UsageError as exc:
                if name not in self.failed_plugins:  # one warning per broken plug-in
                    warn(f"skipped: {exc}")
                self.failed_plugins[name] = str(exc)
        return sorted(n for n in {*self._entries, *self._lazy} if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        self._discover()
        return (
            name in self._entries
            or name in self._lazy
            or name in self._aliases
            or name in self._plugins
        )

    def canonical(self, name: str) -> str:
        """The registered name behind ``name`` or one of its aliases."""
        self._discover()
        name = self._aliases.get(name, name)
        if name in self._plugins:
            self._load_plugin(name)
        if name in self._lazy:
            self._materialise(name)
        if name not in self._entries:
            valid = sorted({*self._entries, *self._lazy, *self._plugins})
            close = difflib.get_close_matches(name, valid + list(self._aliases), n=3, cutoff=0.6)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{hint}; valid {self.kind}s: {', '.join(valid)}"
            )
        return name

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``; unknown names raise :class:`UnknownNameError`."""
        return self._entries[self.canonical(name)]

    def parameters(self, name: str) -> dict[str, Any]:
        """Keyword parameters of the factory ``name`` with their defaults."""
        signature = inspect.signature(self.get(name))
        return {
            p.name: p.default
            for p in signature.parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }

    def describe(self, name: str) -> Description:
        """Parameters with defaults, first docstring paragraph and ``slow_note`` of ``name``:
        read from the module's source for a lazily declared entry (nothing is imported), from
        the factory otherwise, or when the source does not say it plainly."""
        self._discover()
        lazy = self._aliases.get(name, name)
        if lazy in self._lazy:
            described = static_description(self._lazy[lazy])
            if described is not None:
                return described
        factory = self.get(name)
        doc = inspect.getdoc(factory) or ""
        return Description(
            self.parameters(name),
            doc.strip().split("\n\n")[0],
            str(getattr(factory, "slow_note", "") or ""),
        )

    def typed(self, spec: Spec | str) -> Spec:
        """``spec`` with its text values converted by the annotations of the entry's
        constructor (:mod:`benchmark.parameters`): ``radius=5`` becomes 5, ``path=007`` stays
        text. A value that does not fit is a :class:`UsageError` naming the entry."""
        if isinstance(spec, str):
            spec = parse_spec(spec)
        factory = self.get(spec.name)
        try:
            values = typed_parameters(factory, spec.kwargs)
        except ValueError as exc:
            raise UsageError(
                f"bad parameters for {self._who(self.canonical(spec.name), spec)}: {exc}"
            ) from None
        return Spec(spec.name, tuple(sorted(values.items())))

    def normalize(self, spec: Spec | str) -> Spec:
        """``spec`` with its canonical name, typed values (:meth:`typed`) and without
        parameters equal to their defaults.

        ``telea``, ``telea:radius=3`` and an alias of telea all name the same results.
        """
        spec = self.typed(spec)
        name = self.canonical(spec.name)
        defaults = self.parameters(name)
        params = tuple(
            (k, v) for k, v in spec.params if k not in defaults or not _same(defaults[k], v)
        )
        return Spec(name, params)

    def build(self, spec: Spec | str, **extra: Any) -> T:
        """Instantiate ``spec`` (a :class:`Spec` or its text), checking parameter names.

        ``extra`` are keyword arguments the harness supplies itself (e.g. a data set's split);
        a user parameter of the same name is refused. Factories raise ``ValueError`` for bad
        parameter values; it becomes a :class:`UsageError` naming the entry.
        """
        spec = self.typed(spec)
        factory = self.get(spec.name)
        name = self.canonical(spec.name)
        if inspect.isabstract(factory):
            missing = ", ".join(sorted(getattr(factory, "__abstractmethods__", ())))
            raise UsageError(
                f"{self._who(name, spec)} cannot be built: "
                f"{factory.__name__} is abstract, it does not implement {missing}"
            )
        known = {k: v for k, v in self.parameters(spec.name).items() if k not in extra}
        for key in spec.kwargs:
            if key in extra:
                raise UsageError(
                    f"{self.kind} {spec.name!r}: {key!r} is set by its own command-line option, "
                    "not as a name:key=value parameter"
                )
            if key not in known:
                choices = ", ".join(f"{k}={v!r}" for k, v in known.items()) or "none"
                # name:VALUE is short for name:path=VALUE; say so to whoever forgot "=value"
                shorthand = (
                    f" (in {str(spec)!r}, name:VALUE means name:path=VALUE; write key=value)"
                    if key == "path"
                    else ""
                )
                raise UsageError(
                    f"{self.kind} {spec.name!r} has no parameter {key!r}{shorthand}; "
                    f"parameters: {choices}"
                )
        try:
            inspect.signature(factory).bind(**spec.kwargs, **extra)
        except TypeError as exc:
            raise UsageError(f"bad parameters for {self._who(name, spec)}: {exc}") from exc
        try:
            return factory(**spec.kwargs, **extra)
        except ValueError as exc:
            raise UsageError(f"bad parameters for {self.kind} {str(spec)!r}: {exc}") from exc
        except TypeError as exc:
            if name not in self._plugin_origins:
                raise  # in the harness's own code a TypeError is a bug: keep its traceback
            raise UsageError(
                f"{self._who(name, spec)} cannot be built: TypeError: {_one_line(exc)}"
            ) from exc

    def _who(self, name: str, spec: Spec) -> str:
        """``method 'x:k=1'``, with ``of plug-in PACKAGE VERSION`` for plug-in entries."""
        plugin = self._plugin_origins.get(name)
        return f"{self.kind} {str(spec)!r}" + (f" of plug-in {plugin}" if plugin else "")


def _target_of(factory: Any) -> str:
    """``"module:qualified.name"`` of a factory (what :meth:`Registry.add_lazy` declares)."""
    return f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', '?')}"


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, cut to ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
