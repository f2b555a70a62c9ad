"""Batch-major evaluation: a batch of images decoded once, each mask type drawn once, every method.

A :class:`Unit` is a batch of image indices with, per (method, mask) pair, the indices of the
batch that pair still has to do. :func:`evaluate_unit` decodes the batch once, draws each mask
type's masks once, runs every method on them, measures the composites on the method's device
and returns one record per (method, mask, index). Executors (``benchmark.run.executors``,
``benchmark.run.ray_executor``) decide where units run; the records are the same wherever they do.

A fault inside a method fails that method's pair, never the run: an exception of any kind the
method raises (``SystemExit`` and ``KeyboardInterrupt`` included) becomes the pair's failure
reason, the working directory is restored after every call, and under ``--max-memory`` an
allocation failure is reported as that limit being exceeded.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from benchmark.checks import check_images, check_masks, invalid_images, prediction_to_cpu
from benchmark.datasets import Dataset
from benchmark.errors import ContractError
from benchmark.masking import MaskGenerator, RatioRange
from benchmark.method import Method, composite
from benchmark.metrics import compute_all, mask_ratio
from benchmark.perceptual.selection import FEATURE_PREFIX, split_features
from benchmark.records import STATUS_OK, truncate_reason

Pair = tuple[str, str]  # (method, mask)

#: Values per chunk of :func:`measure` on the CPU (8 MB of float32 per temporary).
MEASURE_CHUNK_VALUES = 2**21


@dataclass
class Unit:
    """A batch of work: for each (method, mask) pair, the image indices still to evaluate."""

    todo: dict[Pair, list[int]]
    #: worker deaths while decoding or drawing masks (no pair running yet)
    attempts: int = 0
    #: per pair, worker deaths while that pair's method ran
    crashes: dict[Pair, int] = field(default_factory=dict)

    @property
    def indices(self) -> list[int]:
        return sorted({i for indices in self.todo.values() for i in indices})

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.todo.values())


class MethodTimeout(Exception):
    """A method call ran past the per-batch time limit."""


class MethodFault(Exception):
    """A method raised what is not an :class:`Exception` (``SystemExit``, ``KeyboardInterrupt``,
    ...): wrapped, so it fails the method's pair instead of ending the run."""


#: Messages of the allocation failures of torch, NumPy, OpenCV and the C++ runtime.
_OUT_OF_MEMORY = re.compile(
    r"can't allocate memory|cannot allocate memory|insufficient memory|failed to allocate"
    r"|out of memory|bad_alloc|can't start new thread",
    re.IGNORECASE,
)


def is_out_of_memory(exc: BaseException) -> bool:
    """``exc`` says an allocation failed (what hitting ``--max-memory`` raises)."""
    return isinstance(exc, MemoryError) or bool(_OUT_OF_MEMORY.search(str(exc)))


@dataclass
class Context:
    """What a process needs to evaluate units: built once per process."""

    dataset: Dataset
    methods: dict[str, Method]
    masks: dict[str, MaskGenerator]
    fingerprints: dict[str, str]  # method name -> method fingerprint (record key)
    provenance: dict[str, str]  # mask name -> hash of everything else deciding a record
    seed: int
    ratio: RatioRange | None
    device: torch.device
    timeout: float = 0.0  # seconds per method call on a batch; 0 = none
    save_images: Callable[..., None] | None = None
    #: set when a timed-out call was abandoned in a daemon thread, or an allocation failed
    #: (a process worker then exits after its unit)
    tainted: bool = field(default=False)
    #: the run's working directory, restored after every method call (a method may chdir)
    home: str = field(default_factory=lambda: _cwd() or "")
    #: ``--max-memory`` as the user wrote it (for failure reasons), when a limit is set
    memory_limit: str | None = None
    #: the perceptual metrics of ``--metrics`` (``benchmark.perceptual.selection.ExtraMetrics``)
    extra_metrics: Any = None

    def method_device(self, method_name: str) -> torch.device:
        method = self.methods[method_name]
        return self.device if method.device == "auto" else torch.device("cpu")


def call_with_timeout(fn: Callable[[], Any], timeout: float) -> Any:
    """Run ``fn`` in a daemon thread and wait for it at most ``timeout`` seconds (0 = forever).

    A daemon thread, so a call that never returns cannot keep the process from exiting; the
    caller's wait wakes every 0.2 s, so Ctrl-C reaches the main thread within a fraction of a
    second even while a method is stuck in C code. An :class:`Exception` of ``fn`` is re-raised
    in the caller; anything else it raises (``SystemExit``, ``KeyboardInterrupt``) comes back
    as :class:`MethodFault`, so only a real Ctrl-C, which Python delivers to the waiting main
    thread, interrupts the caller.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # handed to the caller, whatever it is
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="inpaint-bench-method")
    thread.start()
    deadline = time.monotonic() + timeout if timeout > 0 else None
    while thread.is_alive():
        wait = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
        if wait <= 0:
            raise MethodTimeout(f"timed out after {timeout:g} s")
        thread.join(wait)
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, Exception):
            raise error
        raise MethodFault(f"{type(error).__name__}({_args(error)}) raised by the method")
    return outcome["value"]


def _args(exc: BaseException) -> str:
    return ", ".join(repr(a) for a in exc.args)


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the directory was removed (by a method that moved there, say)
        return None


def restore_cwd(home: str) -> None:
    """Go back to ``home`` (when known) if a method changed the working directory."""
    if not home or _cwd() == home:
        return
    try:
        os.chdir(home)
    except OSError:
        pass  # every path the run writes is absolute: only relative data paths are affected


def _predict(
    ctx: Context,
    method_name: str,
    mask_name: str,
    originals: torch.Tensor,
    mask: torch.Tensor,
    indices: Sequence[int],
) -> tuple[torch.Tensor, list[str | None]]:
    """The method's checked prediction, float32 on its device, and per image the reason the
    method gave for failing it (``inpaint_indexed`` may return ``(prediction, reasons)``);
    raises when the whole call fails. ``originals`` and ``mask`` are already on that device."""
    method, device = ctx.methods[method_name], ctx.method_device(method_name)
    # fresh tensors for every method: one that edits its inputs in place must not change what
    # is measured (made here, not kept per mask: at 512x512 a batch copy is 0.8 GB)
    mask_in = mask.clone()
    masked_in = originals.clone().masked_fill_(mask_in, 0.0)
    reasons: list[str | None] = [None] * len(originals)
    indexed = getattr(method, "inpaint_indexed", None)
    if callable(indexed):
        prediction = indexed(masked_in, mask_in, list(indices), mask_name)
        if isinstance(prediction, tuple):  # (predictions, per-image failure reasons or None)
            prediction, given = prediction
            if len(given) != len(originals):
                raise ContractError(
                    f"inpaint_indexed: expected {len(originals)} reasons, got {len(given)}"
                )
            reasons = [None if r is None else truncate_reason(str(r)) for r in given]
    else:
        prediction = method.inpaint(masked_in, mask_in)
    if device.type == "cpu" or not isinstance(prediction, torch.Tensor):
        return prediction_to_cpu(prediction, originals), reasons
    if tuple(prediction.shape) != tuple(originals.shape):
        raise ContractError(
            f"prediction: expected shape {tuple(originals.shape)}, got {tuple(prediction.shape)}"
        )
    if not prediction.is_floating_point():
        raise ContractError(f"prediction: expected a float tensor, got {prediction.dtype}")
    return prediction.detach().to(device, torch.float32), reasons


@dataclass
class Prepared:
    """A unit's decoded images and, per mask type, its masks (what prefetching computes)."""

    originals: torch.Tensor
    masks: dict[str, tuple[list[int], torch.Tensor]]  # mask name -> (indices, bool masks)


def prepare_unit(ctx: Context, unit: Unit) -> Prepared:
    """Decode the unit's images once and draw each mask type's masks once."""
    indices = unit.indices
    originals = ctx.dataset.images(indices)
    check_images(originals, f"data set {ctx.dataset.name!r}")
    height, width = originals.shape[-2:]
    masks = {}
    for mask_name in dict.fromkeys(mask for _, mask in unit.todo):
        needed = sorted({i for (_, k), v in unit.todo.items() if k == mask_name for i in v})
        drawn = ctx.masks[mask_name].batch(needed, height, width, ctx.seed, ctx.ratio)
        check_masks(drawn, (len(needed), 3, height, width))
        masks[mask_name] = (needed, drawn)
    return Prepared(originals, masks)


def run_prepared(
    ctx: Context,
    unit: Unit,
    prepared: Prepared,
    deliver: Callable[[list[dict[str, Any]]], None] | None = None,
    starting: Callable[[Pair], None] | None = None,
) -> list[dict[str, Any]]:
    """Run and measure every (method, mask) pair of ``unit`` on its prepared batch.

    ``deliver``, when given, receives each pair's records as soon as that pair is done (so an
    interrupted batch keeps its finished pairs); the records are also returned together.
    ``starting``, when given, is told each pair before it runs (a worker's driver then knows
    which method was running if the worker dies).
    """
    position = {index: k for k, index in enumerate(unit.indices)}
    records: list[dict[str, Any]] = []
    for mask_name, (needed, masks) in prepared.masks.items():
        if len(needed) == len(position):
            images = prepared.originals
        else:
            images = prepared.originals[torch.tensor([position[i] for i in needed])]
        ratios = dict(zip(needed, mask_ratio(None, None, masks).tolist()))
        mask_row = {i: k for k, i in enumerate(needed)}
        for (method_name, pair_mask), todo in unit.todo.items():
            if pair_mask != mask_name:
                continue
            if todo == needed:
                sel_images, sel_masks = images, masks
            else:
                sub = torch.tensor([mask_row[i] for i in todo])
                sel_images, sel_masks = images[sub], masks[sub]
            if starting is not None:
                starting((method_name, mask_name))
            # a method that takes at most max_batch images per call (a diffusion model: minutes
            # per image) is called, timed and delivered chunk by chunk: progress and --timeout
            # then count per chunk, not per batch
            step = max(1, ctx.methods[method_name].max_batch or len(todo))
            for start in range(0, len(todo), step):
                part = slice(start, start + step)
                pair_records = _evaluate_pair(
                    ctx, method_name, mask_name, todo[part], sel_images[part], sel_masks[part],
                    ratios,
                )  # fmt: skip
                if deliver is not None:
                    deliver(pair_records)
                records += pair_records
    return records


def evaluate_unit(
    ctx: Context,
    unit: Unit,
    deliver: Callable[[list[dict[str, Any]]], None] | None = None,
    starting: Callable[[Pair], None] | None = None,
) -> list[dict[str, Any]]:
    """Decode the unit's images once, draw each mask type once, run and measure every pair."""
    return run_prepared(ctx, unit, prepare_unit(ctx, unit), deliver, starting)


def _evaluate_pair(
    ctx: Context,
    method_name: str,
    mask_name: str,
    todo: list[int],
    originals: torch.Tensor,
    masks: torch.Tensor,
    ratios: dict[int, float],
) -> list[dict[str, Any]]:
    started = time.perf_counter()
    try:
        # on the method's device once, for the method's inputs and for measuring its output
        device = ctx.method_device(method_name)
        originals_d, masks_d = originals.to(device), masks.to(device)
        prediction, given = call_with_timeout(
            lambda: _predict(ctx, method_name, mask_name, originals_d, masks_d, todo), ctx.timeout
        )
        problems: list[str | None] = [None] * len(todo)
    except MethodTimeout as exc:
        ctx.tainted = True
        prediction, problems = None, [str(exc)] * len(todo)
    except (ContractError, MethodFault) as exc:
        prediction, problems = None, [truncate_reason(str(exc))] * len(todo)
    except Exception as exc:  # a crashing method fails its batch, not the run
        prediction, problems = None, [_failure(ctx, exc)] * len(todo)
    finally:
        restore_cwd(ctx.home)
    seconds = (time.perf_counter() - started) / len(todo)

    values: dict[str, list[Any]] = {}
    features: dict[str, list[Any]] = {}
    if prediction is not None:
        problems = [g or p for g, p in zip(given, invalid_images(prediction))]
        keep = ctx.save_images is not None
        try:
            values, result = measure(originals_d, prediction, masks_d, keep, ctx.extra_metrics)
            features = split_features(values)
        except Exception as exc:  # under --max-memory a huge prediction fails its pair
            if ctx.memory_limit is None or not is_out_of_memory(exc):
                raise
            values, result, prediction = {}, None, None
            problems = [_failure(ctx, exc)] * len(todo)
    if ctx.save_images is not None:  # a failed batch too: earlier composites of it must go
        ctx.save_images(
            originals, masks, None if prediction is None else result.cpu(), todo, mask_name,
            method_name, problems,
        )  # fmt: skip
    records = []
    for j, index in enumerate(todo):
        record: dict[str, Any] = {
            "method": method_name,
            "fingerprint": ctx.fingerprints[method_name],
            "mask": mask_name,
            "index": int(index),
            "provenance": ctx.provenance[mask_name],
            "seconds": seconds,
            "mask_ratio": ratios[index],
        }
        if problems[j] is None and prediction is not None:
            record.update({k: v[j] for k, v in values.items()}, status=STATUS_OK)
            if ctx.extra_metrics is not None:  # which code and weights made the extra values
                record["metric_provenance"] = dict(ctx.extra_metrics.provenance)
            if features:  # arrays: the driver stores them and keeps references in the record
                record["_features"] = {mode: rows[j] for mode, rows in features.items()}
        else:
            record["status"] = f"failed: {problems[j]}"
        records.append(record)
    return records


def _failure(ctx: Context, exc: Exception) -> str:
    """The failure reason of a pair whose method raised ``exc``."""
    reason = f"{type(exc).__name__}: {exc}"
    if ctx.memory_limit is not None and is_out_of_memory(exc):
        ctx.tainted = True  # a fresh worker after this unit: the failed allocation may have left
        reason = f"exceeded --max-memory {ctx.memory_limit} ({reason})"  # a fragmented heap
    return truncate_reason(reason)


def measure_chunk(images: int, image_values: int, device: torch.device) -> int:
    """Images per chunk of :func:`measure`: on the CPU about :data:`MEASURE_CHUNK_VALUES` values,
    so every temporary stays in the cache; on a GPU the whole batch at once."""
    if device.type != "cpu":
        return max(1, images)
    return max(1, MEASURE_CHUNK_VALUES // max(1, image_values))


def measure(
    originals: torch.Tensor,
    prediction: torch.Tensor,
    masks: torch.Tensor,
    keep: bool = False,
    extra: Any = None,
) -> tuple[dict[str, list[float]], torch.Tensor | None]:
    """Every metric of each image's composite (:func:`composite` of the prediction clamped to
    [0, 1], NaN as 0), and the composites themselves when ``keep``. ``extra``: the run's
    extra metrics (``ExtraMetrics``), measured on the same composites; the Inception features
    its set metrics need are under ``FEATURE_PREFIX + mode``, one row per image.

    On the CPU the batch is composed and measured a few images at a time: the half-dozen
    batch-sized temporaries of composing and measuring then live in the cache instead of
    memory (1.2-1.4x faster than the whole batch at once at 256x256). Each image's values do
    not depend on the chunk (tested).
    """
    step = measure_chunk(
        len(prediction), prediction[0].numel() if len(prediction) else 0, prediction.device
    )
    values: dict[str, list[float]] = {}
    kept = []
    for start in range(0, len(prediction), step):
        part = slice(start, start + step)
        target, holes = originals[part].contiguous(), masks[part]
        # copied into the originals' (contiguous) layout: methods often return channels-last
        # views, and every metric would copy those again
        filled = torch.empty_like(target, memory_format=torch.contiguous_format)
        filled.copy_(prediction[part]).clamp_(0, 1).nan_to_num_(0.0)
        result = composite(target, filled, holes)
        for name, value in compute_all(result, target, holes).items():
            values.setdefault(name, []).extend(value.tolist())
        if extra is not None:
            for name, value in extra.compute(result, target, holes).items():
                values.setdefault(name, []).extend(value.tolist())
            for mode, rows in extra.features(result).items():  # set metrics: stored features
                values.setdefault(FEATURE_PREFIX + mode, []).extend(rows)
        if keep:
            kept.append(result)
    return values, (torch.cat(kept) if kept else None)


def failed_records(ctx: Context, unit: Unit, reason: str) -> list[dict[str, Any]]:
    """Records marking every (pair, index) of ``unit`` failed with ``reason`` (masks redrawn)."""
    ratios: dict[str, dict[int, float]] = {}
    if len(ctx.dataset):
        height, width = ctx.dataset.image_size
        for mask_name in {mask for _, mask in unit.todo}:
            needed = sorted({i for (_, k), v in unit.todo.items() if k == mask_name for i in v})
            masks = ctx.masks[mask_name].batch(needed, height, width, ctx.seed, ctx.ratio)
            ratios[mask_name] = dict(zip(needed, mask_ratio(None, None, masks).tolist()))
    return [
        {
            "method": method_name,
            "fingerprint": ctx.fingerprints[method_name],
            "mask": mask_name,
            "index": int(index),
            "provenance": ctx.provenance[mask_name],
            "seconds": 0.0,
            "mask_ratio": ratios.get(mask_name, {}).get(index, float("nan")),
            "status": f"failed: {truncate_reason(reason)}",
        }
        for (method_name, mask_name), indices in unit.todo.items()
        for index in indices
    ]


def split_units(todo: dict[Pair, list[int]], size: int) -> list[Unit]:
    """Cut the work into units of at most ``size`` consecutive images (all pairs together)."""
    everything = sorted({i for v in todo.values() for i in v})
    wanted = {pair: set(v) for pair, v in todo.items()}
    units = []
    for start in range(0, len(everything), size):
        batch = everything[start : start + size]
        chunk = {p: [i for i in batch if i in wanted[p]] for p in todo}
        units.append(Unit({p: v for p, v in chunk.items() if v}))
    return units


def unit_bytes(image_size: tuple[int, int], images: int) -> int:
    """Bytes of one float32 RGB copy of ``images`` images (the batch-memory unit)."""
    height, width = image_size
    return int(images) * int(height) * int(width) * 3 * 4
