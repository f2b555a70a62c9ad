"""``python -m benchmark list``: registered methods, masks, data sets and metrics, with their
parameters, origin and a one-line description."""

from __future__ import annotations

import argparse
import importlib
import inspect
import re

from benchmark.registry import Registry

EXAMPLES = """\
examples:
  python -m benchmark list
  python -m benchmark list methods
  python -m benchmark list masks

Each entry shows its parameters with their defaults (set them as name:key=value) and where it
comes from: [built-in], or the plug-in package and version that declares it.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``list``."""
    parser.add_argument(
        "kind",
        nargs="?",
        choices=["methods", "masks", "datasets", "metrics", "protocols"],
        help="list only this kind (default: all of them)",
    )


#: Kind -> "module:attribute" of its registry (imported only when that kind is listed).
REGISTRIES = {
    "methods": "benchmark.method:METHODS",
    "masks": "benchmark.masking:MASKS",
    "datasets": "benchmark.datasets:DATASETS",
    "metrics": "benchmark.metrics:METRICS",
    "protocols": "benchmark.protocols:PROTOCOLS",
}


def _registry(kind: str) -> Registry:
    module, _, attribute = REGISTRIES[kind].partition(":")
    return getattr(importlib.import_module(module), attribute)


def plain(text: str) -> str:
    """Docstring markup as plain text: roles and backticks dropped, whitespace on one line.

    >>> plain("Uses :class:`~benchmark.method.Method` and ``min_lines``..``max_lines``.")
    'Uses Method and min_lines..max_lines.'
    """
    text = re.sub(r":[\w:.-]+:`~[\w.]*?\.?(\w+)`", r"\1", text)  # :class:`~a.b.C` -> C
    text = re.sub(r":[\w:.-]+:`([^`]*)`", r"\1", text)  # :func:`a.b` -> a.b
    return " ".join(text.replace("`", "").split())


def summary(obj: object) -> str:
    """The first paragraph of ``obj``'s docstring as one plain line."""
    doc = inspect.getdoc(obj) or ""
    return plain(doc.strip().split("\n\n")[0])


_DIRECTION = {True: "↑", False: "↓", None: " "}


def _metric_line(name: str, registry: Registry) -> str:
    from benchmark import metrics

    metric = registry.get(name)()
    compute = metric.compute
    if getattr(compute, "__name__", "") == "<lambda>":  # the definition is the named function
        compute = getattr(metrics, name, compute)
    arrow = _DIRECTION.get(metric.higher_is_better, " ")
    line = f"  {name} {arrow} [{registry.origin(name)}]: {metric.label}"
    definition = summary(compute)
    return f"{line}. {definition}" if definition else line


PERCEPTUAL_HEADER = (
    "perceptual metrics (--metrics NAME; per-image: a value per image, per-set: one per "
    "table; variant; reference):"
)


def perceptual_lines() -> list[str]:
    """One line per perceptual metric of :data:`benchmark.perceptual.PERCEPTUAL_METRICS`: name,
    aliases, direction, kind, variant and the reference package it equals (no torch import)."""
    from benchmark.perceptual import PERCEPTUAL_METRICS

    lines = []
    for name, info in PERCEPTUAL_METRICS.items():
        arrow = "↑" if info["direction"] == "higher" else "↓"
        kind = "per-image" if info["kind"] == "image" else "per-set"
        aliases = tuple(info.get("aliases") or ())
        alias = f" (alias {', '.join(aliases)})" if aliases else ""
        lines.append(f"  {name}{alias} {arrow} {kind}: {info['variant']}")
        lines.append(f"      reference: {info['reference']}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Print registered names with parameters, origin and a one-line description."""
    kinds = [args.kind] if args.kind else list(REGISTRIES)
    hidden = {"split", "size", "data_dir"}  # given by run's own options, not name:key=value
    for kind in kinds:
        registry = _registry(kind)
        if kind == "metrics":
            print("metrics (↑ higher is better, ↓ lower is better, blank: descriptive):")
            for name in registry.names():
                print(_metric_line(name, registry))
            print(PERCEPTUAL_HEADER)
            for line in perceptual_lines():
                print(line)
            continue
        print(f"{kind}:")
        for name in registry.names():
            described = registry.describe(name)  # from the source for lazily declared entries
            params = ", ".join(
                f"{k}={v!r}" for k, v in described.parameters.items() if k not in hidden
            )
            line = f"  {name}"
            if params:
                line += f" ({params})"
            line += f" [{registry.origin(name)}]"
            description = plain(described.summary)
            if description:
                line += f": {description}"
            print(line)
            slow_note = plain(described.slow_note)
            if slow_note:
                print(f"      slow: {slow_note}")
    return 0
