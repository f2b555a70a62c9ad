"""A run: every method on every mask type over every image, batch-major, into a run folder.

The runner takes a :class:`~benchmark.run.config.RunConfig`, builds its plan
(:mod:`benchmark.run.plan`), locks the run folder (:mod:`benchmark.run.lock`), works out which
(method, mask, index) records are still to do (a record is reused only when its method
fingerprint and its provenance, i.e. data set, mask generator, seed, size, hole-ratio range and
the metrics' code, are unchanged), hands batches of that work to an executor
(:mod:`benchmark.run.pipeline` says what a batch does, :mod:`benchmark.run.executors` and
:mod:`benchmark.run.ray_executor` where it runs) and writes each batch's records as they arrive.
A failing or timed-out batch is recorded as failed and the run goes on.

Process faults (``docs/guides/process-faults.md``): CPU methods always run in forked worker
processes, even with ``--workers 1``, so a method that exits, crashes or leaks threads ends only
its worker; every path the run writes is resolved once, at the start; SIGTERM and SIGHUP stop a
run like Ctrl-C (finished records kept, ``run.json`` "interrupted", the leaderboard of what
finished written).
"""

from __future__ import annotations

import math
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmark.datasets import DATASETS
from benchmark.datasets.base import dataset_spec
from benchmark.device import device_description
from benchmark.errors import UsageError
from benchmark.leaderboard import build_leaderboard
from benchmark.masking import MASKS
from benchmark.method import METHODS
from benchmark.metrics import BUILTIN_METRICS
from benchmark.perceptual.feature_store import FeatureStore
from benchmark.records import STATUS_OK, RecordStore, record_key, write_atomic, write_json
from benchmark.registry import parse_spec
from benchmark.results.schema import RUN_FORMAT, Leaderboard, RunFile, validated
from benchmark.run.artifacts import check_run_dir, image_path, save_images_to, slugify
from benchmark.run.config import RunConfig, default_workers, prepare_results_dir
from benchmark.run.lock import RunLock
from benchmark.run.pipeline import Context, Pair, split_units
from benchmark.run.plan import Plan, build_plan, describe
from benchmark.run.progress import Progress
from benchmark.run.provenance import git_revision, plugin_versions, versions
from benchmark.run.set_metrics import has_features, store_features
from benchmark.tables import render_markdown


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP reached the driver: the run stops as it does on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        #: the shell's convention: 128 + the signal number (143 for SIGTERM, 129 for SIGHUP)
        self.exit_code = 128 + signum


#: Signals that stop a run like Ctrl-C (SIGINT keeps Python's own KeyboardInterrupt).
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))
#: Threads alive when the last run started (see :func:`lingering_threads`).
_THREADS_BEFORE: set[threading.Thread] = set()


def _handled(signals: tuple[int, ...]) -> tuple[int, ...]:
    """``signals`` less those this process ignores (``nohup`` ignores SIGHUP; a shell's
    background job ignores SIGINT): an ignored signal stays ignored."""
    return tuple(s for s in signals if signal.getsignal(s) is not signal.SIG_IGN)


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def _stop_signals() -> Iterator[None]:
    """While a run lasts, SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread."""
    if not _in_main_thread():  # Python lets only the main thread set handlers
        yield
        return
    previous = {s: signal.signal(s, _raise_interrupted) for s in _handled(STOP_SIGNALS)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP while the run's files are written (a second Ctrl-C must
    not leave ``run.json`` "running"); one that arrived is raised afterwards."""
    if not _in_main_thread():
        yield
        return
    arrived: list[int] = []
    held = _handled((signal.SIGINT, *STOP_SIGNALS))
    previous = {s: signal.signal(s, lambda signum, frame: arrived.append(signum)) for s in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if arrived and sys.exc_info()[0] is None:
        if arrived[0] == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(arrived[0])


def lingering_threads() -> list[threading.Thread]:
    """Non-daemon threads started during the last run and still alive: a method running in this
    process left them behind (Python would wait for them at exit; the CLI does not)."""
    return [
        t
        for t in threading.enumerate()
        if t.is_alive()
        and not t.daemon
        and t not in _THREADS_BEFORE
        and t is not threading.main_thread()
    ]


@dataclass
class RunResult:
    run_dir: Path
    leaderboard: dict[str, Any]
    computed: int
    reused: int
    failed: int


def _cap_workers(config: RunConfig) -> int:
    cores = default_workers()
    if config.workers > cores and config.executor == "local":
        print(
            f"warning: --workers {config.workers} is more than the {cores} cores available; "
            f"using {cores}",
            file=sys.stderr,
        )
        return cores
    return config.workers


def _memory_limit(config: RunConfig) -> int | None:
    """``--max-memory`` in bytes (None: no limit); refused where no worker can enforce it."""
    if config.max_memory is None:
        return None
    from benchmark.run.executors import fork_available, parse_memory

    limit = parse_memory(config.max_memory)
    if config.executor == "ray":
        raise UsageError(
            "--max-memory limits local worker processes; with --executor ray give the tasks' "
            "memory to the Ray cluster instead"
        )
    if not fork_available():
        print(
            "warning: --max-memory is enforced in forked worker processes, which this platform "
            "lacks; running without a memory limit",
            file=sys.stderr,
        )
    return limit


def run_benchmark(config: RunConfig) -> RunResult:
    """Run ``config``: write records, leaderboard and run.json; reuse finished records.

    SIGTERM and SIGHUP raise :class:`Interrupted` (a ``KeyboardInterrupt``) as Ctrl-C does.
    """
    config.validate()
    config.apply_image_limits()
    if config.allow_unverified_weights:
        print(
            "note: --allow-unverified-weights: weight files whose sha256 is not the published "
            "one are used (recorded in run.json)",
            file=sys.stderr,
        )
    memory = _memory_limit(config)
    workers = _cap_workers(config)
    _THREADS_BEFORE.clear()
    _THREADS_BEFORE.update(threading.enumerate())
    with _stop_signals():
        plan = build_plan(config)
        plan.context.memory_limit = config.max_memory if memory is not None else None
        indices = list(range(plan.count))
        # resolved once: a method that changes the working directory cannot move the output
        run_dir = config.run_dir().resolve()
        lock = RunLock(run_dir)
        lock.acquire()  # before anything reads or writes the folder
        try:
            return _run_locked(config, plan, workers, run_dir, lock, indices, memory)
        finally:
            lock.release()


def _run_locked(
    config: RunConfig,
    plan: Plan,
    workers: int,
    run_dir: Path,
    lock: RunLock,
    indices: list[int],
    memory: int | None,
) -> RunResult:
    ctx, count = plan.context, plan.count
    methods, masks = ctx.methods, ctx.masks
    check_run_dir(run_dir, config)
    store = RecordStore(run_dir / "records.jsonl")
    features = FeatureStore(run_dir)
    if config.save_images:
        ctx.save_images = save_images_to(run_dir)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run_info = {
        "format": RUN_FORMAT,
        "identity": config.identity(),
        "config": config.to_json(batch_size=plan.batch_size, workers=workers),
        "images": count,
        "dataset_size": len(ctx.dataset),
        "image_size": list(ctx.dataset.image_size),
        "methods": {name: describe(name) for name in methods},
        "masks": {name: describe(name, kind="mask") for name in masks},
        "provenance": {
            "methods": dict(ctx.fingerprints),
            "masks": {
                name: {**p, "hash": ctx.provenance[name]} for name, p in plan.provenance.items()
            },
            **({"metrics": dict(extra.provenance)} if (extra := ctx.extra_metrics) else {}),
        },
        "plugins": {
            **plugin_versions({n: parse_spec(n).name for n in methods}, METHODS),
            **plugin_versions({n: parse_spec(n).name for n in masks}, MASKS),
            **plugin_versions({config.dataset: dataset_spec(config.dataset).name}, DATASETS),
        },
        "skipped": {name: reason for name, reason in METHODS.failed_plugins.items()},
        "device": device_description(ctx.device),
        "versions": versions(),
        "git_revision": git_revision(),
        "started": started,
        "finished": None,
        "status": "running",
    }
    results_dir = prepare_results_dir(config, run_dir)  # this selection's leaderboard, run.json
    write_json(results_dir / "run.json", validated(run_info, RunFile, "run.json"))

    todo: dict[Pair, list[int]] = {}
    done: dict[Pair, int] = {}
    for mask_name in masks:
        for method_name in methods:
            pair = (method_name, mask_name)
            todo[pair] = [
                i for i in indices if not _is_done(store, features, ctx, config, run_dir, pair, i)
            ]
            done[pair] = count - len(todo[pair])
    reused = sum(done.values())
    counts = {"computed": 0, "failed": 0}
    written: set[tuple[str, str, int]] = set()
    guard = threading.Lock()
    progress = Progress({p: count for p in todo}, done, enabled=config.progress)

    def deliver(records: list[dict[str, Any]]) -> None:
        with guard:  # the GPU thread and the worker pool may both deliver
            if counts.get("closed"):  # an abandoned thread after the run's files were written
                return
            fresh = [r for r in records if (r["method"], r["mask"], r["index"]) not in written]
            store_features(features, fresh)  # before the records that refer to them
            store.append(fresh)
            written.update((r["method"], r["mask"], r["index"]) for r in fresh)
            counts["computed"] += len(fresh)
            counts["failed"] += sum(r["status"] != STATUS_OK for r in fresh)
            progress.update(fresh)

    real: dict[str, Any] | None = None
    try:
        _execute(config, plan, workers, todo, deliver, lock, memory)
        real = _real_features(config, plan)  # interruptible, unlike what follows
    finally:
        with guard:
            counts["closed"] = 1
        progress.close()
        with _signals_deferred():  # a second Ctrl-C must not leave run.json "running"
            leaderboard = _finish(
                config, plan, results_dir, store, run_info, counts, reused, real, features
            )
    return RunResult(results_dir, leaderboard, counts["computed"], reused, counts["failed"])


def _finish(
    config: RunConfig,
    plan: Plan,
    results_dir: Path,
    store: RecordStore,
    run_info: dict[str, Any],
    counts: dict[str, int],
    reused: int,
    real: dict[str, Any] | None = None,
    features: FeatureStore | None = None,
) -> dict[str, Any]:
    """Write the leaderboard of every current record and the final ``run.json`` (``real``: the
    real images' features of the set metrics, None when the run stopped before them)."""
    ctx, count = plan.context, plan.count
    methods, masks = ctx.methods, ctx.masks
    store.sync()
    selected = {
        key: record
        for record in store
        if (key := record_key(record))[0] in methods
        and key[2] in masks
        and key[3] < count
        and key[1] == ctx.fingerprints[key[0]]
        and record.get("provenance") == ctx.provenance[key[2]]
    }
    leaderboard = build_leaderboard(
        selected.values(),
        list(methods),
        list(masks),
        {
            **config.identity(),
            "limit": config.limit,
            "images": count,
            **({"metrics": list(ctx.extra_metrics.names)} if ctx.extra_metrics else {}),
        },
    )
    for table in leaderboard["tables"]:  # stochastic methods (diffusion models) are marked
        for entry in table["entries"]:
            if getattr(methods.get(entry["method"]), "stochastic", False):
                entry["stochastic"] = True
    extra = ctx.extra_metrics
    if extra is not None and extra.set_names:
        features = features if features is not None else FeatureStore(store.path.parent)
        _set_metrics(plan, leaderboard, selected.values(), features, real)
    write_json(results_dir / "leaderboard.json", validated(leaderboard, Leaderboard, "leaderboard"))
    write_atomic(results_dir / "leaderboard.md", render_markdown(leaderboard))
    complete = len(selected) == count * len(methods) * len(masks)
    run_info.update(
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        status="complete" if complete else "interrupted",
        computed=counts["computed"],
        reused=reused,
        failed=counts["failed"],
    )
    write_json(results_dir / "run.json", validated(run_info, RunFile, "run.json"))
    return leaderboard


def _real_features(config: RunConfig, plan: Plan) -> dict[str, Any] | None:
    """The real images' features the run's set metrics need (cached), or None without any."""
    ctx = plan.context
    extra = ctx.extra_metrics
    if extra is None or not extra.set_names:
        return None
    from benchmark.run.set_metrics import compute_real_features

    data = {
        "dataset": next(iter(plan.provenance.values()))["dataset"],
        "split": config.split,
        "size": list(ctx.dataset.image_size),
    }
    return compute_real_features(extra, ctx.dataset, plan.count, data, ctx.device)


def _set_metrics(
    plan: Plan,
    leaderboard: dict[str, Any],
    records: Any,
    features: FeatureStore,
    real: dict[str, Any] | None,
) -> None:
    """The set metrics of every table entry, from the records' stored features and the real
    images' features; not computed when the run stopped before the real features (its
    features are kept: the next run computes them)."""
    from benchmark.run.set_metrics import add_set_metrics, keep_real_features, set_metric_notes

    extra = plan.context.extra_metrics
    if real is None or sys.exc_info()[0] is not None:
        leaderboard["config"]["set_metrics"] = "not computed: the run was interrupted"
        return
    add_set_metrics(leaderboard, records, extra, features, real)
    leaderboard["real_features"] = keep_real_features(features, real)
    sizes = [
        item["n"]
        for table in leaderboard["tables"]
        for entry in table["entries"]
        for item in (entry.get("set_metrics") or {}).values()
        if item.get("value") is not None
    ]
    leaderboard["config"]["set_metric_notes"] = set_metric_notes(extra.set_names, sizes)


def runs_in_driver(ctx: Context, method_name: str) -> bool:
    """GPU methods run in a thread of the driver process: CUDA does not survive ``fork``."""
    return ctx.method_device(method_name).type != "cpu"


def _execute(
    config: RunConfig,
    plan: Plan,
    workers: int,
    todo: dict[Pair, list[int]],
    deliver,
    lock: RunLock,
    memory: int | None = None,
) -> None:
    """Hand the work to the executor ``config`` asks for.

    Locally, CPU methods run in forked worker processes even with ``--workers 1``: a method
    that calls ``os._exit``, crashes the interpreter or leaves threads behind ends only its
    worker, which is replaced. GPU methods run in a thread of this process (CUDA does not
    survive ``fork``), guarded by the pipeline: there only a hard crash ends the run.
    """
    import torch

    from benchmark.run.executors import (
        InProcessExecutor,
        ProcessPoolExecutor,
        fork_available,
    )

    ctx = plan.context
    todo = {pair: indices for pair, indices in todo.items() if indices}
    if not todo:
        return
    if config.executor == "ray":
        from benchmark.run.ray_executor import RayExecutor

        RayExecutor(config, plan, workers).run(todo, deliver)
        return
    if not fork_available():  # no worker processes here: every method runs in this one
        InProcessExecutor(ctx).run(split_units(todo, plan.batch_size), deliver)
        return
    # GPU methods run here in a driver thread (CUDA does not survive fork); CPU work is forked.
    on_gpu = {p: v for p, v in todo.items() if runs_in_driver(ctx, p[0])}
    on_cpu = {p: v for p, v in todo.items() if p not in on_gpu}
    stop = threading.Event()
    gpu_thread = None
    failure: list[BaseException] = []
    if on_gpu:

        def gpu_work() -> None:
            try:
                InProcessExecutor(ctx, stop).run(split_units(on_gpu, plan.batch_size), deliver)
            except BaseException as exc:  # re-raised in the main thread
                failure.append(exc)

        gpu_thread = threading.Thread(target=gpu_work, daemon=True, name="inpaint-bench-gpu")
    # one worker keeps this process's thread count (what an in-process run used)
    threads = torch.get_num_threads() if workers == 1 else max(1, default_workers() // workers)
    close_fds = (lock.fd,) if lock.fd is not None else ()
    pool = ProcessPoolExecutor(ctx, workers, threads, close_fds, stop, memory)
    try:
        if on_cpu:
            unit_size = max(1, math.ceil(plan.batch_size / workers))
            units = split_units(on_cpu, unit_size)
            if gpu_thread is not None:
                gpu_thread.start()
            pool.run(units, deliver)
        elif gpu_thread is not None:
            gpu_thread.start()
        while gpu_thread is not None and gpu_thread.is_alive():
            gpu_thread.join(0.2)
    finally:
        stop.set()
    if failure:
        raise failure[0]


def _is_done(
    store: RecordStore,
    features: FeatureStore,
    ctx: Context,
    config: RunConfig,
    run_dir: Path,
    pair: Pair,
    index: int,
) -> bool:
    """A finished, current record exists: same method fingerprint and provenance, status ok."""
    method_name, mask_name = pair
    record = store.get((method_name, ctx.fingerprints[method_name], mask_name, index))
    if record is None or record["status"] != STATUS_OK:
        return False  # failed rows are retried
    if record.get("provenance") != ctx.provenance[mask_name]:
        return False  # other data, masks, seed, size or ratio range: recompute
    if any(name not in record for name in BUILTIN_METRICS):
        return False
    extra = ctx.extra_metrics  # --metrics: each asked metric present, from its code and weights
    if extra is not None:
        stamps = record.get("metric_provenance") or {}
        if any(
            stamps.get(name) != stamp or (name not in record and name in extra.image_names)
            for name, stamp in extra.provenance.items()
        ):
            return False
        if extra.modes and not has_features(features, record, extra):
            return False  # set metrics: the record's features are stored
    if config.save_images:
        png = f"{index:06d}.png"
        return image_path(run_dir, slugify(mask_name), slugify(method_name), png).exists()
    return True
