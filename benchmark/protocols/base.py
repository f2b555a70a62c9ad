"""A protocol: the named, versioned bundle of settings a published number was measured with.

A :class:`Protocol` fixes the data set and split, the image count, the image size and crop rule,
the mask generators with their parameters, the seed, the metrics and the hole-ratio bins. It is
registered in :data:`PROTOCOLS` under its name; each name keeps every version it ever had, so
``NAME@VERSION`` names one exactly and ``NAME`` the newest. :meth:`Protocol.fingerprint` hashes
the settings (not the prose), so two runs that cite the same ``NAME@VERSION`` measured the same
thing, and a protocol whose settings change must get a new version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmark.errors import UsageError
from benchmark.registry import Registry

#: The NVIDIA irregular-mask bins (Liu et al. 2018), as the harness reports them.
NVIDIA_BINS: tuple[tuple[float, float], ...] = (
    (0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6),
)  # fmt: skip
#: LaMa's evaluator groups images by hole share into ten equal bins of [0, 1].
TENTHS: tuple[tuple[float, float], ...] = tuple(
    (round(k / 10, 1), round((k + 1) / 10, 1)) for k in range(10)
)
#: The pixel metrics every protocol measures (all of them registered in ``benchmark.metrics``).
PIXEL_METRICS = ("psnr", "ssim", "hole_psnr", "hole_l1")


@dataclass(frozen=True)
class MaskFiles:
    """A fixed set of mask files a protocol evaluates with (given as ``--masks folder:PATH``).

    ``count`` files named by ``pattern`` (a ``str.format`` pattern of the file number) of
    ``side`` x ``side`` pixels; ``bins[k]`` holds files ``k * per_bin .. (k + 1) * per_bin - 1``.
    """

    name: str
    count: int
    pattern: str
    side: int
    per_bin: int
    get: str  # where to get it, with its licence, for the one-line "missing" message


@dataclass(frozen=True)
class Protocol:
    """The settings of one version of a published evaluation protocol."""

    name: str
    version: int
    #: One line: the paper and the repository the settings come from.
    source: str
    #: Data-set spec as ``--dataset`` takes it (name and parameters).
    dataset: str
    split: str
    #: Images the protocol evaluates (the data set's length under this spec).
    images: int
    #: Image side in pixels (square images).
    size: int
    #: How images of other sizes or shapes are brought to ``size`` (in words).
    crop: str
    #: Mask specs as ``--masks`` takes them; ``folder`` masks take their path from the user.
    masks: tuple[str, ...]
    seed: int
    #: Metrics of the harness this protocol reports.
    metrics: tuple[str, ...] = PIXEL_METRICS
    #: Metrics the reference reports that the harness measures only once they are registered
    #: (e.g. ``fid``, ``lpips``); see :meth:`requested_metrics`.
    reference_metrics: tuple[str, ...] = ()
    #: Hole-ratio bins the reference reports per bin.
    bins: tuple[tuple[float, float], ...] = ()
    #: The mask files a ``folder`` mask must hold (None: generated masks only).
    mask_files: MaskFiles | None = None
    #: One line each: where each setting comes from, and where this protocol departs from it.
    notes: tuple[str, ...] = field(default_factory=tuple)
    title: str = ""

    @property
    def ref(self) -> str:
        """``NAME@VERSION``."""
        return f"{self.name}@{self.version}"

    def settings(self) -> dict[str, Any]:
        """Everything that decides a result (the prose fields left out)."""
        data = asdict(self)
        for prose in ("source", "notes", "title"):
            data.pop(prose)
        if self.mask_files is not None:
            data["mask_files"].pop("get")
        return data

    def fingerprint(self) -> str:
        """SHA-256 (first 16 hex digits) of :meth:`settings` as canonical JSON."""
        text = json.dumps(self.settings(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def requested_metrics(self, registered: set[str] | None = None) -> dict[str, bool]:
        """Each reference metric and whether the harness can measure it (a registered or a
        perceptual metric, ``run --metrics``)."""
        if registered is None:
            from benchmark.metrics import METRICS
            from benchmark.perceptual import PERCEPTUAL_METRICS

            registered = set(METRICS.names()) | set(PERCEPTUAL_METRICS)
        return {name: name in registered for name in self.reference_metrics}


class Versions:
    """A registry entry: every version of one protocol; calling it gives the newest."""

    def __init__(self, *versions: Protocol) -> None:
        numbers = [p.version for p in versions]
        if not versions or len(set(numbers)) != len(numbers) or len({p.name for p in versions}) > 1:
            raise ValueError("a protocol needs one or more versions of one name, each number once")
        self.versions: dict[int, Protocol] = {p.version: p for p in sorted(versions, key=_number)}
        newest = self.versions[max(self.versions)]
        self.__doc__ = f"v{newest.version}: {newest.title} ({newest.source})"
        self.__qualname__ = f"Versions[{newest.name}]"  # one registry origin per protocol

    def __call__(self) -> Protocol:
        return self.versions[max(self.versions)]


def _number(protocol: Protocol) -> int:
    return protocol.version


PROTOCOLS: Registry[Protocol] = Registry(
    "protocol", group="benchmark.protocols", builtin_modules=["benchmark.protocols.builtin"]
)


def register(*versions: Protocol) -> Versions:
    """Register every version of one protocol under its name."""
    entry = Versions(*versions)
    PROTOCOLS.add(versions[0].name, entry)
    return entry


def resolve(ref: str) -> Protocol:
    """The protocol ``NAME`` (newest version) or ``NAME@VERSION``; a one-line UsageError else."""
    name, sep, version_text = str(ref).strip().partition("@")
    entry: Callable[[], Protocol] = PROTOCOLS.get(name)  # unknown: "did you mean", exit 2
    versions: Mapping[int, Protocol] = getattr(entry, "versions", None) or {}
    if not sep:
        protocol = entry()
        if not isinstance(protocol, Protocol):
            raise UsageError(f"protocol {name!r} does not build a Protocol (got {protocol!r})")
        return protocol
    try:
        version = int(version_text)
    except ValueError:
        version = None
    if version is None or version not in versions:
        known = ", ".join(f"{name}@{v}" for v in versions) or f"{name} (unversioned)"
        raise UsageError(f"protocol {name!r} has no version {version_text!r}; versions: {known}")
    return versions[version]
