"""``check`` on metrics: every built-in and per-image perceptual metric passes the contract
checks, and a plug-in metric that breaks one clause fails exactly that check."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import perceptual_fixtures  # tests/perceptual_fixtures.py (pytest's pythonpath)
import pytest
import torch

from benchmark.cli import main
from benchmark.metrics import BUILTIN_METRICS, METRICS, Metric
from benchmark.perceptual.backbones import NETS
from benchmark.testing import check, check_metric

pytestmark = pytest.mark.filterwarnings(
    "ignore::benchmark.perceptual.weights.UnverifiedWeightsWarning"
)


@pytest.fixture
def temp_metric() -> Iterator[Callable[[str, Callable[[], Metric]], str]]:
    """Register test-only metrics in ``METRICS`` for one test: ``temp_metric(name, factory)``."""
    METRICS.names()
    added: list[str] = []

    def add(name: str, factory: Callable[[], Metric]) -> str:
        METRICS.add(name, factory)
        added.append(name)
        return name

    yield add
    for name in added:
        METRICS.remove(name)


def failed(results) -> list[str]:
    return [r.check for r in results if not r.passed]


@pytest.mark.parametrize("name", [*BUILTIN_METRICS, "ms-ssim"])
def test_every_builtin_and_weightless_perceptual_metric_passes(name):
    results = check_metric(name)
    assert len(results) == 5 and failed(results) == [], [r.line() for r in results]


def hole_mean(r: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """A correct metric: mean absolute error over the hole."""
    hole = m.expand_as(r).float()
    return ((r - t).abs() * hole).flatten(1).sum(1) / hole.flatten(1).sum(1)


def in_place(r: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    r.mul_(0.5)
    return hole_mean(r, t, m)


BROKEN = {
    # name: (compute, higher_is_better, the check that must fail)
    "shape": (lambda r, t, m: hole_mean(r, t, m)[:, None], False, "float (N,) finite values"),
    "nan": (lambda r, t, m: hole_mean(r, t, m) / 0 * 0, False, "float (N,) finite values"),
    "mutates": (in_place, False, "float (N,) finite values"),
    "random": (lambda r, t, m: torch.rand(len(r)), False, "deterministic"),
    "batch": (
        lambda r, t, m: hole_mean(r, t, m) - hole_mean(r, t, m).mean(),
        False,
        "an image's value does not depend on its batch",
    ),  # fmt: skip
    "direction": (hole_mean, "lower", "declares its direction"),
}


@pytest.mark.parametrize("flaw", list(BROKEN))
def test_a_metric_breaking_one_clause_fails_that_check(temp_metric, flaw):
    compute, higher, expected = BROKEN[flaw]
    name = temp_metric(f"broken-{flaw}", lambda: Metric(f"broken-{flaw}", compute, "x", higher, 3))
    results = check_metric(name)
    lines = [r.line() for r in results]
    assert failed(results)[0].startswith(expected), lines  # later checks need its values
    assert len(failed(results)) == 1 or flaw == "random", lines  # random: any batch differs
    if flaw == "mutates":
        assert "modified its inputs" in next(r.detail for r in results if not r.passed)


def test_a_metric_named_otherwise_than_its_entry_fails_to_build(temp_metric):
    name = temp_metric("entry-name", lambda: Metric("other-name", hole_mean, "x", False, 3))
    results = check_metric(name)
    assert len(results) == 1 and not results[0].passed
    assert "named 'other-name', not 'entry-name'" in results[0].detail


def test_check_command_exit_codes_for_metrics(temp_metric, capsys):
    temp_metric("good-metric", lambda: Metric("good-metric", hole_mean, "good", False, 4))
    temp_metric("bad-metric", lambda: Metric("bad-metric", BROKEN["random"][0], "bad", True, 4))
    assert main(["check", "good-metric", "hole_psnr", "--kind", "metric"]) == 0
    out = capsys.readouterr().out
    assert "PASS  metric good-metric: deterministic" in out and "10 passed, 0 failed" in out
    assert main(["check", "bad-metric"]) == 1
    assert "FAIL  metric bad-metric: deterministic: two calls differ" in capsys.readouterr().out
    for name, message in (("fid", "is a per-set metric"), ("hole_l2", "unknown name 'hole_l2'")):
        assert main(["check", name]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert main(["check", "telea", "--kind", "metric"]) == 2  # a method, not a metric


def test_lpips_is_checked_with_its_weights_and_fails_in_one_line_without(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # an empty cache
    results = check(["lpips-squeeze"], weights_dir=tmp_path)  # the weights are nowhere
    assert len(results) == 1 and "squeezenet1_1-b8a52dc0.pth not found" in results[0].detail
    fixtures = perceptual_fixtures
    _, trunk, head, _, _ = NETS["squeeze"]
    fixtures._save(fixtures.trunk_state("squeeze"), tmp_path / trunk)
    fixtures._save(fixtures.head_state("squeeze"), tmp_path / head)
    argv = ["check", "lpips-squeeze", "--weights-dir", str(tmp_path)]
    assert main(argv) == 1  # seeded stand-ins: not the published checksums
    assert "--allow-unverified-weights to use it anyway" in capsys.readouterr().out
    assert main([*argv, "--allow-unverified-weights"]) == 0
    assert "5 passed, 0 failed" in capsys.readouterr().out
