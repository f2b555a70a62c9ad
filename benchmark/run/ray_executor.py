"""``--executor ray``: (method, mask, index-chunk) tasks on a Ray cluster, records written here.

Each task rebuilds the run on its worker from the run's configuration (once per worker process),
checks that the worker sees the same method and data fingerprints as the driver (a node with
other code or other files fails instead of writing mislabelled records), evaluates its chunk
with the same pipeline as a local run and returns the records; the driver writes them into the
run folder as they arrive, so a distributed run resumes exactly like a local one. A task whose
worker dies is retried once by Ray, then recorded as failed; a task that runs past the time
limit is cancelled (its worker killed) and recorded as failed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from benchmark.errors import BenchmarkError, DataError, UsageError
from benchmark.records import truncate_reason
from benchmark.run.pipeline import Pair, Unit, failed_records

if TYPE_CHECKING:
    from benchmark.run.config import RunConfig
    from benchmark.run.plan import Plan

INSTALL_HINT = 'pip install "inpaint-bench[ray]"'
#: Seconds allowed to open a TCP connection to ``--ray-address`` before calling it unreachable.
CONNECT_TIMEOUT = 5.0

_PLANS: dict[str, Any] = {}  # per worker process: run configuration -> built plan


def import_ray():
    """The ``ray`` module, or a one-line :class:`UsageError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(
            f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}"
        ) from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail in seconds, with one line, when ``host:port`` does not accept connections."""
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"--ray-address: expected HOST:PORT or 'auto', got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise UsageError(f"cannot reach the Ray cluster at {address!r}: {exc}") from None


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Hide what Ray's C++ core writes to file descriptor 2 while connecting (a retry line per
    second against a wrong address); the failure is reported as one line instead."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def connect(address: str | None, cpus: int) -> bool:
    """Join the cluster at ``address`` or start a local one with ``cpus`` CPUs.

    Returns True when this call started Ray (the caller shuts it down at the end).
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address and address != "auto":
        _check_reachable(address)
    try:
        with _stderr_silenced():
            ray.init(
                address=address or None,
                num_cpus=None if address else cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
                configure_logging=True,
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"at {address!r}" if address else "(local)"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot connect to the Ray cluster {where}: {first}") from None
    return True


def _plan_on_worker(config: RunConfig, run_dir: str | None):
    """The run's plan on this worker process, built once per configuration."""
    from benchmark.run.artifacts import save_images_to
    from benchmark.run.plan import build_plan

    key = repr(config)
    if key not in _PLANS:
        plan = build_plan(config)
        if run_dir is not None:
            from pathlib import Path

            plan.context.save_images = save_images_to(Path(run_dir))
        _PLANS[key] = plan
    return _PLANS[key]


def evaluate_task(
    config: RunConfig, pair: Pair, indices: list[int], expected: dict[str, str], run_dir: str | None
) -> list[dict[str, Any]]:
    """Body of one Ray task: the records of ``pair`` on ``indices``."""
    from benchmark.run.executors import set_threads
    from benchmark.run.pipeline import evaluate_unit

    set_threads(1)
    plan = _plan_on_worker(config, run_dir)
    ctx = plan.context
    method_name, mask_name = pair
    seen = {"fingerprint": ctx.fingerprints[method_name], "provenance": ctx.provenance[mask_name]}
    if seen != expected:
        raise DataError(
            f"Ray worker on {socket.gethostname()} sees other code, weights or data than the "
            f"driver for {method_name} / {mask_name} ({seen} vs {expected}); install the same "
            "version everywhere and give data paths every node can read"
        )
    return evaluate_unit(ctx, Unit({pair: list(indices)}))


class RayExecutor:
    """Submits (method, mask, index-chunk) tasks and hands their records to ``deliver``."""

    def __init__(self, config: RunConfig, plan: Plan, workers: int) -> None:
        self.config, self.plan, self.workers = config, plan, workers

    def _chunks(self, todo: dict[Pair, list[int]], cpus: int) -> list[tuple[Pair, list[int]]]:
        chunks = []
        for pair, indices in todo.items():
            size = max(1, min(self.plan.batch_size, math.ceil(len(indices) / (4 * cpus))))
            chunks += [(pair, indices[k : k + size]) for k in range(0, len(indices), size)]
        return chunks

    def run(self, todo: dict[Pair, list[int]], deliver) -> None:
        ray = import_ray()
        started_ray = connect(self.config.ray_address, self.workers)
        try:
            self._run(ray, todo, deliver)
        finally:
            if started_ray:
                ray.shutdown()

    def _run(self, ray, todo: dict[Pair, list[int]], deliver) -> None:
        ctx = self.plan.context
        resources = ray.cluster_resources()
        cpus = max(1, int(resources.get("CPU", 1)))
        gpus = resources.get("GPU", 0) > 0 and self.config.device != "cpu"
        remote = ray.remote(evaluate_task)
        run_dir = str(self.config.run_dir().resolve()) if self.config.save_images else None
        config_ref = ray.put(self.config)
        queue = self._chunks(todo, cpus)
        queue.reverse()  # pop() from the end keeps the submission order
        in_flight: dict[Any, tuple[Pair, list[int], float]] = {}
        limit = 2 * self.config.timeout if self.config.timeout > 0 else 0.0
        try:
            while queue or in_flight:
                while queue and len(in_flight) < 2 * cpus:
                    pair, indices = queue.pop()
                    on_gpu = gpus and ctx.methods[pair[0]].device == "auto"
                    expected = {
                        "fingerprint": ctx.fingerprints[pair[0]],
                        "provenance": ctx.provenance[pair[1]],
                    }
                    ref = remote.options(
                        num_cpus=1, num_gpus=1 if on_gpu else 0, max_retries=1
                    ).remote(config_ref, pair, indices, expected, run_dir)
                    in_flight[ref] = (pair, indices, time.monotonic())
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
                for ref in ready:
                    pair, indices, _ = in_flight.pop(ref)
                    deliver(self._result(ray, ref, pair, indices))
                now = time.monotonic()
                for ref, (pair, indices, started) in list(in_flight.items()):
                    if limit and now - started > limit:
                        ray.cancel(ref, force=True)
                        del in_flight[ref]
                        reason = f"timed out after {limit:g} s"
                        deliver(failed_records(ctx, Unit({pair: indices}), reason))
        finally:
            for ref in in_flight:
                ray.cancel(ref, force=True)

    def _result(self, ray, ref, pair: Pair, indices: list[int]) -> list[dict[str, Any]]:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BenchmarkError):  # the harness's own error: stop the run
                raise cause from None
            reason = f"Ray task failed: {truncate_reason(str(cause or exc))}"
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.RayError) as exc:
            reason = f"Ray worker died (retried once): {type(exc).__name__}"
        return failed_records(self.plan.context, Unit({pair: indices}), reason)
