"""What a record's identity covers (data set files, mask generator, seed, size, ratio range), the
plug-in packages and skips in run.json, and the lock that keeps two runs out of one folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmark.errors import UsageError
from benchmark.masking import MASKS, MaskGenerator
from benchmark.method import METHODS
from benchmark.records import RecordStore, read_json
from benchmark.run.config import RunConfig
from benchmark.run.lock import RunLock
from benchmark.run.provenance import plugin_versions
from benchmark.run.runner import run_benchmark

pytestmark = pytest.mark.usefixtures("single_torch_thread")
ROOT = Path(__file__).resolve().parent.parent


def run(tmp_path, name="run", **overrides):
    settings = dict(
        methods=["mean"],
        masks=["square"],
        limit=12,
        batch_size=10,
        workers=1,
        progress=False,
        out=str(tmp_path / name),
    )
    settings.update(overrides)
    return run_benchmark(RunConfig(**settings))


def photos(folder: Path, n: int, seed: int, first: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(first, first + n):
        cv2.imwrite(str(folder / f"{k:03d}.png"), rng.integers(0, 256, (24, 24, 3), np.uint8))
    return folder


def psnr_by_index(result) -> dict[int, float]:
    return {r["index"]: r["psnr"] for r in RecordStore(result.run_dir / "records.jsonl")}


# -- provenance -----------------------------------------------------------------------------------
def test_adding_a_file_to_a_folder_dataset_recomputes_the_shifted_records(tmp_path):
    folder = photos(tmp_path / "photos", 8, seed=1)
    first = run(tmp_path, dataset=f"folder:{folder}", limit=None, size=24)
    assert first.computed == 8
    photos(folder, 1, seed=2, first=0)  # 000.png sorts first: every index shifts by one
    second = run(tmp_path, dataset=f"folder:{folder}", limit=None, size=24)
    assert second.reused == 0 and second.computed == 9
    fresh = run(tmp_path, name="fresh", dataset=f"folder:{folder}", limit=None, size=24)
    assert psnr_by_index(second) == psnr_by_index(fresh)


def test_a_relative_folder_path_from_two_directories_does_not_share_records(tmp_path, monkeypatch):
    for where, seed in (("a", 1), ("b", 2)):
        photos(tmp_path / where / "photos", 6, seed=seed)
    out = str(tmp_path / "shared-out")
    monkeypatch.chdir(tmp_path / "a")
    a = run(tmp_path, dataset="folder:photos", limit=None, size=24, out=out)
    monkeypatch.chdir(tmp_path / "b")
    b = run(tmp_path, dataset="folder:photos", limit=None, size=24, out=out)
    assert a.computed == 6 and b.computed == 6 and b.reused == 0
    fresh = run(tmp_path, name="fresh-b", dataset="folder:photos", limit=None, size=24)
    assert psnr_by_index(b) == psnr_by_index(fresh)


def test_a_changed_mask_generator_recomputes_instead_of_mixing(tmp_path):
    class Box(MaskGenerator):
        def __init__(self, side: float = 0.25) -> None:
            self.side = side

        def draw(self, rng, height, width):
            hole = np.zeros((height, width), bool)
            s = max(1, int(self.side * height))
            top = int(rng.integers(0, height - s))
            hole[top : top + s, :s] = True
            return hole

    MASKS.add("test-box", Box)
    try:
        first = run(tmp_path, masks=["test-box"])
        MASKS.remove("test-box")
        MASKS.add("test-box", lambda side=0.5: Box(side))  # new defaults, same spec text
        second = run(tmp_path, masks=["test-box"])
    finally:
        MASKS.remove("test-box")
    assert first.computed == 12 and second.computed == 12 and second.reused == 0
    entry = second.leaderboard["tables"][0]["entries"][0]
    assert entry["n"] == 12  # old and new masks are not mixed
    ratios = {r["mask_ratio"] for r in RecordStore(second.run_dir / "records.jsonl")}
    assert min(ratios) >= 0.12  # every counted record has the new, larger holes


def test_every_record_carries_the_provenance_of_run_json(tmp_path):
    result = run(tmp_path, masks=["square", "lines"], mask_ratio=(0.0, 0.9))
    info = read_json(result.run_dir / "run.json")
    masks = info["provenance"]["masks"]
    assert set(masks) == {"square", "lines"}
    for parts in masks.values():
        assert parts["dataset"].startswith("code ") and parts["mask"].startswith("code ")
        assert parts["seed"] == 0 and parts["size"] == [32, 32] and parts["mask_ratio"] == [0, 0.9]
    for record in RecordStore(result.run_dir / "records.jsonl"):
        assert record["provenance"] == masks[record["mask"]]["hash"]


def test_plugin_packages_are_named_with_their_versions():
    from importlib.metadata import version

    class FromTqdm:
        pass

    class FromNowhere:
        pass

    FromTqdm.__module__ = "tqdm.fake"  # an installed distribution
    FromNowhere.__module__ = "no_such_distribution.plugin"  # a module no package declares
    METHODS.add("test-from-tqdm", FromTqdm)
    METHODS.add("test-from-nowhere", FromNowhere)
    try:
        found = plugin_versions(
            {
                "test-from-tqdm": "test-from-tqdm",
                "test-from-nowhere": "test-from-nowhere",
                "telea": "telea",
            },
            METHODS,
        )
    finally:
        METHODS.remove("test-from-tqdm")
        METHODS.remove("test-from-nowhere")
    assert found == {
        "method test-from-tqdm": {"package": "tqdm", "version": version("tqdm")},
        "method test-from-nowhere": {
            "package": "(module no_such_distribution.plugin)",
            "version": "",
        },
    }  # telea is built in: not a plug-in, not listed


def test_plugins_that_failed_to_load_are_recorded_as_skipped(tmp_path, monkeypatch):
    monkeypatch.setitem(METHODS.failed_plugins, "test-broken", "method 'test-broken' failed")
    info = read_json(run(tmp_path).run_dir / "run.json")
    assert info["skipped"] == {"test-broken": "method 'test-broken' failed"}
    assert info["plugins"] == {}


# -- the run-folder lock --------------------------------------------------------------------------
def test_a_second_run_into_a_locked_folder_stops_at_once_naming_the_holder(tmp_path):
    folder = tmp_path / "run"
    with RunLock(folder):
        started = time.monotonic()
        with pytest.raises(UsageError, match=f"in use by another run \\(pid {os.getpid()}\\)"):
            run(tmp_path)
        assert time.monotonic() - started < 30
    assert not (folder / "records.jsonl").exists()
    assert run(tmp_path).computed == 12  # released: the next run goes ahead


def test_a_stale_lock_of_a_dead_process_never_blocks(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from benchmark.run.lock import RunLock; "
            f"RunLock({str(tmp_path / 'run')!r}).acquire(); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(UsageError, match=f"pid {holder.pid}"):
        run(tmp_path)
    holder.kill()
    holder.wait()
    assert (tmp_path / "run" / ".lock").read_text().strip() == str(holder.pid)  # stale file
    assert run(tmp_path).computed == 12


SCRIPT = textwrap.dedent(
    """
    import sys, time
    from benchmark.cli import main
    from benchmark.method import METHODS, Method
    from methods.floors import MeanFill

    class Slow(Method):
        def inpaint(self, masked, mask):
            time.sleep({delay})
            return MeanFill().inpaint(masked, mask)

    METHODS.add("test-slow", Slow)
    sys.exit(main(sys.argv[1:]))
    """
)


def _cli(tmp_path, delay: float, *args: str) -> subprocess.Popen:
    script = tmp_path / f"cli_{delay}.py"
    script.write_text(SCRIPT.format(delay=delay))
    return subprocess.Popen(
        [sys.executable, str(script), "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.slow
def test_two_concurrent_identical_runs_never_both_write(tmp_path):
    args = (
        "--methods",
        "test-slow,mean",
        "--masks",
        "square",
        "--limit",
        "20",
        "--batch-size",
        "10",
        "--workers",
        "1",
        "--out",
        "same",
        "--quiet",
    )
    first, second = _cli(tmp_path, 0.3, *args), _cli(tmp_path, 0.3, *args)
    outcomes = [(p.wait(120), p.stderr.read()) for p in (first, second)]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 2], outcomes
    refused = next(err for code, err in outcomes if code == 2)
    assert "is in use by another run (pid" in refused and len(refused.strip().splitlines()) == 1
    lines = (tmp_path / "same" / "records.jsonl").read_text().splitlines()
    assert len(lines) == 40  # one writer: no duplicate records


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_stops_a_stuck_run_within_seconds_and_keeps_what_finished(tmp_path, workers):
    process = _cli(
        tmp_path,
        3600,
        "--methods",
        "mean,test-slow",
        "--masks",
        "square",
        "--limit",
        "40",
        "--batch-size",
        "10",
        "--workers",
        workers,
        "--out",
        "stuck",
        "--timeout",
        "0",
        "--quiet",
    )
    records = tmp_path / "stuck" / "records.jsonl"
    deadline = time.monotonic() + 60
    while not (records.exists() and records.read_text().count("\n") >= 10):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail(f"no records written: {process.communicate()[1]}")
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    code = process.wait(30)
    assert time.monotonic() - started < 10
    assert code == 130, process.stderr.read()
    info = read_json(tmp_path / "stuck" / "run.json")
    assert info["status"] == "interrupted"
    kept = {r["method"] for r in RecordStore(records)}
    assert kept == {"mean"}


def test_changed_metric_code_recomputes_instead_of_mixing(tmp_path):
    """A plug-in metric whose code changes (same name) makes every record that holds it stale,
    not only new ones."""
    import importlib.util

    from benchmark.metrics import METRICS, Metric

    source = tmp_path / "my_metric.py"

    def register(value: float) -> None:
        source.write_text(
            f"def compute(result, target, mask):\n    return 0 * result[:, 0, 0, 0] + {value}\n"
        )
        spec = importlib.util.spec_from_file_location(f"my_metric_{int(value)}", source)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        metric = Metric("test-const", module.compute, "const", True, 2)
        METRICS.add("test-const", lambda: metric)

    register(1.0)
    try:
        first = run(tmp_path, metrics=["test-const"])
        again = run(tmp_path, metrics=["test-const"])
        METRICS.remove("test-const")
        register(2.0)
        changed = run(tmp_path, metrics=["test-const"])
    finally:
        METRICS.remove("test-const")
    assert first.computed == 12 and again.reused == 12 and again.computed == 0
    assert changed.computed == 12 and changed.reused == 0
    values = {r["test-const"] for r in RecordStore(changed.run_dir / "records.jsonl")}
    assert values == {2.0}  # the latest records carry the new code's values only
