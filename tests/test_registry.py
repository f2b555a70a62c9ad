"""The generic Registry: registration, lookup, errors, parameter specs and entry-point plug-ins."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import textwrap
import uuid
import warnings

import pytest

import benchmark.registry as registry_module
from benchmark.errors import UnknownNameError, UsageError
from benchmark.method import METHODS, Method
from benchmark.registry import Registry, Spec, parse_spec, split_specs


class Widget:
    def __init__(self, size: int = 3, colour: str = "red") -> None:
        self.size = size
        self.colour = colour


@pytest.fixture
def reg() -> Registry:
    """A fresh registry with no entry-point group (nothing outside the test leaks in)."""
    return Registry("widget")


# -- registration and lookup --------------------------------------------------------------------
def test_register_decorator_returns_factory_and_get_finds_it(reg):
    decorated = reg.register("box")(Widget)
    assert decorated is Widget
    assert reg.get("box") is Widget
    assert "box" in reg
    assert "crate" not in reg


def test_aliases_resolve_to_the_canonical_name_and_are_not_listed(reg):
    reg.register("box", "crate", "bin")(Widget)
    assert reg.get("crate") is Widget and reg.get("bin") is Widget
    assert reg.canonical("crate") == "box"
    assert "crate" in reg
    assert reg.names() == ["box"]


@pytest.mark.parametrize("second", [("box",), ("other", "box"), ("crate",), ("other", "crate")])
def test_duplicate_names_and_aliases_are_rejected(reg, second):
    reg.register("box", "crate")(Widget)
    with pytest.raises(ValueError, match="already registered"):
        reg.add(second[0], Widget, *second[1:])
    assert reg.names() == ["box"]  # a rejected registration leaves nothing half-added


@pytest.mark.parametrize("bad", ["", "has space", "-leading", "a:b", "a=b", "a,b"])
def test_invalid_names_are_rejected(reg, bad):
    with pytest.raises(ValueError, match="invalid widget name"):
        reg.add(bad, Widget)


def test_remove_forgets_name_and_aliases(reg):
    reg.register("box", "crate")(Widget)
    reg.remove("box")
    assert "box" not in reg and "crate" not in reg
    reg.register("crate")(Widget)  # the alias is free again
    assert reg.names() == ["crate"]


def test_names_are_sorted_and_filtered_by_wildcard(reg):
    for name in ["zeta", "alpha-2", "alpha-1", "beta", "alpha-10"]:
        reg.add(name, Widget)
    assert reg.names() == sorted(["zeta", "alpha-2", "alpha-1", "beta", "alpha-10"])
    assert reg.names("alpha-*") == ["alpha-1", "alpha-10", "alpha-2"]
    assert reg.names("alpha-?") == ["alpha-1", "alpha-2"]
    assert reg.names("*ta") == ["beta", "zeta"]
    assert reg.names("nothing*") == []


# -- unknown names --------------------------------------------------------------------------------
def test_unknown_name_error_names_kind_name_suggestion_and_valid_names(reg):
    for name in ["telea", "navier", "mean"]:
        reg.add(name, Widget)
    with pytest.raises(UnknownNameError) as info:
        reg.get("teela")
    message = str(info.value)
    assert "widget" in message
    assert "'teela'" in message
    assert "did you mean 'telea'" in message
    assert "valid widgets: mean, navier, telea" in message
    assert not message.startswith(("'", '"'))  # not KeyError's quoted repr


def test_unknown_name_error_is_a_key_error_and_a_usage_error(reg):
    reg.add("box", Widget)
    with pytest.raises(KeyError):
        reg.get("nope")
    with pytest.raises(UsageError) as info:
        reg.build("nope")
    assert info.value.exit_code == 2


def test_unknown_name_without_close_match_has_no_suggestion(reg):
    reg.add("box", Widget)
    with pytest.raises(UnknownNameError) as info:
        reg.get("zzzzzzzz")
    assert "did you mean" not in str(info.value)
    assert "valid widgets: box" in str(info.value)


def test_unknown_name_suggests_an_alias(reg):
    reg.add("box", Widget, "container")
    with pytest.raises(UnknownNameError, match="did you mean 'container'"):
        reg.get("containr")


# -- specs ----------------------------------------------------------------------------------------
def test_parse_spec_keeps_text_and_the_registry_types_it(reg):
    def typed(
        i: int = 0,
        neg: int = 0,
        f: float = 0.0,
        e: float = 0.0,
        t: bool = False,
        F: bool = True,
        n: int | None = 1,
        nl: float | None = 1.0,
        s: str = "",
        p: str | None = None,
    ) -> dict:
        return dict(i=i, neg=neg, f=f, e=e, t=t, F=F, n=n, nl=nl, s=s, p=p)

    reg.add("m", typed)
    text = "m:i=3,neg=-2,f=0.5,e=1e-3,t=true,F=False,n=none,nl=null,s=abc,p=007"
    assert set(parse_spec(text).kwargs.values()) <= {
        "3", "-2", "0.5", "1e-3", "true", "False", "none", "null", "abc", "007"
    }  # fmt: skip
    kw = reg.build(text)
    assert kw["i"] == 3 and type(kw["i"]) is int
    assert kw["neg"] == -2 and type(kw["neg"]) is int
    assert kw["f"] == 0.5 and type(kw["f"]) is float
    assert kw["e"] == 1e-3 and type(kw["e"]) is float
    assert kw["t"] is True and kw["F"] is False
    assert kw["n"] is None and kw["nl"] is None
    assert kw["s"] == "abc" and kw["p"] == "007"


def test_parse_spec_sorts_keys_so_equal_specs_compare_equal():
    a = parse_spec("lines:min_lines=2,max_lines=8")
    b = parse_spec(" lines:max_lines=8, min_lines=2 ")
    assert a == b
    assert a.params == (("max_lines", "8"), ("min_lines", "2"))
    assert str(a) == "lines:max_lines=8,min_lines=2"
    assert hash(a) == hash(b)


def test_parse_spec_plain_name():
    assert parse_spec("telea") == Spec("telea")
    assert str(parse_spec("telea")) == "telea"
    assert parse_spec("telea").kwargs == {}


@pytest.mark.parametrize(
    "text", ["telea", "m:a=1,b=0.25", "m:flag=true,off=false", "m:x=none", "m:s=hello"]
)
def test_spec_text_round_trips(text):
    spec = parse_spec(text)
    assert parse_spec(str(spec)) == spec


@pytest.mark.parametrize(
    "text",
    [":x", "", "a:b,b", "a:b=1,b=2", "a:=1", "a:1x=2", "a:b=1,", "bad name:x=1", "-a"],
)
def test_malformed_specs_raise_usage_error(text):
    with pytest.raises(UsageError) as info:
        parse_spec(text)
    assert info.value.exit_code == 2
    assert repr(text.strip()) in str(info.value) or text.strip() == ""


def test_path_shorthand_is_a_path_parameter_and_unknown_where_not_declared():
    assert parse_spec("folder:/data/x y,invert=true").kwargs == {
        "path": "/data/x y",
        "invert": "true",
    }
    assert parse_spec("folder:123").kwargs == {"path": "123"}  # a path stays text
    with pytest.raises(UsageError, match="no parameter 'path'"):
        METHODS.build("telea:5")


def test_split_specs_keeps_parameters_with_their_name():
    assert split_specs("telea:radius=5,ns,lines:max_lines=8,min_lines=2") == [
        "telea:radius=5",
        "ns",
        "lines:max_lines=8,min_lines=2",
    ]
    assert split_specs(" telea , ns ,, ") == ["telea", "ns"]
    assert split_specs("") == []
    # every piece parses back to the spec the user meant
    specs = [parse_spec(s) for s in split_specs("a:x=1,y=2,b,c:z=true")]
    assert specs == [
        Spec("a", (("x", "1"), ("y", "2"))),
        Spec("b"),
        Spec("c", (("z", "true"),)),
    ]


# -- build ----------------------------------------------------------------------------------------
def test_build_passes_typed_parameters(reg):
    reg.add("box", Widget)
    widget = reg.build("box:size=7,colour=blue")
    assert isinstance(widget, Widget) and widget.size == 7 and widget.colour == "blue"
    assert reg.build(Spec("box")).size == 3


def test_build_rejects_unknown_parameter_listing_valid_ones(reg):
    reg.add("box", Widget)
    with pytest.raises(UsageError) as info:
        reg.build("box:sise=7")
    message = str(info.value)
    assert "'sise'" in message and "'box'" in message
    assert "size=3" in message and "colour='red'" in message


def test_build_turns_constructor_value_errors_into_usage_errors(reg):
    def strict(size: int = 1) -> int:
        if size < 0:
            raise ValueError("size must be >= 0")
        return size

    reg.add("strict", strict)
    with pytest.raises(UsageError, match="size must be >= 0") as info:
        reg.build("strict:size=-1")
    assert isinstance(info.value.__cause__, ValueError)


def test_build_refuses_user_parameters_the_harness_sets(reg):
    def dataset(*, split: str = "test", size: int | None = None, min_std: float = 0.0):
        return (split, size, min_std)

    reg.add("patches", dataset)
    assert reg.build("patches:min_std=0.5", split="train", size=None) == ("train", None, 0.5)
    with pytest.raises(UsageError, match="'split' is set by its own command-line option"):
        reg.build("patches:split=train", split="test", size=None)


def test_build_reports_missing_required_parameters(reg):
    def needs(path: str) -> str:
        return path

    reg.add("needs", needs)
    with pytest.raises(UsageError, match="bad parameters for widget 'needs'"):
        reg.build("needs")
    assert reg.build("needs:path=x") == "x"


def test_build_does_not_disguise_factory_bugs_as_usage_errors(reg):
    def buggy(size: int = 1) -> int:
        return size + "1"  # a TypeError inside the factory is a bug, not bad input

    reg.add("buggy", buggy)
    with pytest.raises(TypeError):
        reg.build("buggy:size=2")


def test_parameters_lists_defaults(reg):
    reg.add("box", Widget)
    assert reg.parameters("box") == {"size": 3, "colour": "red"}


# -- entry-point plug-ins -------------------------------------------------------------------------
@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """A uniquely named importable module in tmp_path holding a good and a broken factory."""
    name = f"fake_plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            class Gadget:
                def __init__(self, power: int = 1):
                    self.power = power
            """
        )
    )
    (tmp_path / f"{name}_broken.py").write_text("raise ImportError('no such backend: libfoo')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for mod in (name, f"{name}_broken"):
        sys.modules.pop(mod, None)


def _fake_entry_points(group_eps):
    def entry_points(*, group=None, **kwargs):
        return [ep for ep in group_eps if ep.group == group]

    return entry_points


def _plugin_registry(monkeypatch, module: str) -> Registry:
    group = "benchmark.widgets"
    eps = [
        importlib.metadata.EntryPoint("gadget", f"{module}:Gadget", group),
        importlib.metadata.EntryPoint("broken", f"{module}_broken:Thing", group),
        importlib.metadata.EntryPoint("elsewhere", f"{module}:Gadget", "other.group"),
    ]
    monkeypatch.setattr(registry_module, "entry_points", _fake_entry_points(eps))
    reg = Registry("widget", group=group)
    reg.add("box", Widget)
    return reg


def test_plugin_appears_in_names_and_builds(monkeypatch, plugin_module):
    reg = _plugin_registry(monkeypatch, plugin_module)
    assert "gadget" in reg
    with pytest.warns(UserWarning, match="broken"):
        names = reg.names()
    assert names == ["box", "gadget"]  # the broken one and the other group's are left out
    gadget = reg.build("gadget:power=4")
    assert type(gadget).__name__ == "Gadget" and gadget.power == 4


def test_plugin_loads_lazily_on_get_without_listing(monkeypatch, plugin_module):
    reg = _plugin_registry(monkeypatch, plugin_module)
    assert plugin_module not in sys.modules
    assert reg.get("gadget").__name__ == "Gadget"
    assert plugin_module in sys.modules
    assert f"{plugin_module}_broken" not in sys.modules  # other plug-ins untouched


def test_broken_plugin_warning_names_it_and_its_entry_point(monkeypatch, plugin_module):
    reg = _plugin_registry(monkeypatch, plugin_module)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg.names()
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert "'broken'" in messages[0]
    assert f"{plugin_module}_broken:Thing" in messages[0]
    assert "no such backend: libfoo" in messages[0]


def test_broken_plugin_asked_by_name_raises_chained_usage_error(monkeypatch, plugin_module):
    reg = _plugin_registry(monkeypatch, plugin_module)
    with pytest.raises(UsageError) as info:
        reg.get("broken")
    assert not isinstance(info.value, UnknownNameError)
    assert "failed to load" in str(info.value) and "libfoo" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


def test_broken_plugin_still_explains_itself_after_listing(monkeypatch, plugin_module):
    reg = _plugin_registry(monkeypatch, plugin_module)
    with pytest.warns(UserWarning):
        reg.names()  # e.g. `--methods all` or the valid-names list of an error message
    with pytest.raises(UsageError) as info:
        reg.get("broken")
    assert "failed to load" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


def test_plugin_cannot_shadow_a_builtin(monkeypatch, plugin_module):
    group = "benchmark.widgets"
    eps = [importlib.metadata.EntryPoint("box", f"{plugin_module}:Gadget", group)]
    monkeypatch.setattr(registry_module, "entry_points", _fake_entry_points(eps))
    reg = Registry("widget", group=group)
    reg.add("box", Widget)
    with pytest.warns(registry_module.PluginWarning, match="'box'.*is ignored"):
        assert reg.get("box") is Widget
    assert plugin_module not in sys.modules


def test_builtin_modules_are_imported_on_first_use(tmp_path, monkeypatch):
    name = f"fake_builtins_{uuid.uuid4().hex[:8]}"
    reg = Registry("widget", builtin_modules=[name])
    monkeypatch.setattr(registry_module, "_TEST_REG", reg, raising=False)
    (tmp_path / f"{name}.py").write_text(
        "import benchmark.registry as r\n@r._TEST_REG.register('auto')\nclass Auto:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert name not in sys.modules
        assert reg.names() == ["auto"]
        assert reg.names() == ["auto"]  # discovered once, not re-imported or duplicated
    finally:
        sys.modules.pop(name, None)


def test_normalize_drops_defaults_and_resolves_aliases():
    registry = Registry("colour")

    @registry.register("red", "rouge")
    def red(shade: int = 3, glossy: bool = False) -> str:
        return f"red{shade}{glossy}"

    assert str(registry.normalize("rouge:shade=3")) == "red"
    assert str(registry.normalize("red:shade=+3,glossy=FALSE")) == "red"
    assert str(registry.normalize("red:shade=4")) == "red:shade=4"
    # the annotation decides: an int parameter takes neither 3.0 nor true
    for text in ("red:shade=3.0", "red:shade=true"):
        with pytest.raises(UsageError, match="shade: expected an integer"):
            registry.normalize(text)


def test_a_module_imported_twice_may_register_the_same_entry_again(reg):
    reg.register("box", "crate")(Widget)
    reg.register("box", "crate")(Widget)  # e.g. pytest --import-mode=importlib re-imports
    assert reg.names() == ["box"] and reg.get("crate") is Widget


# -- origins, collisions and unusable plug-ins ---------------------------------------------------
def _distribution_registry(monkeypatch, tmp_path, fake_distribution, packages) -> Registry:
    """A registry whose plug-ins come from fake installed packages (with names and versions).

    ``packages``: (package, version, {entry name: "module:attr"}) in ``sys.path`` order.
    """
    group = "benchmark.widgets"
    for i, (package, version, entries) in enumerate(packages):
        fake_distribution(tmp_path / f"site{i}", package, version, {group: entries})
    paths = [str(tmp_path / f"site{i}") for i in range(len(packages))]

    def entry_points(*, group=None, **kwargs):
        dists = importlib.metadata.distributions(path=paths)
        return [ep for dist in dists for ep in dist.entry_points if ep.group == group]

    monkeypatch.setattr(registry_module, "entry_points", entry_points)
    reg = Registry("widget", group=group)
    reg.add("box", Widget)
    return reg


def _caught(action) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        action()
    return [str(w.message) for w in caught if issubclass(w.category, registry_module.PluginWarning)]


def test_origin_names_builtins_plugin_packages_and_other_modules(
    monkeypatch, tmp_path, fake_distribution, plugin_module
):
    reg = _distribution_registry(
        monkeypatch,
        tmp_path,
        fake_distribution,
        [("gadgets-pkg", "1.4.2", {"gadget": f"{plugin_module}:Gadget"})],
    )
    assert reg.origin("gadget") == "gadgets-pkg 1.4.2"
    assert reg.plugins() == {"gadget": "gadgets-pkg 1.4.2"}
    assert reg.origin("box") == f"module {Widget.__module__}"
    assert METHODS.origin("telea") == "built-in"
    from benchmark.metrics import METRICS

    assert {METRICS.origin(name) for name in METRICS.names()} == {"built-in"}


def test_plugin_named_like_a_builtin_warns_with_both_origins(
    monkeypatch, tmp_path, fake_distribution, plugin_module
):
    reg = _distribution_registry(
        monkeypatch,
        tmp_path,
        fake_distribution,
        [("gadgets-pkg", "2.0", {"box": f"{plugin_module}:Gadget"})],
    )
    messages = _caught(reg.names)
    assert len(messages) == 1
    assert "'box'" in messages[0] and "gadgets-pkg 2.0" in messages[0]
    assert f"{plugin_module}:Gadget" in messages[0]  # the plug-in's side
    assert f"{Widget.__module__}.Widget" in messages[0]  # the side that keeps the name
    assert reg.get("box") is Widget


def test_two_plugins_declaring_one_name_warn_with_both_and_the_first_wins(
    monkeypatch, tmp_path, fake_distribution, plugin_module
):
    reg = _distribution_registry(
        monkeypatch,
        tmp_path,
        fake_distribution,
        [
            ("first-pkg", "1.0", {"gadget": f"{plugin_module}:Gadget"}),
            ("second-pkg", "3.1", {"gadget": f"{plugin_module}_broken:Thing"}),
        ],
    )
    messages = _caught(reg.names)
    assert len(messages) == 1
    assert "first-pkg 1.0" in messages[0] and "second-pkg 3.1" in messages[0]
    assert "'gadget'" in messages[0] and "using the first" in messages[0]
    assert reg.origin("gadget") == "first-pkg 1.0"


def test_broken_plugin_warns_once_in_one_line_and_is_recorded(
    monkeypatch, tmp_path, fake_distribution, plugin_module
):
    reg = _distribution_registry(
        monkeypatch,
        tmp_path,
        fake_distribution,
        [("bad-pkg", "0.1", {"broken": f"{plugin_module}_broken:Thing"})],
    )
    messages = _caught(lambda: (reg.names(), reg.names()))
    assert len(messages) == 1 and "\n" not in messages[0]
    assert "bad-pkg 0.1" in messages[0] and "ImportError: no such backend" in messages[0]
    assert set(reg.failed_plugins) == {"broken"}


class _Abstract(Method):
    """Forgets to implement inpaint."""


class _NeedsArgument(Method):
    def __init__(self, model_path):  # no default: the harness builds it without arguments
        self.model_path = model_path

    def inpaint(self, masked, mask):
        return masked


class _TypeErrorInside(Method):
    def __init__(self):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    def inpaint(self, masked, mask):
        return masked


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("_Abstract", "is abstract, it does not implement inpaint"),
        ("_NeedsArgument", "model_path"),
        ("_TypeErrorInside", "TypeError: unsupported operand"),
    ],
)
def test_unbuildable_plugin_methods_are_one_line_usage_errors(
    monkeypatch, tmp_path, fake_distribution, target, words
):
    reg = _distribution_registry(
        monkeypatch,
        tmp_path,
        fake_distribution,
        [("odd-pkg", "0.2", {"odd": f"{__name__}:{target}"})],
    )
    with pytest.raises(UsageError) as info:
        reg.build("odd")
    message = str(info.value)
    assert "'odd'" in message and "odd-pkg 0.2" in message and words in message
    assert "\n" not in message


def test_abstract_builtin_is_a_usage_error_too(reg):
    reg.add("abstract", _Abstract)
    with pytest.raises(UsageError, match="abstract"):
        reg.build("abstract")


def test_a_module_shadowing_a_builtin_package_is_a_clear_error(monkeypatch, tmp_path):
    shadow = tmp_path / "masks.py"
    shadow.write_text("X = 1\n")
    fake = importlib.util.module_from_spec(importlib.util.spec_from_file_location("masks", shadow))
    monkeypatch.setitem(sys.modules, "masks", fake)
    with pytest.raises(UsageError, match="shadows the harness's built-in 'masks' package"):
        registry_module.import_builtin("masks")


def test_builtin_packages_are_imported_from_beside_the_harness():
    import methods

    assert registry_module.import_builtin("methods") is methods
    assert methods.__file__ == str(registry_module.HARNESS_ROOT / "methods" / "__init__.py")
