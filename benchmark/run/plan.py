"""Planning a run: build the data set, methods and masks; fingerprint what decides a record."""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmark.datasets import build_dataset
from benchmark.datasets.base import MIN_SIZE
from benchmark.device import resolve_device
from benchmark.errors import UsageError
from benchmark.masking import MASKS, build_mask
from benchmark.method import METHODS, Method
from benchmark.metrics import metrics_fingerprint
from benchmark.perceptual.selection import plan_extra_metrics
from benchmark.registry import Spec, parse_spec
from benchmark.run.config import RunConfig
from benchmark.run.pipeline import Context, unit_bytes

#: Largest default batch (images); the default shrinks for large images, see :func:`batch_for`.
MAX_BATCH = 256


#: Memory budget of one float32 RGB copy of a batch. A batch holds about six such copies at
#: once (originals, masked input, the method's copy, prediction, composite, SSIM moments), so
#: the default batch keeps the run's working set near 1.5 GB whatever the image size.
BATCH_MEMORY_BUDGET = 256 * 2**20


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


def batch_for(image_size: tuple[int, int], requested: int | None) -> int:
    """``requested``, or the default: :data:`MAX_BATCH` images, fewer when one float32 copy of
    the batch would exceed :data:`BATCH_MEMORY_BUDGET` (at 512x512: 85 images)."""
    if requested is not None:
        return requested
    return max(1, min(MAX_BATCH, BATCH_MEMORY_BUDGET // unit_bytes(image_size, 1)))


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
    extra_metrics = plan_extra_metrics(  # weights resolved and checked before any work
        config.metrics, dataset.image_size, config.weights_dir, config.allow_unverified_weights
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
    mask_fingerprints = {name: generator.fingerprint() for name, generator in masks.items()}
    parts = {
        name: {
            "dataset": data_fingerprint,
            "mask": mask_fingerprints[name],
            "seed": config.seed,
            "size": list(dataset.image_size),
            "split": config.split,
            "mask_ratio": list(config.mask_ratio) if config.mask_ratio else None,
            "metrics": metric_code,
        }
        for name in masks
    }
    count = len(dataset) if config.limit is None else min(config.limit, len(dataset))
    for method in methods.values():  # e.g. predictions made for other settings: stop here
        method.check_run(
            config=config,
            count=count,
            image_size=dataset.image_size,
            data_fingerprint=data_fingerprint,
            masks=mask_fingerprints,
        )
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
        extra_metrics=extra_metrics,
    )
    return Plan(context, count, batch_for(dataset.image_size, config.batch_size), parts)


def describe(name: str, kind: str = "method") -> dict[str, Any]:
    registry = METHODS if kind == "method" else MASKS
    spec: Spec = registry.typed(parse_spec(name))  # values as the constructor takes them
    params = {k: v for k, v in registry.parameters(spec.name).items()}
    params.update(spec.kwargs)
    return {"name": registry.canonical(spec.name), "parameters": _jsonable(params)}


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
        for k, v in params.items()
    }
