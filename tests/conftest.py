"""Shared fixtures: temporary registry entries and a subprocess runner for the CLI."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from benchmark.datasets import DATASETS
from benchmark.masking import MASKS
from benchmark.method import METHODS
from benchmark.registry import Registry

#: The outside plug-in package used by the plug-in tests: imported only through entry points.
collect_ignore = ["plugin_example"]


@pytest.fixture(autouse=True, scope="session")
def ctrl_c_reaches_python() -> Iterator[None]:
    """Ctrl-C reaches the tests, and the processes they start, as it does in a terminal.

    A suite started in the background by a non-interactive shell inherits SIGINT ignored, and
    exec keeps it ignored in every child: the Ctrl-C tests would then test nothing.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield


@pytest.fixture(autouse=True)
def image_settings_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with the default pixel limit and size+mtime fingerprints; a run's
    ``--max-pixels`` or ``--verify-data`` (set in the environment for its workers) ends with
    the test."""
    from benchmark.images import MAX_PIXELS_ENV, VERIFY_DATA_ENV

    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    monkeypatch.delenv(VERIFY_DATA_ENV, raising=False)


@pytest.fixture
def single_torch_thread() -> Iterator[None]:
    """One intra-op torch thread for the test: tiny tensors on a shared 2-core machine run up to
    30x slower with two threads competing with other processes. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def temp_method() -> Iterator[Callable[[str, type], str]]:
    """Register test-only methods in ``METHODS`` for one test: ``temp_method(name, cls)``.

    Every name registered through it is removed afterwards, even when the test fails.
    """
    yield from _temporary_entries(METHODS)


@pytest.fixture
def temp_dataset() -> Iterator[Callable[..., str]]:
    """Register test-only data sets in ``DATASETS``: ``temp_dataset(name, factory, *aliases)``.

    ``factory(*, split, size, data_dir)`` returns a :class:`benchmark.datasets.Dataset`; every
    name registered through it is removed afterwards.
    """
    yield from _temporary_entries(DATASETS)


@pytest.fixture
def temp_mask() -> Iterator[Callable[..., str]]:
    """Register test-only mask families in ``MASKS``: ``temp_mask(name, cls)``; removed after."""
    yield from _temporary_entries(MASKS)


def write_distribution(
    root: Path, name: str, version: str, entry_points: dict[str, dict[str, str]]
) -> Path:
    """An installed-package record ``NAME-VERSION.dist-info`` under ``root``, as pip writes it.

    ``entry_points`` maps group -> {entry name: "module:attr"}. With ``root`` on ``sys.path``,
    :mod:`importlib.metadata` finds the package and its entry points exactly as if it had been
    pip-installed (the package's modules must be importable from ``sys.path`` too).
    """
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{entry} = {target}" for entry, target in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return info


@pytest.fixture
def fake_distribution() -> Callable[..., Path]:
    """:func:`write_distribution`, for tests (helpers in conftest are not importable)."""
    return write_distribution


def _temporary_entries(registry: Registry) -> Iterator[Callable[..., str]]:
    """Yield ``add(name, factory, *aliases)``; remove every name it added afterwards."""
    registry.names()  # import the built-ins first, so a clash with one fails loudly here
    added: list[str] = []

    def add(name: str, factory: Callable, *aliases: str) -> str:
        registry.add(name, factory, *aliases)
        added.append(name)
        return name

    yield add
    for name in added:
        registry.remove(name)


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., tuple[int, str, str]]:
    """``run_cli(*args, cwd=tmp_path)``: ``python -m benchmark ARGS`` -> (code, stdout, stderr)."""

    def run(
        *args: str, cwd: str | Path | None = None, timeout: float = 120
    ) -> tuple[int, str, str]:
        done = subprocess.run(
            [sys.executable, "-m", "benchmark", *args],
            cwd=cwd or tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return done.returncode, done.stdout, done.stderr

    return run
