"""A run: every method on every mask type over every image, batch-major, into a run folder.

The runner takes a :class:`~benchmark.run.config.RunConfig`, builds its plan
(:mod:`benchmark.run.plan`), locks the run folder (:mod:`benchmark.run.lock`), works out which
(method, mask, index) records are still to do (a record is reused only when its method
fingerprint and its provenance, i.e. data set, mask generator, seed, size, hole-ratio range and
the metrics' code, are unchanged), hands batches of that work to an executor
(:mod:`benchmark.run.pipeline` says what a batch does, :mod:`benchmark.run.executors` and
:mod:`benchmark.run.ray_executor` where it runs) and writes each batch's records as they arrive.
A failing or timed-out batch is recorded as failed and the run goes on.
"""

from __future__ import annotations

import math
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmark.datasets import DATASETS
from benchmark.datasets.base import dataset_spec
from benchmark.device import device_description
from benchmark.leaderboard import build_leaderboard, render_markdown
from benchmark.masking import MASKS
from benchmark.method import METHODS
from benchmark.metrics import METRICS
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


def run_benchmark(config: RunConfig) -> RunResult:
    """Run ``config``: write records, leaderboard and run.json; reuse finished records."""
    config.validate()
    workers = _cap_workers(config)
    plan = build_plan(config)
    indices = list(range(plan.count))
    run_dir = config.run_dir()
    lock = RunLock(run_dir)
    lock.acquire()  # before anything reads or writes the folder
    try:
        return _run_locked(config, plan, workers, run_dir, lock, indices)
    finally:
        lock.release()


def _run_locked(
    config: RunConfig, plan: Plan, workers: int, run_dir: Path, lock: RunLock, indices: list[int]
) -> RunResult:
    ctx, count = plan.context, plan.count
    methods, masks = ctx.methods, ctx.masks
    check_run_dir(run_dir, config)
    store = RecordStore(run_dir / "records.jsonl")
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
            todo[pair] = [i for i in indices if not _is_done(store, ctx, config, run_dir, pair, i)]
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
            store.append(fresh)
            written.update((r["method"], r["mask"], r["index"]) for r in fresh)
            counts["computed"] += len(fresh)
            counts["failed"] += sum(r["status"] != STATUS_OK for r in fresh)
            progress.update(fresh)

    try:
        _execute(config, plan, workers, todo, deliver, lock)
    finally:
        with guard:
            counts["closed"] = 1
        progress.close()
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
            {**config.identity(), "limit": config.limit, "images": count},
        )
        write_json(
            results_dir / "leaderboard.json", validated(leaderboard, Leaderboard, "leaderboard")
        )
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
    return RunResult(results_dir, leaderboard, counts["computed"], reused, counts["failed"])


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
) -> None:
    """Hand the work to the executor ``config`` asks for."""
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
    if workers == 1 or not fork_available():
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
    threads = max(1, default_workers() // workers)
    pool = ProcessPoolExecutor(
        ctx, workers, threads, close_fds=(lock.fd,) if lock.fd is not None else (), stop=stop
    )
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
    store: RecordStore, ctx: Context, config: RunConfig, run_dir: Path, pair: Pair, index: int
) -> bool:
    """A finished, current record exists: same method fingerprint and provenance, status ok."""
    method_name, mask_name = pair
    record = store.get((method_name, ctx.fingerprints[method_name], mask_name, index))
    if record is None or record["status"] != STATUS_OK:
        return False  # failed rows are retried
    if record.get("provenance") != ctx.provenance[mask_name]:
        return False  # other data, masks, seed, size or ratio range: recompute
    if any(name not in record for name in METRICS.names()):
        return False  # a metric registered since (plug-in): measure again
    if config.save_images:
        png = f"{index:06d}.png"
        return image_path(run_dir, slugify(mask_name), slugify(method_name), png).exists()
    return True
