"""What the regression gate calls a regression: the metrics it decides on, with their
directions and tolerances, and the command-line options that set them (``compare``, ``gate``).

**Which metrics.** The gate always decides on PSNR and SSIM. ``compare --metrics a,b`` (and the
``metrics`` key of a gate configuration, which is also the run's ``--metrics``) adds per-image
metrics: a pixel or plug-in metric of :data:`benchmark.metrics.METRICS` or a per-image
perceptual metric of :data:`benchmark.perceptual.PERCEPTUAL_METRICS`. Each metric's direction
comes from its definition (``Metric.higher_is_better``, or the perceptual metric's
``direction``); a descriptive metric (``mask_ratio``: no better direction) is refused in one
line. The set metrics FID, fid-clean and KID are gated per entry through a paired bootstrap
over images (:mod:`benchmark.commands.set_gate`); P-IDS and U-IDS are refused (an SVM fit per
resample).

**Tolerances.** The largest change for the worse that never fails: :data:`TOLERANCES`
(``--tolerance-db`` and ``--tolerance-ssim`` for PSNR and SSIM, ``--tolerance METRIC=VALUE``
for any gated metric); a set metric's is one unit of the last decimal the tables print it with
(:data:`SET_TOLERANCES`); a metric without a default (a plug-in) has 0 unless given.
"""

from __future__ import annotations

import argparse
import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmark.decision import ALPHA, BROKEN_AT, TOLERANCES
from benchmark.errors import UsageError

DEFAULT_TOLERANCE_DB = TOLERANCES["psnr"]
DEFAULT_TOLERANCE_SSIM = TOLERANCES["ssim"]
DEFAULT_BROKEN_DB = BROKEN_AT["psnr"]
DEFAULT_BROKEN_SSIM = BROKEN_AT["ssim"]
#: Default tolerances of the gateable set metrics: one unit of the last decimal the tables
#: print (FID 2 decimals, KID 4), the smallest change a reader of the tables can see.
SET_TOLERANCES = {"fid": 0.01, "fid-clean": 0.01, "kid": 0.0001}


@dataclass(frozen=True)
class GatedMetric:
    """One metric the gate decides on: how it is shown and which way is better."""

    name: str
    label: str  # column label in the gate's tables
    decimals: int  # of the means (the change gets one more)
    higher_is_better: bool
    tolerance: float = 0.0  # default: the largest change for the worse that never fails
    broken_at: float = math.inf  # an image is broken when it got worse by more (inf: not counted)
    unit: str = ""  # " dB" for PSNR: how tolerances are written under the tables
    per_set: bool = False  # a set metric (FID, KID): decided on a bootstrap over images

    def amount(self, value: float) -> str:
        """``0.05 dB PSNR``, ``0.001 LPIPS-alex``."""
        return f"{value:g}{self.unit} {self.label}"


PSNR = GatedMetric("psnr", "PSNR", 2, True, DEFAULT_TOLERANCE_DB, DEFAULT_BROKEN_DB, " dB")
SSIM = GatedMetric("ssim", "SSIM", 4, True, DEFAULT_TOLERANCE_SSIM, DEFAULT_BROKEN_SSIM)
#: The metrics every gate decides on.
DEFAULT_METRICS = (PSNR, SSIM)


def canonical(name: str) -> str:
    """``name`` stripped, with a perceptual metric's alias resolved (``lpips`` ->
    ``lpips-alex``)."""
    from benchmark.perceptual import canonical_name

    return canonical_name(name.strip())


def _perceptual(name: str, given: str) -> GatedMetric | None:
    """A per-image perceptual metric (or its alias) as a gated metric; None if not one."""
    from benchmark.perceptual import PERCEPTUAL_METRICS

    name = canonical(name)
    info = PERCEPTUAL_METRICS.get(name)
    if info is None:
        return None
    if info["kind"] != "image":
        return _set_metric(name, given)
    from benchmark.perceptual.selection import TABLE

    label, _, decimals = TABLE.get(name, (name, True, 4))
    return GatedMetric(
        name,
        label,
        decimals,
        info["direction"] == "higher",
        TOLERANCES.get(name, 0.0),
        BROKEN_AT.get(name, math.inf),
    )


def _set_metric(name: str, given: str) -> GatedMetric:
    """A gateable set metric (FID, fid-clean, KID); P-IDS and U-IDS are one UsageError."""
    from benchmark.perceptual.selection import SET_TABLE
    from benchmark.perceptual.set_bootstrap import GATEABLE

    if name not in GATEABLE:
        raise UsageError(
            f"--metrics {given}: among the set metrics the gate decides on "
            f"{', '.join(GATEABLE)} (a bootstrap over images); P-IDS and U-IDS would need an "
            "SVM fit per resample"
        )
    label, higher, decimals = SET_TABLE[name]
    return GatedMetric(name, label, decimals, higher, SET_TOLERANCES[name], per_set=True)


def gated_metric(given: str) -> GatedMetric:
    """The metric named ``given`` (built-in, plug-in or perceptual), as the gate decides on it;
    an unknown, descriptive or per-set metric is one :class:`UsageError`."""
    name = given.strip()
    for metric in DEFAULT_METRICS:
        if name == metric.name:
            return metric
    perceptual = _perceptual(name, given)
    if perceptual is not None:
        return perceptual
    from benchmark.metrics import METRICS, Metric

    if name not in METRICS:
        from benchmark.perceptual import PERCEPTUAL_METRICS

        known = sorted({*METRICS.names(), *PERCEPTUAL_METRICS})
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(
            f"unknown metric {given!r} in --metrics{hint} (python -m benchmark list metrics)"
        )
    try:
        metric = METRICS.build(name)
    except UsageError:
        raise
    except Exception as exc:  # a plug-in's factory: its failure is one line, never a traceback
        raise UsageError(f"metric {name!r} cannot be built: {type(exc).__name__}: {exc}") from None
    if not isinstance(metric, Metric):
        raise UsageError(f"metric {name!r} built a {type(metric).__name__}, not a Metric")
    if metric.higher_is_better is None:
        raise UsageError(
            f"--metrics {given}: {metric.name} is descriptive (it declares no better direction) "
            "and is never gated"
        )
    label = metric.label.removesuffix(" (dB)")
    unit = " dB" if metric.label.endswith(" (dB)") else ""
    return GatedMetric(
        metric.name,
        label,
        int(metric.decimals),
        bool(metric.higher_is_better),
        TOLERANCES.get(metric.name, 0.0),
        BROKEN_AT.get(metric.name, math.inf),
        unit,
    )


def gated_metrics(names: Sequence[str] = ()) -> tuple[GatedMetric, ...]:
    """PSNR, SSIM and every metric of ``names`` (once each, in order)."""
    chosen = {m.name: m for m in DEFAULT_METRICS}
    for given in names:
        if given.strip():
            metric = gated_metric(given)
            chosen.setdefault(metric.name, metric)
    return tuple(chosen.values())


def parse_tolerances(texts: Sequence[str]) -> dict[str, float]:
    """``--tolerance METRIC=VALUE`` options -> ``{metric: value}`` (aliases resolved; one-line
    errors)."""
    tolerances: dict[str, float] = {}
    for text in texts:
        name, sep, value = text.partition("=")
        name = canonical(name) if name.strip() else ""
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not name or not number >= 0 or math.isinf(number):
            raise UsageError(f"--tolerance takes METRIC=VALUE with a number >= 0, got {text!r}")
        if name in tolerances:
            raise UsageError(f"--tolerance {text!r}: {name} is given twice")
        tolerances[name] = number
    return tolerances


@dataclass(frozen=True)
class Rules:
    """What the gate calls a regression (see the module docstring)."""

    tolerance_db: float = DEFAULT_TOLERANCE_DB
    tolerance_ssim: float = DEFAULT_TOLERANCE_SSIM
    broken_db: float = DEFAULT_BROKEN_DB
    broken_ssim: float = DEFAULT_BROKEN_SSIM
    max_broken: int | None = None
    fail_inconclusive: bool = False
    alpha: float = ALPHA
    metrics: tuple[GatedMetric, ...] = DEFAULT_METRICS
    tolerances: Mapping[str, float] = field(default_factory=dict)  # --tolerance METRIC=VALUE

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.metrics]

    @property
    def image_names(self) -> list[str]:
        """The gated per-image metrics (PSNR, SSIM first)."""
        return [m.name for m in self.metrics if not m.per_set]

    @property
    def set_names(self) -> list[str]:
        """The gated set metrics (FID, fid-clean, KID)."""
        return [m.name for m in self.metrics if m.per_set]

    def metric(self, name: str) -> GatedMetric:
        return next(m for m in self.metrics if m.name == name)

    @property
    def extra(self) -> bool:
        """Metrics beyond PSNR and SSIM are gated."""
        return self.metrics != DEFAULT_METRICS

    def tolerance(self, metric: str) -> float:
        if metric in self.tolerances:
            return self.tolerances[metric]
        if metric == "psnr":
            return self.tolerance_db
        if metric == "ssim":
            return self.tolerance_ssim
        return self.metric(metric).tolerance

    def broken_at(self, metric: str) -> float:
        if metric == "psnr":
            return self.broken_db
        if metric == "ssim":
            return self.broken_ssim
        return self.metric(metric).broken_at

    def check(self) -> None:
        """Refuse values that make no rule (a UsageError, exit 2)."""
        for name in ("tolerance_db", "tolerance_ssim", "broken_db", "broken_ssim"):
            value = getattr(self, name)
            if not value >= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be a number >= 0, got {value}")
        if self.max_broken is not None and self.max_broken < 0:
            raise UsageError(f"--max-broken must be an integer >= 0, got {self.max_broken}")
        unknown = [name for name in self.tolerances if name not in self.names]
        if unknown:
            raise UsageError(
                f"--tolerance {unknown[0]}=...: not a metric this gate decides on "
                f"({', '.join(self.names)}); add it with --metrics"
            )


def add_rule_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the gate's rule, shared by ``compare`` and ``gate``."""
    parser.add_argument(
        "--tolerance-db",
        type=float,
        default=None,
        help=f"largest PSNR drop (dB) that never fails (default {DEFAULT_TOLERANCE_DB})",
    )
    parser.add_argument(
        "--tolerance-ssim",
        type=float,
        default=None,
        help=f"largest SSIM drop that never fails (default {DEFAULT_TOLERANCE_SSIM})",
    )
    parser.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="largest change for the worse of a gated metric that never fails (repeatable; "
        "defaults: LPIPS and MS-SSIM 0.001, FID 0.01, KID 0.0001, a plug-in metric 0)",
    )
    parser.add_argument(
        "--broken-db",
        type=float,
        default=DEFAULT_BROKEN_DB,
        help=f"an image is broken when its PSNR drops by more (default {DEFAULT_BROKEN_DB:g} dB)",
    )
    parser.add_argument(
        "--broken-ssim",
        type=float,
        default=DEFAULT_BROKEN_SSIM,
        help=f"an image is broken when its SSIM drops by more (default {DEFAULT_BROKEN_SSIM:g})",
    )
    parser.add_argument(
        "--max-broken",
        type=int,
        default=None,
        metavar="N",
        help="fail when an entry has more than N broken images (default: counted, not a rule)",
    )
    parser.add_argument(
        "--fail-inconclusive",
        action="store_true",
        help="exit 2 when a comparison is inconclusive (too few images to tell)",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="baseline entries missing from NEW do not fail the gate",
    )
    parser.add_argument(
        "--allow-data-change",
        action="store_true",
        help="compare even when the data differ (data set, masks, size, seed, ...); says so",
    )


def rule_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`benchmark.commands.compare.gate` from the options of
    :func:`add_rule_arguments`. ``--tolerance psnr=X`` is ``--tolerance-db X`` (and ``ssim``
    likewise); giving both is one line, exit 2."""
    tolerances = parse_tolerances(getattr(args, "tolerance", None) or [])
    named = {}
    for metric, flag in (("psnr", "tolerance_db"), ("ssim", "tolerance_ssim")):
        value = getattr(args, flag)
        if metric in tolerances and value is not None:
            raise UsageError(
                f"--tolerance {metric}=... and --{flag.replace('_', '-')} set the same "
                "tolerance: give one"
            )
        named[flag] = tolerances.pop(metric, value)
    defaults = {"tolerance_db": DEFAULT_TOLERANCE_DB, "tolerance_ssim": DEFAULT_TOLERANCE_SSIM}
    return {
        **{flag: defaults[flag] if value is None else value for flag, value in named.items()},
        "tolerances": tolerances,
        "allow_missing": args.allow_missing,
        "broken_db": args.broken_db,
        "broken_ssim": args.broken_ssim,
        "max_broken": args.max_broken,
        "fail_inconclusive": args.fail_inconclusive,
        "allow_data_change": args.allow_data_change,
    }
