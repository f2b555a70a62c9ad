"""``--executor ray``: one-line errors without Ray or without a cluster, and records identical to
a local run's on a local Ray cluster with 2 CPUs."""

from __future__ import annotations

import sys

import pytest

from benchmark.errors import UsageError
from benchmark.records import RecordStore, read_json
from benchmark.run.config import RunConfig
from benchmark.run.runner import run_benchmark

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def config(tmp_path, name="run", **overrides) -> RunConfig:
    settings = dict(
        methods=["telea", "mean"],
        masks=["lines", "square"],
        limit=12,
        batch_size=5,
        workers=2,
        progress=False,
        out=str(tmp_path / name),
        executor="ray",
    )
    settings.update(overrides)
    return RunConfig(**settings)


def test_without_ray_installed_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(UsageError, match=r'pip install "inpaint-bench\[ray\]"') as info:
        run_benchmark(config(tmp_path))
    assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_an_unreachable_cluster_is_one_line(tmp_path):
    with pytest.raises(UsageError, match="cannot reach the Ray cluster at '127.0.0.1:9'") as info:
        run_benchmark(config(tmp_path, ray_address="127.0.0.1:9"))
    assert "\n" not in str(info.value)


def test_a_malformed_address_and_an_address_without_ray_are_refused(tmp_path):
    with pytest.raises(UsageError, match="expected HOST:PORT"):
        run_benchmark(config(tmp_path, ray_address="no-port-here"))
    with pytest.raises(UsageError, match="--ray-address needs --executor ray"):
        run_benchmark(config(tmp_path, executor="local", ray_address="127.0.0.1:6379"))


@pytest.mark.slow
def test_a_run_on_a_local_ray_cluster_equals_the_local_run_record_for_record(tmp_path):
    distributed = run_benchmark(config(tmp_path, "ray"))
    local = run_benchmark(config(tmp_path, "local", executor="local"))
    strip = lambda result: {  # noqa: E731
        (r["method"], r["mask"], r["index"]): {k: v for k, v in r.items() if k != "seconds"}
        for r in RecordStore(result.run_dir / "records.jsonl")
    }
    assert distributed.computed == local.computed == 48 and distributed.failed == 0
    assert strip(distributed) == strip(local)
    lines = (distributed.run_dir / "records.jsonl").read_text().splitlines()
    assert len(lines) == 48  # every record written once
    assert read_json(distributed.run_dir / "run.json")["config"]["executor"] == "ray"
    again = run_benchmark(config(tmp_path, "ray"))  # resumes like a local run: nothing to do
    assert again.computed == 0 and again.reused == 48


CRASHING_METHOD = '''
import os
from pathlib import Path

from benchmark.method import METHODS, Method


class Crash(Method):
    """Kills its worker process: on every call, or only while ``marker`` does not exist."""

    def __init__(self, marker: str = "", always: bool = False) -> None:
        self.marker, self.always = marker, always

    def inpaint(self, masked, mask):
        if self.always or not Path(self.marker).exists():
            Path(self.marker).touch()
            os._exit(1)
        return masked


def register():
    if "test-crash" not in METHODS.names():
        METHODS.add("test-crash", Crash)
'''


@pytest.mark.slow
def test_a_dead_ray_worker_is_retried_once_then_its_chunk_is_recorded_failed(
    tmp_path, monkeypatch, fake_distribution
):
    """A worker killed mid-task: its chunk runs again once; a chunk that kills every worker it
    reaches is recorded failed with the reason; nothing is written twice and the run goes on."""
    import os

    ray = pytest.importorskip("ray")
    from benchmark.method import METHODS

    site = tmp_path / "site"  # an installed plug-in package, as Ray's workers would find it
    site.mkdir()
    (site / "crashing_method.py").write_text(CRASHING_METHOD)
    fake_distribution(site, "crashing-method", "1.0", {"benchmark.methods": {}})
    monkeypatch.syspath_prepend(str(site))
    import crashing_method

    crashing_method.register()
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            "env_vars": {"PYTHONPATH": path},
            "worker_process_setup_hook": "crashing_method.register",
        },
    )
    try:
        marker = tmp_path / "crashed-once"
        once = run_benchmark(
            config(tmp_path, "once", methods=[f"test-crash:marker={marker}", "mean"], limit=2)
        )
        always = run_benchmark(
            config(tmp_path, "always", methods=["test-crash:always=true", "mean"], limit=2)
        )
    finally:
        ray.shutdown()
        METHODS.remove("test-crash")
    assert marker.exists()  # the first attempt did die
    assert once.failed == 0 and once.computed == 8
    assert always.failed == 4 and always.computed == 8  # mean's 4 records are fine
    for result in (once, always):
        lines = (result.run_dir / "records.jsonl").read_text().splitlines()
        assert len(lines) == 8  # every record written once
    failed = [r for r in RecordStore(always.run_dir / "records.jsonl") if r["status"] != "ok"]
    assert {r["method"] for r in failed} == {"test-crash:always=true"}
    assert all("Ray worker died" in r["status"] for r in failed), failed[0]


@pytest.mark.slow
def test_set_metrics_on_a_local_ray_cluster_equal_the_process_executor(
    tmp_path, monkeypatch, inception_weights
):
    monkeypatch.setenv("INPAINT_BENCH_CACHE", str(tmp_path / "cache"))
    extra = dict(
        methods=["telea"], masks=["square"], limit=4, batch_size=2, metrics=["fid", "kid"],
        weights_dir=inception_weights, allow_unverified_weights=True,
    )  # fmt: skip
    distributed = run_benchmark(config(tmp_path, "ray", **extra))
    local = run_benchmark(config(tmp_path, "local", executor="local", **extra))
    values = lambda result: result.leaderboard["tables"][0]["entries"][0]["set_metrics"]  # noqa: E731
    assert distributed.computed == local.computed == 4
    assert values(distributed) == values(local)
    assert values(local)["fid"]["value"] is not None and values(local)["fid"]["n"] == 4


@pytest.fixture
def inception_weights(tmp_path) -> str:
    """Seeded FID Inception weights under their reference name (tests/perceptual_fixtures.py)."""
    import perceptual_fixtures

    from benchmark.perceptual.inception import WEIGHTS

    perceptual_fixtures._save(perceptual_fixtures.inception_state(), tmp_path / WEIGHTS)
    return str(tmp_path)
