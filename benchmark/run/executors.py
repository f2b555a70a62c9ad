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

import ctypes
import math
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import wait
from typing import Any

import torch

from benchmark.errors import ContractError, UsageError
from benchmark.records import truncate_reason
from benchmark.run.pipeline import (
    Context,
    Pair,
    Unit,
    evaluate_unit,
    failed_records,
    is_out_of_memory,
    prepare_unit,
    run_prepared,
    split_units,
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


def parse_memory(text: str) -> int:
    """Bytes of a ``--max-memory`` size: a number with an optional binary unit K, M, G or T
    (``2G`` = 2 GiB; ``B``/``iB`` may follow the unit; a bare number is bytes).

    >>> parse_memory("512M"), parse_memory("1.5G"), parse_memory("2GiB")
    (536870912, 1610612736, 2147483648)
    """
    match = _SIZE.fullmatch(str(text).strip())
    value = float(match.group(1)) * _UNITS[match.group(2).upper()] if match else 0.0
    if not match or not value >= 1 or not math.isfinite(value):
        raise UsageError(f"--max-memory: expected a size such as 2G or 512M, got {text!r}")
    return int(value)


_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:i?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
#: ``prctl`` option: the signal this process gets when the thread that forked it exits
PR_SET_PDEATHSIG = 1


def _address_space() -> int:
    """Bytes of this process's address space (``VmSize``), 0 where ``/proc`` has none."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _limit_memory(extra: int) -> None:
    """Let this worker's address space grow by at most ``extra`` bytes (``RLIMIT_AS``)."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + extra
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _die_with_parent(parent: int) -> None:
    """End this worker when the driver ends, however it ends (SIGKILL included): the kernel's
    parent-death signal on Linux, else a thread watching the parent's pid."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
        if armed:
            if os.getppid() != parent:  # the driver died before the signal was armed
                os._exit(1)
            return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="inpaint-bench-parent-watch").start()


def _worker_main(
    conn, ctx: Context, close_fds: tuple[int, ...], parent: int, memory: int | None
) -> None:
    """A forked worker: evaluate the units it receives until told to stop, then leave at once
    (``os._exit``: a thread a method left running must not keep the worker alive)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # the driver handles these and kills us
    _die_with_parent(parent)
    for fd in close_fds:  # the run-folder lock, and the driver's ends of every worker's pipe:
        try:  # with them closed here, a dead driver is an end of file to each worker
            os.close(fd)
        except OSError:
            pass
    if memory is not None:
        _limit_memory(memory)
    # No set_threads(threads) here: the driver set the count before forking (see _Worker).
    # Resizing torch's thread pools in a forked child can deadlock on a pool lock that some
    # thread of the parent held at the moment of the fork (seen in the test suite). And the
    # work runs in a new thread, not this one: GNU OpenMP keeps its thread team per thread, so
    # this thread inherited the driver's team, whose threads do not exist here, and its first
    # parallel torch operation would wait for them forever (with more than one thread).
    serving = threading.Thread(target=_serve, args=(conn, ctx), name="inpaint-bench-worker")
    serving.start()
    serving.join()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _serve(conn, ctx: Context) -> None:
    """Evaluate the units the driver sends until it sends None, closes the pipe, or the last
    unit left a method running (a timed-out call: the worker ends with it)."""
    while True:
        try:
            unit = conn.recv()
        except (EOFError, OSError):
            return
        if unit is None:
            return
        try:  # each (method, mask) pair's records go back as soon as they are done
            evaluate_unit(
                ctx,
                unit,
                lambda records: conn.send(("part", records, False)),
                lambda pair: conn.send(("start", pair, False)),
            )
            message: tuple[str, Any] = ("done", None)
        except BaseException as exc:  # the harness's own failure, or a data set's or mask
            message = ("raise", _harness_error(ctx, exc))  # generator's (methods' are records)
        try:
            conn.send((*message, ctx.tainted))
        except Exception:  # an unpicklable exception: send its text
            conn.send(("raise", RuntimeError(truncate_reason(repr(message[1]))), ctx.tainted))
        if ctx.tainted:
            return


def _harness_error(ctx: Context, exc: BaseException) -> BaseException:
    """What the driver raises for ``exc`` from a worker outside any method call."""
    if ctx.memory_limit is not None and is_out_of_memory(exc):
        return UsageError(
            f"--max-memory {ctx.memory_limit} is too small for decoding and masking one batch "
            f"({truncate_reason(exc, 120)}); raise it or lower --batch-size"
        )
    if not isinstance(exc, Exception):  # SystemExit or KeyboardInterrupt from plug-in code
        args = ", ".join(repr(a) for a in exc.args)
        return ContractError(f"a data set or mask generator raised {type(exc).__name__}({args})")
    return exc


def _forget_done(unit: Unit, records: list[dict[str, Any]]) -> None:
    """Drop a delivered pair from ``unit``, so a retry after a crash never redoes it."""
    if records:
        unit.todo.pop((records[0]["method"], records[0]["mask"]), None)


def share(unit: Unit, parts: int) -> list[Unit]:
    """``unit`` cut into at most ``parts`` units of consecutive images of about equal size.

    The pool does this to a run's last unit: a unit is indivisible work, so a last unit
    taken whole by one worker keeps the others idle until it is done (100 images at 512x512
    on two workers came as 43 + 43 + 14 images: one worker did 57; shared, each does 50).
    Records do not depend on how images are grouped into units.

    >>> [u.todo for u in share(Unit({("m", "k"): [3, 4, 5, 6, 7]}), 2)]
    [{('m', 'k'): [3, 4, 5]}, {('m', 'k'): [6, 7]}]
    >>> len(share(Unit({("m", "k"): [3]}), 2))
    1
    """
    images = len(unit.indices)
    if parts < 2 or images < 2:
        return [unit]
    return split_units(unit.todo, math.ceil(images / parts))


def death_reason(exitcode: int | None) -> str:
    """Why a worker is gone, from its exit code (negative: the signal that ended it)."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"worker process died (signal {signal.Signals(-exitcode).name})"
        except ValueError:
            pass
    return f"worker process died (exit code {exitcode})"


class _Worker:
    def __init__(
        self, ctx: Context, threads: int, close_fds: tuple[int, ...], memory: int | None = None
    ) -> None:
        import cv2

        self.conn, child = multiprocessing.Pipe()
        closing = (*close_fds, self.conn.fileno())  # the child holds only its own end
        self.process = multiprocessing.get_context("fork").Process(
            target=_worker_main, args=(child, ctx, closing, os.getpid(), memory), daemon=True
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
        self.pair: Pair | None = None  # the pair whose method runs now, as the worker said
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
        memory: int | None = None,
    ) -> None:
        self.ctx, self.workers, self.threads, self.close_fds = ctx, workers, threads, close_fds
        self.stop = stop or threading.Event()
        self.memory = memory  # bytes each worker may add to its address space, or None

    def _backstop(self, unit: Unit) -> float:
        """Seconds after which a busy worker is killed: the per-call limit for every pair plus one
        more for decoding and masks (the worker itself enforces the per-call limit)."""
        return self.ctx.timeout * (len(unit.todo) + 1) if self.ctx.timeout > 0 else 0.0

    def _spawn(self, pool: list[_Worker]) -> _Worker:
        """A new worker, which closes the driver's ends of the other workers' pipes."""
        others = tuple(w.conn.fileno() for w in pool if not w.conn.closed)
        return _Worker(self.ctx, self.threads, (*self.close_fds, *others), self.memory)

    def run(self, units: Iterable[Unit], deliver: Deliver) -> None:
        iterator = iter(units)
        retry: deque[Unit] = deque()
        pool: list[_Worker] = []
        following = next(iterator, None)  # one unit ahead, to know which one is the last
        try:
            for _ in range(self.workers):
                pool.append(self._spawn(pool))
            while not self.stop.is_set():
                for worker in pool:
                    if worker.unit is not None:
                        continue
                    unit = retry.popleft() if retry else None
                    if unit is None and following is not None:
                        unit, following = following, next(iterator, None)
                        if following is None:  # the last unit: shared among the workers
                            unit, *rest = share(unit, self.workers)
                            retry.extend(rest)
                    if unit is None:
                        break
                    worker.unit, worker.pair, worker.started = unit, None, time.monotonic()
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
                            pool[k] = self._replace(worker, pool)
                            self._died(unit, worker, retry, deliver)
                            continue
                        if kind == "start":
                            worker.pair = payload
                            continue
                        if kind == "part":
                            deliver(payload)
                            _forget_done(unit, payload)
                            worker.pair = None
                            worker.started = time.monotonic()  # progress: the limit restarts
                            continue
                        worker.unit = None
                        if kind == "raise":
                            raise payload
                        if tainted:
                            pool[k] = self._replace(worker, pool)
                    elif (
                        limit := self._backstop(unit)
                    ) and time.monotonic() - worker.started > limit:
                        pool[k] = self._replace(worker, pool)
                        self._fail_running(
                            unit, worker, retry, deliver, f"timed out after {limit:g} s"
                        )
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

    def _replace(self, worker: _Worker, pool: list[_Worker]) -> _Worker:
        worker.kill()
        return self._spawn(pool)

    def _fail_running(
        self, unit: Unit, worker: _Worker, retry: deque[Unit], deliver: Deliver, reason: str
    ) -> None:
        """Record the pair the lost worker was running as failed (the whole unit when no pair
        had started) and queue the rest of the unit again."""
        pair = worker.pair
        worker.unit = worker.pair = None
        if pair is None or pair not in unit.todo:
            deliver(failed_records(self.ctx, unit, reason))
            return
        deliver(failed_records(self.ctx, Unit({pair: unit.todo.pop(pair)}), reason))
        if unit.todo:
            retry.append(unit)

    def _died(self, unit: Unit, worker: _Worker, retry: deque[Unit], deliver: Deliver) -> None:
        """A worker died mid-unit: the pair it was running is retried once, then recorded as
        failed with the reason; the unit's other pairs are queued again."""
        if not unit.todo:  # every pair was delivered before it died
            return
        pair = worker.pair
        if pair is not None and pair in unit.todo:
            unit.crashes[pair] = unit.crashes.get(pair, 0) + 1
            again = unit.crashes[pair] < 2
        else:  # died while decoding or drawing masks
            unit.attempts += 1
            again = unit.attempts < 2
        if again:
            retry.append(unit)
        else:
            self._fail_running(unit, worker, retry, deliver, death_reason(worker.process.exitcode))
