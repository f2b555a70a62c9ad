"""The metrics a run computes beyond the pixel metrics (``run --metrics``): names checked,
weights resolved once at planning time, values and features measured per batch of composites.

The built-in pixel metrics (:data:`benchmark.metrics.BUILTIN_METRICS`) are always computed.
``--metrics`` adds what it names:

* per-image perceptual metrics (LPIPS, MS-SSIM): one value per record;
* plug-in metrics (the ``benchmark.metrics`` entry point): opt-in, so installing one changes no
  run and recomputes no record until it is asked for; one value per record;
* per-set metrics (FID, fid-clean, KID, P-IDS, U-IDS): each record stores the Inception pool3
  features of its composite (:mod:`benchmark.perceptual.feature_store`); the run computes the
  set values per table from them when it finishes.

Each asked metric's code (and weights) hash is stored with every record that has it
(``metric_provenance``): a value from other code or other weights is measured again, and
records of other metrics are never recomputed because of it.

This module imports torch only when a run measures or resolves weights; name checks need neither.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.errors import UsageError
from benchmark.perceptual import ALIASES, PERCEPTUAL_METRICS, canonical_name

if TYPE_CHECKING:
    import numpy as np
    import torch

#: Per-image perceptual metric -> (table label, higher is better, decimals).
TABLE: dict[str, tuple[str, bool, int]] = {
    "lpips-alex": ("LPIPS-alex", False, 4),
    "lpips-vgg": ("LPIPS-vgg", False, 4),
    "lpips-squeeze": ("LPIPS-squeeze", False, 4),
    "ms-ssim": ("MS-SSIM", True, 4),
}
#: Per-set metric -> (table label, higher is better, decimals).
SET_TABLE: dict[str, tuple[str, bool, int]] = {
    "fid": ("FID", False, 2),
    "fid-clean": ("FID-clean", False, 2),
    "kid": ("KID", False, 4),
    "p-ids": ("P-IDS", True, 4),
    "u-ids": ("U-IDS", True, 4),
}
#: Per-set metric -> the Inception input pipeline of its features (:data:`inception.MODES`).
FEATURE_MODES = {
    "fid": "pytorch-fid",
    "fid-clean": "clean",
    "kid": "pytorch-fid",
    "p-ids": "pytorch-fid",
    "u-ids": "pytorch-fid",
}
#: LPIPS metric -> the trunk name of :mod:`benchmark.perceptual.lpips`.
LPIPS_NETS = {"lpips-alex": "alex", "lpips-vgg": "vgg", "lpips-squeeze": "squeeze"}
#: Images per LPIPS call: bounds the trunk's activations (VGG16 at 512 px: about 1 GB per
#: 16 pairs), whatever the batch a GPU measures at once.
LPIPS_CHUNK = 16
#: Images per Inception call (pool3 features do not depend on it: tested).
INCEPTION_CHUNK = 16
#: Source files whose code decides the per-image values (hashed into the records' provenance).
CODE_FILES = ("lpips.py", "backbones.py", "ms_ssim.py", "selection.py")
#: Source files whose code decides the stored features.
FEATURE_CODE_FILES = ("inception.py", "selection.py")
#: Key of a measured batch's features in :func:`benchmark.run.pipeline.measure`'s values.
FEATURE_PREFIX = "_features:"


def builtin_names() -> tuple[str, ...]:
    from benchmark.metrics import BUILTIN_METRICS

    return BUILTIN_METRICS


def check_metric_names(names: list[str]) -> list[str]:
    """The extra metrics among ``names`` (canonical, in order, once each): perceptual metrics
    and plug-in metrics. Built-in pixel metric names are accepted (always computed). An unknown
    name is one :class:`UsageError` with the closest known names."""
    from benchmark.metrics import METRICS

    pixel = set(builtin_names())
    registered = set(METRICS.names())
    extras: list[str] = []
    for given in names:
        name = canonical_name(given)
        if name in pixel:
            continue
        if name not in PERCEPTUAL_METRICS and name not in registered:
            known = sorted(registered | set(PERCEPTUAL_METRICS) | set(ALIASES))
            close = difflib.get_close_matches(given, known, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UsageError(
                f"unknown metric {given!r} in --metrics{hint} (python -m benchmark list metrics)"
            )
        if name not in extras:
            extras.append(name)
    return extras


def is_set_metric(name: str) -> bool:
    return name in SET_TABLE


def _files_hash(names: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + (Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()[:12]


def plugin_stamp(name: str) -> str:
    """What decides a plug-in metric's values: the hash of its code's source file and the
    version of the package it comes from."""
    from benchmark.metrics import METRICS

    metric = METRICS.get(name)()
    try:
        source = Path(inspect.getsourcefile(metric.compute) or "").read_bytes()
        code = hashlib.sha256(source).hexdigest()[:12]
    except (OSError, TypeError):
        code = "unknown"
    origin = METRICS.origin(name)
    return f"code {code}; {origin}"


@contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """One CPU thread while features are computed: oneDNN's convolutions sum in another order
    with more threads (features move by ~4e-6), and a run's features must not depend on how
    many workers shared the cores. A GPU is left as it is."""
    import torch

    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class ExtraMetrics:
    """The extra metrics of a run, with their resolved weight files.

    ``provenance``: metric -> its code hash (and weights' sha256, for set metrics those of the
    features); stored with every record that has the metric, so a value from other code or
    other weights is measured again.
    """

    names: tuple[str, ...]
    weights_dir: str | None
    allow_unverified: bool
    provenance: dict[str, str]
    #: set metrics -> their feature mode; modes -> their stamp (code and weights hash)
    feature_stamps: dict[str, str] = field(default_factory=dict)

    @property
    def image_names(self) -> tuple[str, ...]:
        """The per-image metrics (perceptual and plug-in) of :attr:`names`."""
        return tuple(n for n in self.names if not is_set_metric(n))

    @property
    def set_names(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if is_set_metric(n))

    @property
    def modes(self) -> tuple[str, ...]:
        """The Inception input pipelines the set metrics need, in a fixed order."""
        return tuple(dict.fromkeys(FEATURE_MODES[n] for n in self.set_names))

    def compute(
        self, result: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Each per-image metric for a batch of composites: ``{name: (N,) tensor}``, on the
        tensors' device (the networks are built once per process and device)."""
        import torch

        from benchmark.metrics import METRICS
        from benchmark.perceptual.lpips import lpips
        from benchmark.perceptual.ms_ssim import ms_ssim

        values = {}
        for name in self.image_names:
            if name == "ms-ssim":
                values[name] = ms_ssim(result, target).float()
            elif name in LPIPS_NETS:
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
            else:  # a plug-in metric
                metric = METRICS.get(name)()
                value = metric.compute(result, target, mask)
                values[name] = torch.as_tensor(value, dtype=torch.float32).reshape(-1).cpu()
                if len(values[name]) != len(result):
                    raise ValueError(
                        f"metric {name}: expected {len(result)} values, got {len(values[name])}"
                    )
        return values

    def features(self, result: torch.Tensor) -> dict[str, np.ndarray]:
        """Inception pool3 features of a batch of composites per mode: ``{mode: (N, 2048)}``
        float32 NumPy arrays (one CPU thread on the CPU, see :func:`_one_thread`)."""
        return {mode: self.mode_features(result, mode) for mode in self.modes}

    def mode_features(self, images: torch.Tensor, mode: str) -> np.ndarray:
        """Inception pool3 features of ``images`` for one ``mode``, ``(N, 2048)`` float32."""
        from benchmark.perceptual import inception

        with _one_thread(images.device):
            return inception.features(
                images,
                mode,
                INCEPTION_CHUNK,
                self.weights_dir,
                self.allow_unverified,
                download=False,
            ).numpy()


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
    from benchmark.perceptual.inception import WEIGHTS as INCEPTION_WEIGHTS
    from benchmark.perceptual.ms_ssim import MIN_SIDE

    if "ms-ssim" in extras and min(image_size) < MIN_SIDE:
        height, width = image_size
        raise UsageError(
            f"--metrics ms-ssim needs images of at least {MIN_SIDE}x{MIN_SIDE} (5 scales of an "
            f"11-pixel window); this run's are {height}x{width} (choose a larger --size)"
        )
    folder = None if weights_dir is None else str(weights_dir)
    code, feature_code = _files_hash(CODE_FILES), _files_hash(FEATURE_CODE_FILES)
    provenance: dict[str, str] = {}
    stamps: dict[str, str] = {}

    resolved: list[Path] = []

    def checked(files: tuple[str, ...]) -> list[str]:
        sums = []
        for file in files:
            path = weights.resolve(file, folder, allow_unverified)
            resolved.append(path)
            sums.append(f"{file}={weights.verify(path, file, allow_unverified)}")
        return sums

    with warnings.catch_warnings():  # the run prints its own note about unverified weights
        warnings.simplefilter("ignore", weights.UnverifiedWeightsWarning)
        for name in extras:
            if is_set_metric(name):
                mode = FEATURE_MODES[name]
                if mode not in stamps:
                    sums = checked((INCEPTION_WEIGHTS,))
                    stamps[mode] = "; ".join([f"features {mode}", f"code {feature_code}", *sums])
                provenance[name] = stamps[mode]
            elif name in PERCEPTUAL_METRICS:
                files = NETS[LPIPS_NETS[name]][1:3] if name in LPIPS_NETS else ()
                provenance[name] = "; ".join([f"code {code}", *checked(tuple(files))])
            else:
                provenance[name] = plugin_stamp(name)
        _read_weights(resolved)
    return ExtraMetrics(tuple(extras), folder, allow_unverified, provenance, stamps)


def _read_weights(paths: list[Path]) -> None:
    """Read each weight file once, before any work: a file that is not a weights-only state
    dict (garbage under the right name, with ``--allow-unverified-weights``) is one
    :class:`~benchmark.errors.DataError` line here, not a failure in every worker.

    Only read, never built into a network here: a network built in this process before the
    process pool forks its workers crashed them (SIGSEGV in 4 of 8 runs, still 1 of 8 when
    built with one thread)."""
    from benchmark.perceptual import weights

    for path in dict.fromkeys(paths):
        weights.read_state_dict(path)


def describe_metric(name: str) -> tuple[str, bool | None, int]:
    """``(label, higher is better, decimals)`` of any metric a table may show; a metric whose
    plug-in is not installed here is shown by its name, without a direction."""
    if name in TABLE:
        return TABLE[name]
    if name in SET_TABLE:
        return SET_TABLE[name]
    from benchmark.errors import BenchmarkError
    from benchmark.metrics import METRICS

    try:
        metric = METRICS.get(name)()
    except (BenchmarkError, KeyError):
        return name, None, 4
    return metric.label, metric.higher_is_better, metric.decimals


def split_features(values: dict[str, Any]) -> dict[str, list[Any]]:
    """The per-mode feature rows :func:`benchmark.run.pipeline.measure` put in ``values``
    (removed from it): ``{mode: [row, ...]}``."""
    return {
        key[len(FEATURE_PREFIX) :]: values.pop(key)
        for key in [k for k in values if k.startswith(FEATURE_PREFIX)]
    }
