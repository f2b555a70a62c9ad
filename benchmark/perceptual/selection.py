"""The perceptual metrics a run computes (``run --metrics``): names checked, weights resolved
once at planning time, values measured per batch of composites.

The pixel metrics (:data:`benchmark.metrics.METRICS`) are always computed; ``--metrics`` adds
the per-image perceptual metrics it names. Per-set metrics (FID, KID, P-IDS/U-IDS) are refused
for now: runs do not compute them yet.

This module imports torch only when a run measures (:class:`ExtraMetrics.compute`) or resolves
weights (:func:`plan_extra_metrics`); name checks need neither.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.errors import UsageError
from benchmark.perceptual import PERCEPTUAL_METRICS

if TYPE_CHECKING:
    import torch

#: Per-image perceptual metric -> (table label, higher is better, decimals).
TABLE: dict[str, tuple[str, bool, int]] = {
    "lpips-alex": ("LPIPS-alex", False, 4),
    "lpips-vgg": ("LPIPS-vgg", False, 4),
    "lpips-squeeze": ("LPIPS-squeeze", False, 4),
    "ms-ssim": ("MS-SSIM", True, 4),
}
#: LPIPS metric -> the trunk name of :mod:`benchmark.perceptual.lpips`.
LPIPS_NETS = {"lpips-alex": "alex", "lpips-vgg": "vgg", "lpips-squeeze": "squeeze"}
#: Images per LPIPS call: bounds the trunk's activations (VGG16 at 512 px: about 1 GB per
#: 16 pairs), whatever the batch a GPU measures at once.
LPIPS_CHUNK = 16
#: Source files whose code decides the per-image values (hashed into the records' provenance).
CODE_FILES = ("lpips.py", "backbones.py", "ms_ssim.py", "selection.py")


def _aliases() -> dict[str, str]:
    """alias -> canonical name (``lpips`` -> ``lpips-alex``)."""
    return {
        alias: name
        for name, info in PERCEPTUAL_METRICS.items()
        for alias in tuple(info.get("aliases") or ())  # type: ignore[arg-type]
    }


def check_metric_names(names: list[str]) -> list[str]:
    """The per-image perceptual metrics among ``names`` (canonical, in order, once each).

    Pixel metric names are accepted (they are always computed). An unknown name, or a per-set
    metric (not computed in runs yet), is one :class:`UsageError`.
    """
    from benchmark.metrics import METRICS

    pixel = set(METRICS.names())
    aliases = _aliases()
    extras: list[str] = []
    for given in names:
        name = aliases.get(given, given)
        if name in pixel:
            continue
        info = PERCEPTUAL_METRICS.get(name)
        if info is None:
            known = sorted(pixel | set(PERCEPTUAL_METRICS) | set(aliases))
            close = difflib.get_close_matches(given, known, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UsageError(
                f"unknown metric {given!r} in --metrics{hint} (python -m benchmark list metrics)"
            )
        if info["kind"] != "image":
            raise UsageError(
                f"--metrics {given}: a per-set metric, not yet computed in runs (per-image "
                f"metrics: {', '.join(TABLE)})"
            )
        if name not in extras:
            extras.append(name)
    return extras


def _code_hash() -> str:
    digest = hashlib.sha256()
    for name in CODE_FILES:
        digest.update(name.encode() + (Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class ExtraMetrics:
    """The perceptual metrics a run computes, with their resolved weight files.

    ``provenance``: metric -> the code hash and its weight files' sha256; stored with every
    record that has the metric, so a value from other code or other weights is measured again.
    """

    names: tuple[str, ...]
    weights_dir: str | None
    allow_unverified: bool
    provenance: dict[str, str]

    def compute(self, result: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each metric of ``names`` for a batch of composites: ``{name: (N,) tensor}``, on the
        tensors' device (the networks are built once per process and device)."""
        import torch

        from benchmark.perceptual.lpips import lpips
        from benchmark.perceptual.ms_ssim import ms_ssim

        values = {}
        for name in self.names:
            if name == "ms-ssim":
                values[name] = ms_ssim(result, target).float()
            else:
                parts = [
                    lpips(
                        result[k : k + LPIPS_CHUNK],
                        target[k : k + LPIPS_CHUNK],
                        LPIPS_NETS[name],
                        self.weights_dir,
                        self.allow_unverified,
                        download=False,  # resolved (or downloaded) at planning time
                    )
                    for k in range(0, len(result), LPIPS_CHUNK)
                ]
                values[name] = torch.cat(parts) if parts else result.new_zeros(0)
        return values


def plan_extra_metrics(
    names: list[str],
    image_size: tuple[int, int],
    weights_dir: str | os.PathLike | None = None,
    allow_unverified: bool = False,
) -> ExtraMetrics | None:
    """Check ``names`` against the run's image size and resolve every weight file once (a
    missing file: one :class:`UsageError` naming it and the folders searched; a wrong checksum:
    :class:`~benchmark.errors.DataError`), before any work. ``None`` when nothing is extra."""
    extras = check_metric_names(names)
    if not extras:
        return None
    from benchmark.perceptual import weights
    from benchmark.perceptual.backbones import NETS
    from benchmark.perceptual.ms_ssim import MIN_SIDE

    if "ms-ssim" in extras and min(image_size) < MIN_SIDE:
        height, width = image_size
        raise UsageError(
            f"--metrics ms-ssim needs images of at least {MIN_SIDE}x{MIN_SIDE} (5 scales of an "
            f"11-pixel window); this run's are {height}x{width} (choose a larger --size)"
        )
    folder = None if weights_dir is None else str(weights_dir)
    code = _code_hash()
    provenance = {}
    with warnings.catch_warnings():  # the run prints its own note about unverified weights
        warnings.simplefilter("ignore", weights.UnverifiedWeightsWarning)
        for name in extras:
            files = NETS[LPIPS_NETS[name]][1:3] if name in LPIPS_NETS else ()
            sums = []
            for file in files:
                path = weights.resolve(file, folder, allow_unverified)
                sums.append(f"{file}={weights.verify(path, file, allow_unverified)}")
            provenance[name] = "; ".join([f"code {code}", *sums])
    return ExtraMetrics(tuple(extras), folder, allow_unverified, provenance)
