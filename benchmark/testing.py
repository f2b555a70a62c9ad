"""Contract checks for any registered method, mask family, data set or per-image metric
(built-in, plug-in or perceptual).

The checks the built-ins pass, runnable on an entry selected by exact name, from the command line
(``python -m benchmark check NAME...``) or from a plug-in package's own tests::

    from benchmark.testing import assert_contract

    def test_my_method_follows_the_contract():
        assert_contract("my-method")

Each check gives one :class:`CheckResult`; a check that raises fails with the exception's message.
"""

from __future__ import annotations

import difflib
import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.checks import check_images, check_masks, check_prediction
from benchmark.errors import ContractError, UnknownNameError, UsageError
from benchmark.registry import Registry, parse_spec

#: Kinds of entries the checks cover, in the order ``check`` reports them.
KINDS = ("method", "mask", "dataset", "metric")
#: Masks every method is checked with (masks named in the same ``check`` call are added).
METHOD_CHECK_MASKS = ("lines", "square")
#: Image sides of the mask checks: the seed's 32 x 32 and a large 256 x 256.
MASK_CHECK_SIZES = ((32, 32), (256, 256))
#: How far an image computed alone may differ from the same image computed in a batch.
BATCH_TOLERANCE = 1e-5
#: Images and side of the metric checks (MS-SSIM needs 176 px: it is checked at that side).
METRIC_CHECK_IMAGES, METRIC_CHECK_SIDE = 6, 64


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one contract check on one entry."""

    kind: str
    name: str
    check: str
    passed: bool
    detail: str = ""

    def line(self) -> str:
        """``PASS  method telea: deterministic`` (failures add ``: reason``)."""
        text = f"{'PASS' if self.passed else 'FAIL'}  {self.kind} {self.name}: {self.check}"
        return f"{text}: {self.detail}" if self.detail else text


class CheckFailed(Exception):
    """Raised inside a check with the reason it failed."""


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise CheckFailed(reason)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, (CheckFailed, ContractError, UsageError)):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Checker:
    """Collects the results of the checks run on one entry."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name
        self.results: list[CheckResult] = []

    def run(self, check: str, body: Callable[[], Any]) -> Any:
        """Run ``body``; record a pass, or a failure with its one-line reason. Returns its value."""
        try:
            value = body()
        except Exception as exc:  # any exception is this entry's failure, never the checker's
            self.results.append(CheckResult(self.kind, self.name, check, False, _one_line(exc)))
            return None
        self.results.append(CheckResult(self.kind, self.name, check, True))
        return value if value is not None else True


# -- inputs ---------------------------------------------------------------------------------------
def photo_patches(count: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """``count`` real photo patches ``float32 (count, 3, height, width)`` on 8-bit levels."""
    from skimage import data

    rng = np.random.default_rng(seed)
    photos = [data.astronaut(), data.coffee()]
    patches = []
    for i in range(count):
        photo = photos[i % len(photos)]
        top = int(rng.integers(0, photo.shape[0] - height + 1))
        left = int(rng.integers(0, photo.shape[1] - width + 1))
        patches.append(photo[top : top + height, left : left + width])
    return torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).float().div(255)


def _masked(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, 0.0, images)


def _edge_masks(count: int, height: int, width: int, full: bool) -> torch.Tensor:
    """One hole pixel per image (``full=False``) or one known pixel (``full=True``)."""
    mask = torch.full((count, 1, height, width), full, dtype=torch.bool)
    for k in range(count):
        mask[k, 0, (k * 7) % height, (k * 5) % width] = not full
    return mask


# -- methods --------------------------------------------------------------------------------------
def check_method(spec: str, masks: Iterable[str] = METHOD_CHECK_MASKS) -> list[CheckResult]:
    """Contract checks of method ``spec`` with each of ``masks``: see the module docstring."""
    from benchmark.masking import build_mask
    from benchmark.method import METHODS, Method

    checker = _Checker("method", spec)

    def build() -> Method:
        method = METHODS.build(spec)
        _require(isinstance(method, Method), f"built a {type(method).__name__}, not a Method")
        return method

    method = checker.run("builds with these parameters as a benchmark.method.Method", build)
    if method is None:
        return checker.results

    def predict(masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return check_prediction(method.inpaint(masked.clone(), mask.clone()), masked)

    for mask_spec in masks:
        try:
            mask = build_mask(mask_spec).batch(range(6), 32, 32, seed=0)
        except Exception as exc:  # the mask's own checks report it; the method is not at fault
            check = f"{mask_spec}: masks to check with"
            checker.results.append(CheckResult("method", spec, check, False, _one_line(exc)))
            continue
        _check_method_on(checker, method, predict, mask_spec, photo_patches(6, 32, 32), mask)

    def odd_sizes() -> None:
        for height, width in ((33, 47), (11, 13)):
            images = photo_patches(2, height, width, seed=1)
            mask = build_mask("square").batch(range(2), height, width, seed=0)
            predict(_masked(images, mask), mask)

    checker.run("odd sizes 33x47 and 11x13", odd_sizes)

    for full, label in ((False, "near-empty masks (one hole pixel)"), (True, "near-full masks")):
        images = photo_patches(3, 32, 32, seed=2)
        edge = _edge_masks(3, 32, 32, full)
        checker.run(label, lambda e=edge, i=images: predict(_masked(i, e), e))

    if getattr(method, "device", "cpu") == "auto" and torch.cuda.is_available():

        def same_on_cuda() -> None:
            images = photo_patches(4, 32, 32)
            mask = build_mask("square").batch(range(4), 32, 32)
            masked = _masked(images, mask)
            expected = predict(masked, mask)
            device = torch.device("cuda")
            got = method.to(device).inpaint(masked.to(device), mask.to(device))
            method.to(torch.device("cpu"))
            difference = (check_prediction(got, masked) - expected).abs().max().item()
            _require(difference <= 2e-3, f"CUDA differs from CPU by {difference:.3g}")

        checker.run("same results on CUDA as on the CPU", same_on_cuda)
    return checker.results


def _check_method_on(
    checker: _Checker,
    method: Any,
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    mask_spec: str,
    images: torch.Tensor,
    mask: torch.Tensor,
) -> None:
    """The per-mask method checks: contract, composite, determinism, holes unread, batching."""
    from benchmark.method import composite

    masked = _masked(images, mask)

    def contract() -> None:
        given, given_mask = masked.clone(), mask.clone()
        prediction = method.inpaint(given, given_mask)
        _require(
            torch.equal(given, masked) and torch.equal(given_mask, mask),
            "inpaint() modified its inputs",
        )
        check_prediction(prediction, masked)

    checker.run(f"{mask_spec}: float (N, 3, H, W) in [0, 1], inputs unchanged", contract)

    def composite_keeps_known() -> None:
        result = composite(images, predict(masked, mask), mask)
        known = ~mask.expand_as(images)
        _require(torch.equal(result[known], images[known]), "known pixels changed")

    checker.run(f"{mask_spec}: known pixels untouched after composite", composite_keeps_known)

    def deterministic() -> None:
        first, second = predict(masked, mask), predict(masked, mask)
        _require(torch.equal(first, second), "two calls on the same input differ")

    checker.run(f"{mask_spec}: deterministic", deterministic)

    def hole_pixels_unread() -> None:
        noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(0))
        leaked = predict(torch.where(mask, noise, images), mask)
        difference = (leaked - predict(masked, mask)).abs().max().item()
        _require(difference <= 1e-6, f"output depends on hole pixels (max diff {difference:.3g})")

    checker.run(f"{mask_spec}: hole pixels are not read", hole_pixels_unread)

    def batch_independent() -> None:
        together = predict(masked, mask)
        for i in (0, len(masked) - 1):
            alone = predict(masked[i : i + 1], mask[i : i + 1])[0]
            difference = (alone - together[i]).abs().max().item()
            _require(
                difference <= BATCH_TOLERANCE,
                f"image {i} alone differs from the batch by {difference:.3g}",
            )

    checker.run(f"{mask_spec}: an image alone equals it in a batch", batch_independent)


# -- masks ----------------------------------------------------------------------------------------
def check_mask(spec: str, count: int = 40) -> list[CheckResult]:
    """Contract checks of mask family ``spec`` at 32x32 and 256x256."""
    from benchmark.masking import MaskGenerator, build_mask

    checker = _Checker("mask", spec)

    def build() -> MaskGenerator:
        generator = build_mask(spec)
        _require(
            isinstance(generator, MaskGenerator),
            f"built a {type(generator).__name__}, not a MaskGenerator",
        )
        return generator

    generator = checker.run("builds with these parameters as a MaskGenerator", build)
    if generator is None:
        return checker.results
    for height, width in MASK_CHECK_SIZES:
        n = count if height <= 64 else max(4, count // 8)
        size = f"{height}x{width}"

        def drawn(seed: int = 0, h: int = height, w: int = width, k: int = n) -> np.ndarray:
            return np.stack([generator.mask(i, h, w, seed=seed) for i in range(k)])

        def shape_and_type(h: int = height, w: int = width, k: int = n) -> None:
            for i in range(k):
                one = generator.mask(i, h, w, seed=0)
                _require(
                    isinstance(one, np.ndarray) and one.dtype == np.bool_ and one.shape == (h, w),
                    f"mask({i}) is {getattr(one, 'dtype', type(one))} "
                    f"{getattr(one, 'shape', '')}, expected bool {(h, w)}",
                )
            check_masks(generator.batch(range(k), h, w, seed=0))

        checker.run(f"{size}: bool (H, W), each with a hole and a known pixel", shape_and_type)

        def deterministic(h: int = height, w: int = width, k: int = n) -> None:
            again = np.stack([build_mask(spec).mask(i, h, w, seed=0) for i in range(k)])
            _require(np.array_equal(drawn(), again), "a fresh generator draws other masks")

        checker.run(
            f"{size}: the same mask per (seed, index), also from a fresh build", deterministic
        )

        def batch_independent(h: int = height, w: int = width, k: int = n) -> None:
            alone = drawn(seed=3)
            order = np.random.default_rng(1).permutation(k)
            shuffled = generator.batch(order, h, w, seed=3)[:, 0].numpy()
            _require(np.array_equal(shuffled, alone[order]), "a shuffled batch draws other masks")
            prefix = generator.batch(range(k // 2), h, w, seed=3)[:, 0].numpy()
            _require(np.array_equal(prefix, alone[: k // 2]), "a shorter batch draws other masks")

        checker.run(f"{size}: independent of batch size and order", batch_independent)
    return checker.results


# -- data sets ------------------------------------------------------------------------------------
def _digests(images: torch.Tensor) -> list[str]:
    levels = images.mul(255).round().to(torch.uint8).numpy()
    return [hashlib.blake2b(image.tobytes(), digest_size=8).hexdigest() for image in levels]


def _sample(n: int, limit: int = 64) -> list[int]:
    """Up to ``limit`` indices spread over ``range(n)``, first and last included."""
    return sorted({int(i) for i in np.linspace(0, n - 1, min(n, limit))})


def check_dataset(
    spec: str, size: int | None = None, data_dir: str | Path | None = None
) -> list[CheckResult]:
    """Contract checks of data set ``spec`` (both splits) as ``run --dataset`` builds it."""
    from benchmark.datasets import Dataset, build_dataset

    checker = _Checker("dataset", spec)
    built: dict[str, Dataset] = {}
    for split in ("test", "train"):

        def build(split: str = split) -> Dataset:
            dataset = build_dataset(spec, split=split, size=size, data_dir=data_dir)
            _require(isinstance(dataset, Dataset), f"built a {type(dataset).__name__}")
            _require(len(dataset) >= 1, "no images")
            return dataset

        dataset = checker.run(f"{split}: builds with at least one image", build)
        if dataset is None:
            continue
        built[split] = dataset

        def contract(dataset: Dataset = dataset) -> None:
            indices = _sample(len(dataset))
            images = dataset.images(indices)
            check_images(images, "images")
            _require(len(images) == len(indices), f"{len(images)} images for {len(indices)}")
            _require(
                tuple(images.shape[-2:]) == tuple(dataset.image_size),
                f"image_size {dataset.image_size} but images are {tuple(images.shape[-2:])}",
            )
            off_level = (images.mul(255) - images.mul(255).round()).abs().max().item()
            _require(off_level < 1e-3, f"values are not 8-bit levels k/255 ({off_level:.3g} off)")

        checker.run(f"{split}: float32 (N, 3, H, W) RGB in [0, 1] on 8-bit levels", contract)

        def stable(dataset: Dataset = dataset, split: str = split) -> None:
            indices = _sample(len(dataset), 16)
            together = dataset.images(indices)
            reversed_ = dataset.images(indices[::-1]).flip(0)
            _require(torch.equal(together, reversed_), "an image depends on the order asked")
            for position, index in ((0, indices[0]), (-1, indices[-1])):
                alone = dataset.images([index])[0]
                _require(torch.equal(alone, together[position]), f"image {index} changed")
            fresh = build_dataset(spec, split=split, size=size, data_dir=data_dir)
            _require(len(fresh) == len(dataset), "a second build has another length")
            _require(torch.equal(fresh.images(indices), together), "a second build differs")
            fingerprint = dataset.fingerprint()
            _require(isinstance(fingerprint, str) and fingerprint, "empty fingerprint")
            _require(fresh.fingerprint() == fingerprint, "a second build has another fingerprint")

        checker.run(f"{split}: a stable index (same image per index, every read)", stable)

    if len(built) == 2:

        def splits_disjoint() -> None:
            test = _digests(built["test"].images(_sample(len(built["test"]), 512)))
            train = _digests(built["train"].images(_sample(len(built["train"]), 512)))
            shared = set(test) & set(train)
            if shared and shared != set(test) | set(train):  # identical splits: declared as one
                raise CheckFailed(f"{len(shared)} sampled test images also appear in train")

        checker.run("train and test share no image (or are the same single split)", splits_disjoint)
    return checker.results


# -- metrics --------------------------------------------------------------------------------------
def build_metric(
    spec: str, weights_dir: str | Path | None = None, allow_unverified: bool = False
) -> Any:
    """The metric ``spec`` as a :class:`benchmark.metrics.Metric`: a registered (built-in or
    plug-in) metric, or a per-image perceptual one (its weights looked up, never downloaded)."""
    from benchmark.metrics import METRICS, Metric
    from benchmark.perceptual import PERCEPTUAL_METRICS

    name = _perceptual_name(spec)
    if name is None:
        metric = METRICS.build(spec)
        registered = METRICS.canonical(parse_spec(spec).name)
        _require(isinstance(metric, Metric), f"built a {type(metric).__name__}, not a Metric")
        _require(
            metric.name == registered,
            f"its Metric is named {metric.name!r}, not {registered!r}: records would store its "
            "values under another name",
        )
        return metric
    from benchmark.perceptual.selection import LPIPS_NETS, TABLE

    label, _, decimals = TABLE[name]
    if name in LPIPS_NETS:
        from benchmark.perceptual import lpips

        net = LPIPS_NETS[name]
        lpips.model(net, weights_dir, allow_unverified, download=False)  # missing: one line

        def compute(result: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> Any:
            return lpips.lpips(result, target, net, weights_dir, allow_unverified, download=False)

    else:
        from benchmark.perceptual.ms_ssim import ms_ssim

        def compute(result: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> Any:
            return ms_ssim(result, target)

    higher = PERCEPTUAL_METRICS[name]["direction"] == "higher"
    return Metric(name, compute, label, higher, decimals)


def _perceptual_name(spec: str) -> str | None:
    """The canonical per-image perceptual metric ``spec`` names (aliases too), else None."""
    from benchmark.perceptual import canonical_name
    from benchmark.perceptual.selection import TABLE

    name = canonical_name(spec)
    return name if name in TABLE else None


def check_metric(
    spec: str, weights_dir: str | Path | None = None, allow_unverified: bool = False
) -> list[CheckResult]:
    """Contract checks of per-image metric ``spec`` on a small batch of photo patches whose
    holes (``square`` masks) hold noise: a ``Metric`` with a direction, ``(N,)`` finite floats,
    inputs unchanged, deterministic, and an image's value independent of its batch."""
    from benchmark.masking import build_mask

    checker = _Checker("metric", spec)
    metric = checker.run(
        "builds as a benchmark.metrics.Metric of its name",
        lambda: build_metric(spec, weights_dir, allow_unverified),
    )
    if metric is None:
        return checker.results

    def declared() -> None:
        direction, decimals = metric.higher_is_better, metric.decimals
        _require(
            direction is None or type(direction) is bool,
            f"higher_is_better must be True, False or None (descriptive), got {direction!r}",
        )
        _require(isinstance(metric.label, str) and metric.label.strip() != "", "no label")
        _require(type(decimals) is int and 0 <= decimals <= 12,
                 f"decimals must be an integer from 0 to 12, got {decimals!r}")  # fmt: skip

    checker.run("declares its direction (higher_is_better), label and decimals", declared)
    side = 176 if metric.name == "ms-ssim" else METRIC_CHECK_SIDE
    count = METRIC_CHECK_IMAGES
    target = photo_patches(count, side, side, seed=3)
    mask = build_mask("square").batch(range(count), side, side, seed=0)
    noise = torch.rand(target.shape, generator=torch.Generator().manual_seed(0))
    result = torch.where(mask, noise, target)  # a composite: noise in the holes

    def measure(r: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        values = metric.compute(r, t, m)
        _require(isinstance(values, torch.Tensor), f"returned a {type(values).__name__}")
        _require(
            tuple(values.shape) == (len(r),) and values.dtype.is_floating_point,
            f"returned {values.dtype} {tuple(values.shape)}, expected float ({len(r)},)",
        )
        _require(bool(torch.isfinite(values).all()), f"non-finite values {values.tolist()}")
        return values.detach().to("cpu", torch.float64)

    def contract() -> torch.Tensor:
        given = (result.clone(), target.clone(), mask.clone())
        values = measure(*given)
        unchanged = all(torch.equal(a, b) for a, b in zip(given, (result, target, mask)))
        _require(unchanged, "compute() modified its inputs")
        return values

    where = f"{count} images of {side}x{side}"
    values = checker.run(f"float (N,) finite values on {where}, inputs unchanged", contract)
    if values is None:
        return checker.results

    def deterministic() -> None:
        again = measure(result, target, mask)
        _require(
            torch.equal(again, values), f"two calls differ: {values.tolist()} {again.tolist()}"
        )

    checker.run("deterministic", deterministic)

    def batch_independent() -> None:
        order = torch.arange(count).flip(0)
        parts = [(measure(result[order], target[order], mask[order]).flip(0), "reversed")]
        for i in (0, count - 1):
            one = slice(i, i + 1)
            alone = torch.full((count,), math.nan, dtype=torch.float64)
            alone[i] = measure(result[one], target[one], mask[one])[0]
            parts.append((alone, f"image {i} alone"))
        for got, how in parts:
            known = torch.isfinite(got)
            gap = ((got - values).abs() / values.abs().clamp_min(1))[known].max().item()
            _require(gap <= BATCH_TOLERANCE, f"{how} differs from the batch by {gap:.3g}")

    checker.run(
        "an image's value does not depend on its batch (alone, reordered)", batch_independent
    )
    return checker.results


# -- selection by name ---------------------------------------------------------------------------
def registries() -> dict[str, Registry]:
    """The registry of each kind the checks cover (per-image perceptual metrics are metrics
    too, outside the registry: see :func:`kinds_of`)."""
    from benchmark.datasets import DATASETS
    from benchmark.masking import MASKS
    from benchmark.method import METHODS
    from benchmark.metrics import METRICS

    return {"method": METHODS, "mask": MASKS, "dataset": DATASETS, "metric": METRICS}


def kinds_of(text: str, only: str | None = None) -> list[str]:
    """The kinds (or just ``only``) whose registry holds the name of spec ``text`` exactly.

    No wildcards. Raises :class:`UnknownNameError` (exit 2) when none does.
    """
    name = text.partition(":")[0]
    if not name:
        parse_spec(text)  # raises the usual malformed-name error
    selected = {k: r for k, r in registries().items() if only is None or k == only}
    kinds = [kind for kind, registry in selected.items() if name in registry]
    if "metric" in selected and "metric" not in kinds and _perceptual_name(name):
        kinds.append("metric")
    if not kinds:
        from benchmark.perceptual import PERCEPTUAL_METRICS

        if "metric" in selected and name in PERCEPTUAL_METRICS:
            raise UsageError(
                f"{name!r} is a per-set metric: check covers per-image metrics (one value per "
                "image); per-set metrics are checked against their reference by the test suite"
            )
        valid = sorted({n for r in selected.values() for n in r.names()})
        if "metric" in selected:
            from benchmark.perceptual.selection import TABLE

            valid = sorted({*valid, *TABLE})
        close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise UnknownNameError(
            f"unknown name {name!r}{hint}: not a registered "
            f"{only or 'method, mask, dataset or metric'}; "
            f"registered: {', '.join(valid)}"
        )
    return kinds


def check(
    names: Sequence[str],
    size: int | None = None,
    data_dir: str | Path | None = None,
    kind: str | None = None,
    weights_dir: str | Path | None = None,
    allow_unverified: bool = False,
) -> list[CheckResult]:
    """Every contract check of every entry named in ``names`` (methods also with named masks).

    A name registered as several kinds (a ``folder`` mask family and data set) is checked as
    each, unless ``kind`` (``"method"``, ``"mask"``, ``"dataset"`` or ``"metric"``) selects
    one. ``weights_dir`` and ``allow_unverified``: where LPIPS finds its weight files.
    """
    if kind is not None and kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    selected = [(text, kinds_of(text, kind)) for text in names]  # unknown names fail first
    extra_masks = [text for text, kinds in selected if "mask" in kinds]
    masks = list(dict.fromkeys([*METHOD_CHECK_MASKS, *extra_masks]))
    results: list[CheckResult] = []
    for text, kinds in selected:
        for kind in kinds:
            if kind == "method":
                results += check_method(text, masks)
            elif kind == "mask":
                results += check_mask(text)
            elif kind == "metric":
                results += check_metric(text, weights_dir, allow_unverified)
            else:
                results += check_dataset(text, size=size, data_dir=data_dir)
    return results


def assert_contract(
    name: str,
    size: int | None = None,
    data_dir: str | Path | None = None,
    kind: str | None = None,
) -> list[CheckResult]:
    """Run :func:`check` on ``name``; raise ``AssertionError`` listing every failed check."""
    results = check([name], size=size, data_dir=data_dir, kind=kind)
    failed = [r.line() for r in results if not r.passed]
    if failed:
        raise AssertionError("contract checks failed:\n" + "\n".join(failed))
    return results
