"""The evaluation loop: every method on every mask type over every image, batch by batch.

For each (mask, method) pair the runner draws the masks of a batch, hides the hole pixels,
calls the method (CPU-only methods split the batch over ``workers`` threads; OpenCV, NumPy and
SciPy release the GIL), validates the prediction, composites it over the original, measures it
and appends one record per image. A failing batch is recorded as failed and the run goes on.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import platform
import re
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import benchmark
from benchmark.checks import check_images, check_masks, invalid_images, prediction_to_cpu
from benchmark.datasets import Dataset, build_dataset
from benchmark.datasets.base import MIN_SIZE, dataset_spec
from benchmark.device import device_description, resolve_device
from benchmark.errors import ContractError, DataError, UsageError
from benchmark.leaderboard import build_leaderboard, render_markdown
from benchmark.masking import MASKS, MaskGenerator, build_mask
from benchmark.method import METHODS, Method, composite
from benchmark.metrics import METRICS, compute_all
from benchmark.records import (
    STATUS_OK,
    RecordStore,
    read_json,
    record_key,
    write_atomic,
    write_json,
)
from benchmark.registry import Spec, parse_spec


def default_workers() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
    batch_size: int = 256
    workers: int = field(default_factory=default_workers)
    device: str = "auto"
    out: str | None = None
    save_images: bool = False
    progress: bool = True

    def identity(self) -> dict[str, Any]:
        """The settings that decide every record's value (besides method and mask)."""
        return {
            "dataset": str(dataset_spec(self.dataset)),
            "data_dir": str(Path(self.data_dir).expanduser().resolve()) if self.data_dir else None,
            "split": self.split,
            "size": self.size,
            "seed": self.seed,
            "version": benchmark.__version__,
        }

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
    """Runs one method on batches, CPU-only methods split over a pool of worker threads."""

    def __init__(
        self, method: Method, device: torch.device, pool: ThreadPoolExecutor | None, workers: int
    ) -> None:
        self.method = method
        self.device = device if method.device == "auto" else torch.device("cpu")
        self.pool = pool if method.device == "cpu" and workers > 1 else None
        self.workers = workers
        self.method.to(self.device)

    def _predict_chunk(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # copies: a method that edits its inputs in place must not change what is measured
        masked_in, mask_in = masked.to(self.device, copy=True), mask.to(self.device, copy=True)
        prediction = self.method.inpaint(masked_in, mask_in)
        return prediction_to_cpu(prediction, masked)

    def predict(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The method's prediction as CPU float32 of the right shape; raises on failure."""
        if self.pool is None or len(masked) < 2:
            return self._predict_chunk(masked, mask)
        chunks = [c for c in np.array_split(np.arange(len(masked)), self.workers) if len(c)]
        parts = self.pool.map(lambda c: self._predict_chunk(masked[c], mask[c]), chunks)
        return torch.cat(list(parts))


def run_benchmark(config: RunConfig) -> RunResult:
    """Run ``config``: write records, leaderboard and run.json; reuse finished records."""
    if config.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {config.batch_size}")
    if config.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {config.workers}")
    if config.seed < 0:
        raise UsageError(f"--seed must be non-negative, got {config.seed}")
    if config.limit is not None and config.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {config.limit}")
    device = resolve_device(config.device)
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
    fingerprints = {name: code_fingerprint(method) for name, method in methods.items()}
    count = len(dataset) if config.limit is None else min(config.limit, len(dataset))
    indices = list(range(count))

    run_dir = config.run_dir()
    _check_run_dir(run_dir, config)
    store = RecordStore(run_dir / "records.jsonl")
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run_info = {
        "identity": config.identity(),
        "config": {k: v for k, v in asdict(config).items() if k != "progress"},
        "images": count,
        "dataset_size": len(dataset),
        "image_size": list(dataset.image_size),
        "methods": {name: _describe(name) for name in methods},
        "masks": {name: _describe(name, kind="mask") for name in masks},
        "device": device_description(device),
        "versions": _versions(),
        "git_revision": _git_revision(),
        "started": started,
        "finished": None,
        "status": "running",
    }
    write_json(run_dir / "run.json", run_info)

    computed = reused = failed = 0
    pool = ThreadPoolExecutor(config.workers) if config.workers > 1 else None
    evaluators = {n: Evaluator(m, device, pool, config.workers) for n, m in methods.items()}
    try:
        for mask_name, generator in masks.items():
            for method_name, evaluator in evaluators.items():
                fingerprint = fingerprints[method_name]
                todo = [
                    i
                    for i in indices
                    if not _is_done(
                        store,
                        (method_name, fingerprint, mask_name, i),
                        config,
                        run_dir,
                        mask_name,
                        method_name,
                    )
                ]
                reused += count - len(todo)
                bar = tqdm(
                    total=count,
                    initial=count - len(todo),
                    desc=f"{method_name} / {mask_name}",
                    unit="img",
                    disable=not config.progress,
                    leave=False,
                    dynamic_ncols=True,
                )
                for start in range(0, len(todo), config.batch_size):
                    batch = todo[start : start + config.batch_size]
                    records = _evaluate_batch(
                        evaluator,
                        dataset,
                        generator,
                        batch,
                        config,
                        method_name,
                        fingerprint,
                        mask_name,
                        run_dir,
                    )
                    store.append(records)
                    computed += len(records)
                    failed += sum(r["status"] != STATUS_OK for r in records)
                    bar.update(len(batch))
                bar.close()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
        selected = {
            key: record
            for record in store
            if (key := record_key(record))[0] in methods
            and key[2] in masks
            and key[3] < count
            and key[1] == fingerprints[key[0]]
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
            computed=computed,
            reused=reused,
            failed=failed,
        )
        write_json(run_dir / "run.json", run_info)
    return RunResult(run_dir, leaderboard, computed, reused, failed)


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
    store: RecordStore, key, config: RunConfig, run_dir: Path, mask_name: str, method_name: str
) -> bool:
    record = store.get(key)
    if record is None or record["status"] != STATUS_OK:
        return False  # failed rows are retried
    if any(name not in record for name in METRICS.names()):
        return False  # a metric registered since (plug-in): measure again
    if config.save_images:
        png = f"{key[3]:06d}.png"
        return _image_path(run_dir, slugify(mask_name), slugify(method_name), png).exists()
    return True


def _evaluate_batch(
    evaluator: Evaluator,
    dataset: Dataset,
    generator: MaskGenerator,
    batch: Sequence[int],
    config: RunConfig,
    method_name: str,
    fingerprint: str,
    mask_name: str,
    run_dir: Path,
) -> list[dict[str, Any]]:
    originals = dataset.images(batch)
    check_images(originals, f"data set {dataset.name!r}")
    height, width = originals.shape[-2:]
    masks = generator.batch(batch, height, width, config.seed)
    check_masks(masks, tuple(originals.shape))
    masked = originals.masked_fill(masks, 0.0)

    base = [
        {"method": method_name, "fingerprint": fingerprint, "mask": mask_name, "index": int(i)}
        for i in batch
    ]
    started = time.perf_counter()
    try:
        prediction = evaluator.predict(masked, masks)
        problems = [None] * len(batch)
    except ContractError as exc:
        prediction, problems = None, [str(exc)] * len(batch)
    except Exception as exc:  # a crashing method fails its batch, not the run
        prediction, problems = None, [f"{type(exc).__name__}: {exc}"] * len(batch)
    seconds = (time.perf_counter() - started) / len(batch)

    ratios = masks.flatten(1).float().mean(1).tolist()
    if prediction is not None:
        problems = invalid_images(prediction)
        result = composite(originals, torch.nan_to_num(prediction).clamp_(0, 1), masks)
        values = {k: v.tolist() for k, v in compute_all(result, originals, masks).items()}
        if config.save_images:
            _save_images(run_dir, originals, masks, result, batch, mask_name, method_name, problems)
    records = []
    for j, record in enumerate(base):
        record["seconds"] = seconds
        record["mask_ratio"] = ratios[j]
        if problems[j] is None and prediction is not None:
            record.update({k: v[j] for k, v in values.items()}, status=STATUS_OK)
        else:
            record["status"] = f"failed: {problems[j]}"
        records.append(record)
    return records


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
