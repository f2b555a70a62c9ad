"""Process faults: nothing a method does ends, kills or hangs a run, and no worker outlives it.

A method that exits, crashes, raises ``KeyboardInterrupt``, leaves a thread running or changes
the working directory fails its own pairs with the reason, and the run finishes with its
leaderboard, with one worker as with several; SIGTERM and SIGHUP stop a run as Ctrl-C does; a
killed driver takes its workers with it; ``--max-memory`` fails a method that needs more.
"""

from __future__ import annotations

import ctypes
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
import torch

from benchmark.datasets import TensorDataset, build_dataset
from benchmark.errors import ContractError, UsageError
from benchmark.method import Method
from benchmark.records import RecordStore, read_json
from benchmark.run.config import RunConfig
from benchmark.run.executors import parse_memory
from benchmark.run.runner import run_benchmark
from methods.floors import MeanFill

pytestmark = pytest.mark.usefixtures("single_torch_thread")
ROOT = Path(__file__).resolve().parent.parent


def run(tmp_path: Path, **overrides):
    settings = dict(
        methods=["mean"],
        masks=["square"],
        limit=12,
        batch_size=6,
        workers=1,
        progress=False,
        out=str(tmp_path / "run"),
    )
    settings.update(overrides)
    return run_benchmark(RunConfig(**settings))


def statuses(run_dir: Path, method: str) -> dict[int, str]:
    return {
        r["index"]: r["status"]
        for r in RecordStore(run_dir / "records.jsonl")
        if r["method"] == method
    }


# -- faults inside a method ------------------------------------------------------------------------
def _exit() -> None:
    raise SystemExit(0)


def _os_exit() -> None:
    os._exit(0)


def _segfault() -> None:
    import faulthandler

    faulthandler.disable()  # pytest's traceback dump of the dying worker is noise here
    ctypes.string_at(0)


def _keyboard_interrupt() -> None:
    raise KeyboardInterrupt


#: fault -> (what the method does, the failure reason recorded for its images)
FAULTS = {
    "SystemExit": (_exit, "failed: SystemExit(0) raised by the method"),
    "os._exit": (_os_exit, "failed: worker process died (exit code 0)"),
    "segfault": (_segfault, "failed: worker process died (signal SIGSEGV)"),
    "KeyboardInterrupt": (_keyboard_interrupt, "failed: KeyboardInterrupt() raised by the method"),
}


def faulty(fault) -> type[Method]:
    """A method that fills like ``mean`` on images 0-5 and does ``fault`` on the batch of 6-11."""

    class Faulty(Method):
        def inpaint_indexed(self, masked, mask, indices, mask_name):
            if 6 in indices:
                fault()
            return MeanFill().inpaint(masked, mask)

        def inpaint(self, masked, mask):
            raise AssertionError("inpaint_indexed is called instead")

    return Faulty


def _check_only_the_faulty_work_failed(result, name: str, reason: str) -> None:
    assert statuses(result.run_dir, name) == {i: "ok" if i < 6 else reason for i in range(12)}
    assert set(statuses(result.run_dir, "mean").values()) == {"ok"}
    assert len((result.run_dir / "records.jsonl").read_text().splitlines()) == 24
    assert read_json(result.run_dir / "run.json")["status"] == "complete"
    entries = {
        e["method"]: e
        for e in read_json(result.run_dir / "leaderboard.json")["tables"][0]["entries"]
    }
    assert entries[name]["n"] == 6 and entries[name]["failed"] == 6 and entries["mean"]["n"] == 12


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_fault_in_a_method_fails_only_its_images_with_one_worker(tmp_path, temp_method, fault):
    action, reason = FAULTS[fault]
    name = temp_method("test-faulty", faulty(action))
    result = run(tmp_path, methods=[name, "mean"])
    _check_only_the_faulty_work_failed(result, name, reason)


@pytest.mark.parametrize("fault", ["SystemExit", "KeyboardInterrupt"])
def test_a_fault_in_a_method_running_in_the_driver_fails_only_its_images(
    tmp_path, temp_method, monkeypatch, fault
):
    """GPU methods run in a thread of the driver (CUDA does not survive fork); forced here on
    the CPU. What Python can catch there fails the method's images; the run goes on."""
    import benchmark.run.runner

    action, reason = FAULTS[fault]
    name = temp_method("test-faulty", faulty(action))
    monkeypatch.setattr(benchmark.run.runner, "runs_in_driver", lambda ctx, method: method == name)
    result = run(tmp_path, methods=[name, "mean"])
    _check_only_the_faulty_work_failed(result, name, reason)


def test_a_data_set_that_exits_stops_the_run_with_one_clear_error(tmp_path, temp_dataset):
    """Decoding is the harness's work, not a method's: a data set plug-in that exits inside a
    worker stops the run with one line (exit 1), and the driver still writes run.json."""

    class Exits(TensorDataset):
        def images(self, indices):
            raise SystemExit(3)

    pixels = build_dataset("skimage-patches", "test").pixels[:12]
    name = temp_dataset("test-exits", lambda **kw: Exits(pixels, "test"))
    with pytest.raises(ContractError, match=r"data set or mask generator raised SystemExit\(3\)"):
        run(tmp_path, dataset=name)
    assert read_json(tmp_path / "run" / "run.json")["status"] == "interrupted"


def _photos(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(n):
        cv2.imwrite(str(folder / f"{k:03d}.png"), rng.integers(0, 256, (24, 24, 3), np.uint8))


@pytest.mark.parametrize("where", ["worker", "driver"])
def test_a_method_changing_the_working_directory_moves_no_input_or_output(
    tmp_path, temp_method, monkeypatch, where
):
    import benchmark.run.runner

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    class Wanders(Method):
        def inpaint(self, masked, mask):
            os.chdir(elsewhere)
            return MeanFill().inpaint(masked, mask)

    name = temp_method("test-wanders", Wanders)
    _photos(tmp_path / "photos", 12)
    dataset = "folder:photos"  # relative: read again after the method has moved
    if where == "driver":
        monkeypatch.setattr(benchmark.run.runner, "runs_in_driver", lambda ctx, m: m == name)
        # the driver reads the next batch while its method runs: a relative folder read then
        # races the method's chdir (the data set would have to keep an absolute root)
        dataset = "skimage-patches"
    monkeypatch.chdir(tmp_path)
    size = 24 if dataset.startswith("folder") else None  # the photos' own side
    result = run(
        tmp_path, methods=[name, "mean"], dataset=dataset, size=size, out="run", save_images=True
    )
    assert Path.cwd() == tmp_path
    assert list(elsewhere.iterdir()) == []
    folder = tmp_path / "run"
    assert result.run_dir == folder
    assert set(statuses(folder, name).values()) == {"ok"}
    assert read_json(folder / "run.json")["status"] == "complete"
    assert (folder / "leaderboard.json").exists() and (folder / "leaderboard.md").exists()
    assert len(list((folder / "images").rglob("*.png"))) == 12 * 4  # original, mask, 2 methods


# -- threads a method leaves behind, signals on the driver (real processes) ----------------------
SCRIPT = textwrap.dedent(
    """
    import os, sys, threading, time
    import benchmark.run.runner
    from benchmark.cli import main
    from benchmark.method import METHODS, Method
    from methods.floors import MeanFill

    class Slow(Method):
        def inpaint(self, masked, mask):
            time.sleep(3600)

    class Leaks(Method):
        def inpaint(self, masked, mask):
            threading.Thread(target=time.sleep, args=(3600,), daemon=False, name="leaked").start()
            return MeanFill().inpaint(masked, mask)

    METHODS.add("test-slow", Slow)
    METHODS.add("test-leaks", Leaks)
    METHODS.add("test-leaks-in-driver", Leaks)
    benchmark.run.runner.runs_in_driver = lambda ctx, name: name == "test-leaks-in-driver"
    sys.exit(main(sys.argv[1:]))
    """
)


def _stat(pid: int | str) -> list[str]:
    """Fields of ``/proc/PID/stat`` after the command name: state, ppid, pgrp, session, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _processes(field: int, value: int) -> set[int]:
    """Processes whose ``/proc`` stat field ``field`` (1 ppid, 3 session) equals ``value``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(entry.name)[field]) == value:
                    found.add(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


def _alive(pid: int) -> bool:
    try:
        return _stat(pid)[0] not in ("Z", "X")  # a zombie has exited
    except OSError:
        return False


def _default_signals() -> None:
    """The run's signals at their defaults, whatever the test process inherited (``nohup``
    ignores SIGHUP, a background job SIGINT): the run keeps a signal that is ignored when it
    starts ignored, as a daemon expects."""
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


@pytest.fixture
def cli(tmp_path: Path):
    """``cli(*args)`` starts the harness's ``run`` (with the test methods of :data:`SCRIPT`) in a
    session of its own, output to files (a worker left behind cannot block reading them);
    whatever of that session is still alive at the end is killed."""
    script = tmp_path / "cli.py"
    script.write_text(SCRIPT)
    started: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        with open(tmp_path / "stdout.txt", "w") as out, open(tmp_path / "stderr.txt", "w") as err:
            process = subprocess.Popen(
                [sys.executable, str(script), "run", "--quiet", "--batch-size", "6", *args],
                stdout=out,
                stderr=err,
                cwd=tmp_path,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                start_new_session=True,  # its own session: the test finds and ends its processes
                preexec_fn=_default_signals,  # a test run under nohup must not pass SIG_IGN on
            )
        started.append(process)
        return process

    yield start
    for process in started:
        for pid in _processes(3, process.pid) if process.pid > 1 else ():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.kill()
        process.wait()


def _wait_for_records(process: subprocess.Popen, records: Path, count: int) -> None:
    deadline = time.monotonic() + 90
    while not (records.exists() and records.read_text().count("\n") >= count):
        if time.monotonic() > deadline or process.poll() is not None:
            pytest.fail(f"no records written: {(records.parent.parent / 'stderr.txt').read_text()}")
        time.sleep(0.2)


def _finished(process: subprocess.Popen, seconds: float) -> tuple[int, str]:
    """Exit code and stderr of ``process``, which must end within ``seconds``."""
    try:
        code = process.wait(seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the run did not end within {seconds:g} s")
    return code, (Path(process.args[1]).parent / "stderr.txt").read_text()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_threads_a_method_leaves_running_never_hang_the_exit(tmp_path, cli):
    methods = "test-leaks,test-leaks-in-driver,mean"
    process = cli(
        "--methods", methods, "--masks", "square", "--limit", "12", "--workers", "1", "--out", "run"
    )
    code, stderr = _finished(process, 90)
    assert code == 0, stderr
    assert "2 thread(s) started by a method are still running (leaked)" in stderr
    info = read_json(tmp_path / "run" / "run.json")
    assert info["status"] == "complete" and info["failed"] == 0 and info["computed"] == 36


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
@pytest.mark.parametrize("signum, workers", [(signal.SIGTERM, "2"), (signal.SIGHUP, "1")])
def test_sigterm_and_sighup_stop_a_run_like_ctrl_c(tmp_path, cli, signum, workers):
    process = cli(
        "--methods", "mean,test-slow", "--masks", "square", "--limit", "36",
        "--workers", workers, "--timeout", "0", "--out", "run",
    )  # fmt: skip
    records = tmp_path / "run" / "records.jsonl"
    _wait_for_records(process, records, 6)
    workers_pids = _processes(1, process.pid)
    assert len(workers_pids) == int(workers)
    process.send_signal(signum)
    code, stderr = _finished(process, 30)
    name = signal.Signals(signum).name
    assert code == 128 + signum, stderr
    assert stderr.strip().splitlines() == [
        f"interrupted by {name}: finished records are saved; rerun the same command to resume"
    ]
    assert read_json(tmp_path / "run" / "run.json")["status"] == "interrupted"
    kept = list(RecordStore(records))
    assert {r["method"] for r in kept} == {"mean"}
    table = read_json(tmp_path / "run" / "leaderboard.json")["tables"][0]
    assert {e["method"]: e["n"] for e in table["entries"]}["mean"] == len(kept)
    assert not any(_alive(pid) for pid in workers_pids)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
def test_workers_exit_within_seconds_after_the_driver_is_killed(tmp_path, cli):
    process = cli(
        "--methods", "mean,test-slow", "--masks", "square", "--limit", "36",
        "--workers", "2", "--timeout", "0", "--out", "run",
    )  # fmt: skip
    _wait_for_records(process, tmp_path / "run" / "records.jsonl", 6)
    workers = _processes(1, process.pid)
    assert len(workers) == 2
    process.kill()
    process.wait()
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in workers if _alive(pid)] == []


def test_an_interrupt_of_the_driver_keeps_finished_batches_and_resumes(tmp_path, temp_method):
    """Ctrl-C reaches the driver (a real SIGINT, sent from inside the worker's second batch):
    the first batch is kept, run.json says interrupted, and a rerun computes only the rest."""
    target = {"driver": os.getpid()}  # None: no interrupt

    class InterruptsTheDriver(Method):
        def inpaint_indexed(self, masked, mask, indices, mask_name):
            driver = target["driver"]
            if driver is not None and driver > 1 and os.getpid() != driver and 6 in indices:
                os.kill(driver, signal.SIGINT)
                time.sleep(60)  # killed by the driver
            return MeanFill().inpaint(masked, mask)

        def inpaint(self, masked, mask):
            raise AssertionError("inpaint_indexed is called instead")

    name = temp_method("test-interrupts", InterruptsTheDriver)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, methods=[name])
    assert time.monotonic() - started < 30
    folder = tmp_path / "run"
    assert sorted(statuses(folder, name)) == list(range(6))
    assert read_json(folder / "run.json")["status"] == "interrupted"
    assert read_json(folder / "leaderboard.json")["tables"][0]["entries"][0]["n"] == 6
    target["driver"] = None  # the rerun is not interrupted
    resumed = run(tmp_path, methods=[name])
    assert (resumed.computed, resumed.reused, resumed.failed) == (6, 6, 0)


# -- --max-memory ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, size",
    [
        ("512M", 2**29),
        ("2G", 2**31),
        ("1.5g", 3 * 2**29),
        ("2GiB", 2**31),
        ("64KB", 2**16),
        ("4096", 4096),
    ],
)
def test_max_memory_sizes_are_binary_units(text, size):
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["", "abc", "0", "-1G", "2X", "nan", "1e9", "G"])
def test_a_bad_max_memory_is_one_usage_error(text):
    with pytest.raises(UsageError, match="--max-memory: expected a size such as 2G or 512M"):
        parse_memory(text)


def test_a_bad_max_memory_on_the_command_line_is_one_line_and_exit_2(tmp_path, capsys):
    from benchmark.cli import main

    code = main(
        [
            "run",
            "--methods",
            "mean",
            "--masks",
            "square",
            "--max-memory",
            "lots",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --max-memory: expected a size such as 2G or 512M, got 'lots'"
    ]
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is enforced on Linux")
def test_a_method_needing_more_than_max_memory_fails_its_batch_and_the_run_goes_on(
    tmp_path, temp_method
):
    class Greedy(Method):
        def inpaint_indexed(self, masked, mask, indices, mask_name):
            if 6 in indices:
                torch.ones(2**30, dtype=torch.uint8)  # 1 GiB, over the 256 MiB allowed
            return MeanFill().inpaint(masked, mask)

        def inpaint(self, masked, mask):
            raise AssertionError("inpaint_indexed is called instead")

    name = temp_method("test-greedy", Greedy)
    result = run(tmp_path, methods=[name, "mean"], max_memory="256M")
    found = statuses(result.run_dir, name)
    assert [found[i] for i in range(6)] == ["ok"] * 6
    assert all(found[i].startswith("failed: exceeded --max-memory 256M (") for i in range(6, 12))
    assert set(statuses(result.run_dir, "mean").values()) == {"ok"}
    info = read_json(result.run_dir / "run.json")
    assert info["status"] == "complete" and info["config"]["max_memory"] == "256M"


def test_max_memory_with_ray_is_refused_in_one_line():
    with pytest.raises(UsageError, match="--max-memory limits local worker processes"):
        run_benchmark(
            RunConfig(methods=["mean"], masks=["square"], executor="ray", max_memory="2G")
        )


def test_no_thread_of_the_harness_is_left_after_a_run(tmp_path):
    """The exit path leaves at once only when a method left threads: the harness leaves none."""
    from benchmark.run.runner import lingering_threads

    run(tmp_path, methods=["mean", "telea"])
    assert lingering_threads() == []
