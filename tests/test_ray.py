"""``--executor ray``: one-line errors without Ray or without a cluster, and records identical to
a local run's on a local Ray cluster with 2 CPUs."""

from __future__ import annotations

import sys

import pytest

from benchmark.errors import UsageError
from benchmark.records import RecordStore, read_json
from benchmark.runner import RunConfig, run_benchmark

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
