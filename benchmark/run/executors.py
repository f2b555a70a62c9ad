"""Where units of work run on one machine: in this process, or in a pool of worker processes.

* :class:`InProcessExecutor` evaluates units one after another in this process and prepares
  the next unit (decode and masks) in a background thread while the current one runs, so a
  GPU method never waits for the CPU side.
* :class:`ProcessPoolExecutor` forks ``workers`` processes that each take whole units (decode,
  masks, every CPU method, CPU metrics): no thread of the pipeline holds the GIL for the others.
  It is written here rather than taken from ``concurrent.futures`` because a run needs what
  that pool cannot do: kill one worker stuck in a method and replace it, retry the unit of a
  worker that died, and stop at once on Ctrl-C instead of waiting for a stuck call.

Both hand each unit's records to ``deliver`` in the driver process, which alone writes them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import wait
from typing import Any

import torch

from benchmark.records import truncate_reason
from benchmark.run.pipeline import (
    Context,
    Unit,
    evaluate_unit,
    failed_records,
    prepare_unit,
    run_prepared,
)

Deliver = Callable[[list[dict[str, Any]]], None]


def fork_available() -> bool:
    """Worker processes are forked (they inherit the built methods); only where that is safe."""
    return os.name == "posix" and "fork" in multiprocessing.get_all_start_methods()


def set_threads(threads: int) -> None:
    """Intra-op threads of torch and OpenCV, so parallel workers do not oversubscribe cores."""
    import cv2

    torch.set_num_threads(max(1, threads))
    cv2.setNumThreads(max(1, threads))


class InProcessExecutor:
    """Units one after another in this process; the next unit is prepared in a thread."""

    def __init__(self, ctx: Context, stop: threading.Event | None = None) -> None:
        self.ctx = ctx
        self.stop = stop or threading.Event()

    def run(self, units: Iterable[Unit], deliver: Deliver) -> None:
        iterator = iter(units)
        current = next(iterator, None)
        with ThreadPoolExecutor(1, thread_name_prefix="inpaint-bench-prefetch") as prefetch:
            future = prefetch.submit(prepare_unit, self.ctx, current) if current else None
            while current is not None and not self.stop.is_set():
                prepared = future.result()
                following = next(iterator, None)
                if following is not None:
                    future = prefetch.submit(prepare_unit, self.ctx, following)
                run_prepared(self.ctx, current, prepared, deliver)
                current = following
            if future is not None:
                future.cancel()


def _worker_main(conn, ctx: Context, threads: int, close_fds: tuple[int, ...]) -> None:
    """A forked worker: evaluate the units it receives until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C and kills us
    for fd in close_fds:  # e.g. the run-folder lock: only the driver may hold it
        try:
            os.close(fd)
        except OSError:
            pass
    # No set_threads(threads) here: the driver set the count before forking (see _Worker).
    # Resizing torch's thread pools in a forked child can deadlock on a pool lock that some
    # thread of the parent held at the moment of the fork (seen in the test suite).
    while True:
        try:
            unit = conn.recv()
        except (EOFError, OSError):
            return
        if unit is None:
            return
        try:  # each (method, mask) pair's records go back as soon as they are done
            evaluate_unit(ctx, unit, lambda records: conn.send(("part", records, False)))
            message: tuple[str, Any] = ("done", None)
        except (Exception, KeyboardInterrupt) as exc:  # the harness's own failure, or a
            message = ("raise", exc)  # KeyboardInterrupt raised by code (SIGINT is ignored here)
        try:
            conn.send((*message, ctx.tainted))
        except Exception:  # an unpicklable exception: send its text
            conn.send(("raise", RuntimeError(truncate_reason(repr(message[1]))), ctx.tainted))
        if ctx.tainted:  # a timed-out method still runs in a daemon thread: leave with it
            os._exit(0)


def _forget_done(unit: Unit, records: list[dict[str, Any]]) -> None:
    """Drop a delivered pair from ``unit``, so a retry after a crash never redoes it."""
    if records:
        unit.todo.pop((records[0]["method"], records[0]["mask"]), None)


class _Worker:
    def __init__(self, ctx: Context, threads: int, close_fds: tuple[int, ...]) -> None:
        import cv2

        self.conn, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("fork").Process(
            target=_worker_main, args=(child, ctx, threads, close_fds), daemon=True
        )
        # The child inherits the thread counts in force at the fork; the driver's are restored.
        before = torch.get_num_threads(), cv2.getNumThreads()
        set_threads(threads)
        try:
            self.process.start()
        finally:
            torch.set_num_threads(before[0])
            cv2.setNumThreads(before[1])
        child.close()
        self.unit: Unit | None = None
        self.started = 0.0

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


class ProcessPoolExecutor:
    """``workers`` forked processes taking whole units; stuck ones killed, dead ones replaced."""

    def __init__(
        self,
        ctx: Context,
        workers: int,
        threads: int = 1,
        close_fds: tuple[int, ...] = (),
        stop: threading.Event | None = None,
    ) -> None:
        self.ctx, self.workers, self.threads, self.close_fds = ctx, workers, threads, close_fds
        self.stop = stop or threading.Event()

    def _backstop(self, unit: Unit) -> float:
        """Seconds after which a busy worker is killed: the per-call limit for every pair plus one
        more for decoding and masks (the worker itself enforces the per-call limit)."""
        return self.ctx.timeout * (len(unit.todo) + 1) if self.ctx.timeout > 0 else 0.0

    def run(self, units: Iterable[Unit], deliver: Deliver) -> None:
        iterator = iter(units)
        retry: deque[Unit] = deque()
        pool = [_Worker(self.ctx, self.threads, self.close_fds) for _ in range(self.workers)]
        exhausted = False
        try:
            while not self.stop.is_set():
                for worker in pool:
                    if worker.unit is not None:
                        continue
                    unit = retry.popleft() if retry else None
                    if unit is None and not exhausted:
                        unit = next(iterator, None)
                        exhausted = unit is None
                    if unit is None:
                        break
                    worker.unit, worker.started = unit, time.monotonic()
                    worker.conn.send(unit)
                busy = [w for w in pool if w.unit is not None]
                if not busy:
                    break
                ready = wait([w.conn for w in busy], timeout=0.5)
                for k, worker in enumerate(pool):
                    if worker.unit is None:
                        continue
                    unit = worker.unit
                    if worker.conn in ready:
                        try:
                            kind, payload, tainted = worker.conn.recv()
                        except (EOFError, OSError):
                            pool[k] = self._replace(worker)
                            self._died(unit, worker, retry, deliver)
                            continue
                        if kind == "part":
                            deliver(payload)
                            _forget_done(unit, payload)
                            worker.started = time.monotonic()  # progress: the limit restarts
                            continue
                        worker.unit = None
                        if kind == "raise":
                            raise payload
                        if tainted:
                            pool[k] = self._replace(worker)
                    elif (
                        limit := self._backstop(unit)
                    ) and time.monotonic() - worker.started > limit:
                        pool[k] = self._replace(worker)
                        deliver(failed_records(self.ctx, unit, f"timed out after {limit:g} s"))
        finally:
            for worker in pool:
                if worker.unit is None and worker.process.is_alive():
                    try:
                        worker.conn.send(None)
                    except OSError:
                        pass
            for worker in pool:
                if worker.unit is not None or self.stop.is_set():
                    worker.kill()
                else:
                    worker.process.join(2)
                    worker.kill()

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        return _Worker(self.ctx, self.threads, self.close_fds)

    def _died(self, unit: Unit, worker: _Worker, retry: deque[Unit], deliver: Deliver) -> None:
        """A worker died mid-unit: retry the unit once, then record it failed."""
        if not unit.todo:  # every pair was delivered before it died
            return
        if unit.attempts == 0:
            unit.attempts = 1
            retry.append(unit)
        else:
            code = worker.process.exitcode
            deliver(failed_records(self.ctx, unit, f"worker process died (exit code {code})"))
