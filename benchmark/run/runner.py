"""A run: every method on every mask type over every image, batch-major, into a run folder.

The runner resolves the configuration, locks the run folder, works out which (method, mask,
index) records are still to do (a record is reused only when its method fingerprint and its
provenance, i.e. data set, mask generator, seed, size, hole-ratio range and the metrics' code,
are unchanged), hands batches of that work to an executor (``benchmark.run.pipeline`` says what a
batch does, ``benchmark.run.executors`` and ``benchmark.run.ray_executor`` where it runs) and writes
each batch's records as they arrive. A failing or timed-out batch is recorded as failed and the
run goes on.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import inspect
import json
import math
import platform
import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

import benchmark
from benchmark.checks import prediction_to_cpu
from benchmark.datasets import DATASETS, build_dataset
from benchmark.datasets.base import MIN_SIZE, dataset_spec
from benchmark.device import available_cores, device_description, resolve_device
from benchmark.errors import DataError, UsageError
from benchmark.leaderboard import build_leaderboard, render_markdown
from benchmark.masking import MASKS, RatioRange, build_mask
from benchmark.method import METHODS, Method
from benchmark.metrics import METRICS, metrics_fingerprint
from benchmark.run.pipeline import Context, Pair, save_images_to, split_units, unit_bytes
from benchmark.run.progress import Progress
from benchmark.records import (
    STATUS_OK,
    RecordStore,
    read_json,
    record_key,
    write_atomic,
    write_json,
)
from benchmark.registry import Registry, Spec, parse_spec
from benchmark.run.lock import RunLock

#: Largest default batch (images); the default shrinks for large images, see :func:`batch_for`.
MAX_BATCH = 256
#: Memory budget of one float32 RGB copy of a batch. A batch holds about six such copies at
#: once (originals, masked input, the method's copy, prediction, composite, SSIM moments), so
#: the default batch keeps the run's working set near 1.5 GB whatever the image size.
BATCH_MEMORY_BUDGET = 256 * 2**20
#: Default per-batch time limit of a method call (seconds); 0 disables it.
DEFAULT_TIMEOUT = 600.0
EXECUTORS = ("local", "ray")


def default_workers() -> int:
    """Cores this process may use."""
    return available_cores()


@dataclass
class RunConfig:
    """Everything that defines a run (stored in run.json)."""

    methods: list[str]
    masks: list[str]
    dataset: str = "skimage-patches"
    split: str = "test"
    data_dir: str | None = None
    limit: int | None = None
    seed: int = 0
    size: int | None = None
    batch_size: int | None = None  # None: MAX_BATCH, fewer for large images (batch_for)
    workers: int = field(default_factory=default_workers)
    device: str = "auto"
    out: str | None = None
    save_images: bool = False
    progress: bool = True
    mask_ratio: RatioRange | None = None
    timeout: float = DEFAULT_TIMEOUT
    executor: str = "local"
    ray_address: str | None = None

    def identity(self) -> dict[str, Any]:
        """The settings that decide every record's value (besides method and mask)."""
        identity = {
            "dataset": str(dataset_spec(self.dataset)),
            "data_dir": str(Path(self.data_dir).expanduser().resolve()) if self.data_dir else None,
            "split": self.split,
            "size": self.size,
            "seed": self.seed,
            "version": benchmark.__version__,
        }
        if self.mask_ratio is not None:  # absent otherwise: older run folders keep their name
            identity["mask_ratio"] = [float(v) for v in self.mask_ratio]
        return identity

    def run_dir(self, root: str | Path = "results/runs") -> Path:
        """``--out`` if given, else ``results/runs/<dataset>-<split>-s<seed>-<hash>``."""
        if self.out:
            return Path(self.out)
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()
        slug = slugify(self.identity()["dataset"])[:40]
        return Path(root) / f"{slug}-{self.split}-s{self.seed}-{digest[:8]}"


def slugify(text: str) -> str:
    """A file-name-safe version of a spec (``lines:max_lines=8`` -> ``lines_max_lines-8``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.replace("=", "-")).strip("_") or "x"


@dataclass
class RunResult:
    run_dir: Path
    leaderboard: dict[str, Any]
    computed: int
    reused: int
    failed: int


def _versions() -> dict[str, str]:
    import cv2
    import kornia
    import skimage

    return {
        "inpaint-bench": benchmark.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "kornia": kornia.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "scikit-image": skimage.__version__,
    }


def _git_revision() -> str | None:
    root = Path(benchmark.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def code_fingerprint(method: Method) -> str:
    """The method's own fingerprint plus a hash of the source file of its class.

    Stored with each record: a resumed run recomputes a method whose code or weights changed
    instead of mixing old and new results.
    """
    try:
        source = Path(inspect.getsourcefile(type(method)) or "").read_bytes()
    except (OSError, TypeError):  # built in a REPL or from a zip: no file to hash
        source = b""
    code = hashlib.sha256(source).hexdigest()[:12] if source else "unknown"
    return "; ".join(part for part in (method.fingerprint(), f"code {code}") if part)


def _check_run_dir(run_dir: Path, config: RunConfig) -> None:
    """Refuse to mix records of a different configuration into ``run_dir``."""
    run_json = run_dir / "run.json"
    if not run_json.exists():
        return
    previous = read_json(run_json, "run file")
    previous = previous.get("identity") if isinstance(previous, dict) else None
    if not isinstance(previous, dict):
        raise DataError(f"run file {str(run_json)!r} has no 'identity' object; is it a run.json?")
    changed = [k for k, v in config.identity().items() if previous.get(k) != v]
    if changed:
        diffs = ", ".join(f"{k} {previous.get(k)!r} -> {config.identity()[k]!r}" for k in changed)
        raise UsageError(
            f"{run_dir} holds a run with a different configuration ({diffs}); "
            "choose another --out or delete that folder"
        )


class Evaluator:
    """The harness's method path alone (input copies, the method, output checks), for measuring
    its overhead against a bare loop; CPU-only methods split a batch over ``pool``'s threads."""

    def __init__(self, method: Method, device: torch.device, pool=None, workers: int = 1) -> None:
        self.method = method
        self.device = device if method.device == "auto" else torch.device("cpu")
        self.pool = pool if method.device == "cpu" and workers > 1 else None
        self.workers = workers
        self.method.to(self.device)

    def _predict_chunk(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        masked_in, mask_in = masked.to(self.device, copy=True), mask.to(self.device, copy=True)
        return prediction_to_cpu(self.method.inpaint(masked_in, mask_in), masked)

    def predict(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The method's prediction as CPU float32 of the right shape; raises on failure."""
        if self.pool is None or len(masked) < 2:
            return self._predict_chunk(masked, mask)
        chunks = [c for c in np.array_split(np.arange(len(masked)), self.workers) if len(c)]
        parts = self.pool.map(lambda c: self._predict_chunk(masked[c], mask[c]), chunks)
        return torch.cat(list(parts))


def batch_for(image_size: tuple[int, int], requested: int | None) -> int:
    """``requested``, or the default: :data:`MAX_BATCH` images, fewer when one float32 copy of
    the batch would exceed :data:`BATCH_MEMORY_BUDGET` (at 512x512: 85 images)."""
    if requested is not None:
        return requested
    return max(1, min(MAX_BATCH, BATCH_MEMORY_BUDGET // unit_bytes(image_size, 1)))


def _validate(config: RunConfig) -> None:
    if config.batch_size is not None and config.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {config.batch_size}")
    if config.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {config.workers}")
    if config.seed < 0:
        raise UsageError(f"--seed must be non-negative, got {config.seed}")
    if config.limit is not None and config.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {config.limit}")
    if not (config.timeout >= 0 and math.isfinite(config.timeout)):
        raise UsageError(f"--timeout must be a number of seconds >= 0, got {config.timeout}")
    if config.executor not in EXECUTORS:
        raise UsageError(f"unknown executor {config.executor!r}; valid: {', '.join(EXECUTORS)}")
    if config.ray_address and config.executor != "ray":
        raise UsageError("--ray-address needs --executor ray")


def provenance_hash(parts: dict[str, Any]) -> str:
    """Short hash of everything besides the method that decides a record's value."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Plan:
    """A resolved run: the built objects and everything recorded about them."""

    context: Context
    count: int
    batch_size: int
    provenance: dict[str, dict[str, Any]]  # mask name -> the parts hashed into its provenance


def build_plan(config: RunConfig, device=None) -> Plan:
    """Build the data set, methods and masks of ``config`` and their fingerprints.

    The driver and every Ray worker call this, so a worker with other code or other files is
    noticed (its fingerprints differ) instead of writing mislabelled records.
    """
    device = device if device is not None else resolve_device(config.device)
    dataset = build_dataset(config.dataset, config.split, config.size, config.data_dir)
    if min(dataset.image_size) < MIN_SIZE:
        raise UsageError(
            f"data set {dataset.name!r} has {dataset.image_size} images; SSIM needs at least "
            f"{MIN_SIZE}x{MIN_SIZE} (choose a larger --size)"
        )
    method_specs = [METHODS.normalize(m) for m in config.methods]
    mask_specs = [MASKS.normalize(m) for m in config.masks]
    for kind, specs in (("methods", method_specs), ("masks", mask_specs)):
        repeated = sorted({str(s) for s in specs if specs.count(s) > 1})
        if repeated:
            raise UsageError(
                f"{kind} listed twice (after aliases and defaults): {', '.join(repeated)}"
            )
    methods = {str(s): METHODS.build(s) for s in method_specs}  # fail fast on bad names/weights
    masks = {str(s): build_mask(s) for s in mask_specs}
    for method in methods.values():
        method.to(device if method.device == "auto" else torch.device("cpu"))
    fingerprints = {name: code_fingerprint(method) for name, method in methods.items()}
    data_fingerprint = dataset.fingerprint()
    metric_code = metrics_fingerprint()
    parts = {
        name: {
            "dataset": data_fingerprint,
            "mask": generator.fingerprint(),
            "seed": config.seed,
            "size": list(dataset.image_size),
            "split": config.split,
            "mask_ratio": list(config.mask_ratio) if config.mask_ratio else None,
            "metrics": metric_code,
        }
        for name, generator in masks.items()
    }
    count = len(dataset) if config.limit is None else min(config.limit, len(dataset))
    context = Context(
        dataset=dataset,
        methods=methods,
        masks=masks,
        fingerprints=fingerprints,
        provenance={name: provenance_hash(p) for name, p in parts.items()},
        seed=config.seed,
        ratio=tuple(config.mask_ratio) if config.mask_ratio else None,
        device=device,
        timeout=float(config.timeout),
    )
    return Plan(context, count, batch_for(dataset.image_size, config.batch_size), parts)


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    """Top-level module -> installed distributions (scans every installed package: cached)."""
    try:
        return importlib.metadata.packages_distributions()
    except Exception:  # broken metadata of some unrelated package
        return {}


def plugin_versions(names: dict[str, str], registry: Registry) -> dict[str, dict[str, str]]:
    """Package name and version of every entry ``names`` (spec -> canonical name) that comes
    from an installed distribution other than this project (an entry-point plug-in)."""
    own = {"benchmark", "methods", "masks"}
    found: dict[str, dict[str, str]] = {}
    for spec, name in names.items():
        module = getattr(registry.get(name), "__module__", "") or ""
        top = module.split(".")[0]
        if not top or top in own:
            continue
        for dist in _distributions().get(top, []):
            try:
                version = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
            found[f"{registry.kind} {spec}"] = {"package": dist, "version": version}
            break
        else:
            found[f"{registry.kind} {spec}"] = {"package": f"(module {module})", "version": ""}
    return found


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
    _validate(config)
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
    _check_run_dir(run_dir, config)
    store = RecordStore(run_dir / "records.jsonl")
    if config.save_images:
        ctx.save_images = save_images_to(run_dir)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run_info = {
        "identity": config.identity(),
        "config": {
            **{k: v for k, v in asdict(config).items() if k != "progress"},
            "batch_size": plan.batch_size,
            "workers": workers,
        },
        "images": count,
        "dataset_size": len(ctx.dataset),
        "image_size": list(ctx.dataset.image_size),
        "methods": {name: _describe(name) for name in methods},
        "masks": {name: _describe(name, kind="mask") for name in masks},
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
        "versions": _versions(),
        "git_revision": _git_revision(),
        "started": started,
        "finished": None,
        "status": "running",
    }
    write_json(run_dir / "run.json", run_info)

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
        write_json(run_dir / "leaderboard.json", leaderboard)
        write_atomic(run_dir / "leaderboard.md", render_markdown(leaderboard))
        complete = len(selected) == count * len(methods) * len(masks)
        run_info.update(
            finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            status="complete" if complete else "interrupted",
            computed=counts["computed"],
            reused=reused,
            failed=counts["failed"],
        )
        write_json(run_dir / "run.json", run_info)
    return RunResult(run_dir, leaderboard, counts["computed"], reused, counts["failed"])


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


def _describe(name: str, kind: str = "method") -> dict[str, Any]:
    spec: Spec = parse_spec(name)
    registry = METHODS if kind == "method" else MASKS
    params = {k: v for k, v in registry.parameters(spec.name).items()}
    params.update(spec.kwargs)
    return {"name": registry.canonical(spec.name), "parameters": _jsonable(params)}


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
        for k, v in params.items()
    }


def _image_path(run_dir: Path, *parts: str) -> Path:
    return run_dir.joinpath("images", *parts)


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
        return _image_path(run_dir, slugify(mask_name), slugify(method_name), png).exists()
    return True


def _save_images(
    run_dir: Path,
    originals: torch.Tensor,
    masks: torch.Tensor,
    results: torch.Tensor,
    batch: Sequence[int],
    mask_name: str,
    method_name: str,
    problems: list[str | None],
) -> None:
    """Lossless PNGs of original, mask and composite, so anyone can recompute the metrics."""
    import cv2

    from benchmark.method import to_uint8_hwc

    originals_u8, results_u8 = to_uint8_hwc(originals), to_uint8_hwc(results)
    masks_u8 = masks[:, 0].numpy().astype(np.uint8) * 255
    for j, index in enumerate(batch):
        name = f"{index:06d}.png"
        # (path, pixels, overwrite): originals and masks are shared by methods, written once
        writes = [
            (_image_path(run_dir, "_original", name), originals_u8[j][..., ::-1], False),
            (_image_path(run_dir, slugify(mask_name), "_mask", name), masks_u8[j], False),
        ]
        if problems[j] is None:
            result_path = _image_path(run_dir, slugify(mask_name), slugify(method_name), name)
            writes.append((result_path, results_u8[j][..., ::-1], True))
        for path, pixels, overwrite in writes:
            if overwrite or not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                if not cv2.imwrite(str(path), np.ascontiguousarray(pixels)):
                    raise OSError(f"cannot write image {path}")
