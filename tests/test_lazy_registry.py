"""Lazily declared registry entries: ``list`` describes them without importing their modules,
and what it shows equals what the imported factory says."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from benchmark.errors import UnknownNameError
from benchmark.method import METHODS
from benchmark.registry import BUILTIN, Registry
from benchmark.static_description import static_description
from methods import BUILTIN_METHODS


@pytest.mark.parametrize("name", sorted(BUILTIN_METHODS))
def test_static_description_equals_the_imported_factory(name):
    described = static_description(BUILTIN_METHODS[name])
    factory = METHODS.get(name)  # imports the module: the decorator must match the declaration
    assert f"{factory.__module__}:{factory.__qualname__}" == BUILTIN_METHODS[name]
    if described is None:  # the source does not say it plainly: list imports the module
        return
    assert described.parameters == METHODS.parameters(name)
    assert described.summary == (inspect.getdoc(factory) or "").strip().split("\n\n")[0]
    assert described.slow_note == str(getattr(factory, "slow_note", "") or "")


def test_every_builtin_method_is_described_from_source():
    unclear = sorted(n for n, t in BUILTIN_METHODS.items() if static_description(t) is None)
    assert unclear == []  # each one would make list import its module (and torch)


def test_list_methods_imports_neither_torch_nor_a_method_module():
    """(torch may stand in sys.modules as a lazy module; torch._C is there once it ran.)"""
    code = (
        "import sys; from benchmark.cli import main; main(['list', 'methods']);"
        "bad = [m for m in sys.modules if m == 'torch._C' or m.startswith('methods.')];"
        "print('IMPORTED', bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert "IMPORTED []" in out and "telea" in out and "unet-fill" in out


def _toy_registry(tmp_path, monkeypatch, source: str, module: str) -> Registry:
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("toy")
    registry.add_lazy("shade", f"{module}:Shade", "tint")
    return registry


def test_a_lazy_entry_is_described_then_imported_on_use(tmp_path, monkeypatch):
    source = (
        "class Shade:\n"
        '    """A shade of grey.\n\n    More text."""\n'
        "    slow_note = 'slow at 512'\n"
        "    def __init__(self, level: int = 3, name: str = 'x') -> None:\n"
        "        self.level = level\n"
    )
    registry = _toy_registry(tmp_path, monkeypatch, source, "toy_described")
    assert registry.names() == ["shade"] and "tint" in registry
    described = registry.describe("tint")
    assert described.parameters == {"level": 3, "name": "x"}
    assert described.summary == "A shade of grey." and described.slow_note == "slow at 512"
    assert "toy_described" not in sys.modules  # described from the source alone
    assert registry.origin("shade") == "module toy_described"
    assert registry.build("tint:level=5").level == 5  # imported on use
    monkeypatch.delitem(sys.modules, "toy_described")
    with pytest.raises(UnknownNameError, match="did you mean 'shade'"):
        registry.get("shadd")


def test_a_default_that_is_not_a_literal_is_read_from_the_imported_factory(tmp_path, monkeypatch):
    source = (
        "LEVEL = 7\n"
        "class Shade:\n"
        '    """A shade."""\n'
        "    def __init__(self, level: int = LEVEL) -> None:\n"
        "        self.level = level\n"
    )
    registry = _toy_registry(tmp_path, monkeypatch, source, "toy_constant")
    assert static_description("toy_constant:Shade") is None
    assert registry.describe("shade").parameters == {"level": 7}
    monkeypatch.delitem(sys.modules, "toy_constant")


def test_a_declaration_that_its_module_contradicts_is_an_error(tmp_path, monkeypatch):
    source = 'from benchmark.registry import Registry\nclass Shade:\n    """A shade."""\n'
    registry = _toy_registry(tmp_path, monkeypatch, source, "toy_contradicted")
    with pytest.raises(ValueError, match="declared as toy_contradicted:Shade with aliases"):
        registry.add("shade", object)  # another factory claims the declared name


def test_builtin_origin_of_lazy_methods_needs_no_import():
    assert METHODS.origin("telea") == BUILTIN
