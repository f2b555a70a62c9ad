"""Leaderboards: per-mask tables of methods ranked by mean PSNR, built from per-image records.

``leaderboard.json`` is the source of truth; the Markdown and console tables are rendered from it.
Besides each method's means (95 % bootstrap CI, n), every table holds (format 2):

- ``comparisons``: every pair of methods compared image by image (PSNR and SSIM differences
  with a bootstrap CI and a Wilcoxon p-value; see :mod:`benchmark.significance`);
- per entry, ``vs_leader`` (the method minus the leader, per image) and ``tied_with_leader``:
  true when the paired Wilcoxon test on per-image PSNR against the leader gives ``p >= 0.05``,
  i.e. the method is *not significantly different from the leader*; the tables mark it ``≈``;
- ``buckets``: per mask-ratio bucket (0–10 %, 10–20 %, ...) each method's count and means.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from tabulate import tabulate

from benchmark.records import STATUS_OK
from benchmark.significance import (
    BUCKET_METRICS,
    PAIRED_METRICS,
    SIGNIFICANCE_LEVEL,
    pairwise_comparisons,
    ratio_buckets,
)
from benchmark.stats import bootstrap_indices, summarize

#: Version of the leaderboard.json layout (2: comparisons, vs_leader, buckets, fingerprint).
LEADERBOARD_FORMAT = 2
#: Metrics shown with a confidence interval in the tables, in column order.
TABLE_METRICS = ("psnr", "ssim", "hole_psnr", "hole_l1")
#: Marker of methods not significantly different from the leader, and its footnote.
TIED_MARK = "≈"
TIED_NOTE = (
    f"{TIED_MARK} not significantly different from the leader "
    f"(paired Wilcoxon signed-rank test on per-image PSNR, p ≥ {SIGNIFICANCE_LEVEL:g})"
)


def build_leaderboard(
    records: Iterable[dict[str, Any]],
    methods: Sequence[str],
    masks: Sequence[str],
    config: dict[str, Any],
) -> dict[str, Any]:
    """Aggregate records into ``{"tables": [...]}``: one table per mask, methods by mean PSNR.

    Each entry holds, per metric, the mean over the method's successful images with a 95 %
    bootstrap CI, plus ``n`` (images measured), ``failed``, ``images_per_s``, ``fingerprint``,
    ``vs_leader`` and ``tied_with_leader``; each table also holds ``comparisons`` (every pair
    of methods) and ``buckets`` (mask-ratio buckets), see the module docstring.
    """
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault((record["mask"], record["method"]), []).append(record)
    from benchmark.metrics import all_metrics  # imports torch: only when building

    metric_names = [m.name for m in all_metrics()]
    tables = []
    for mask in masks:
        entries = []
        series = {}
        for method in methods:
            rows = grouped.get((mask, method), [])
            ok = sorted((r for r in rows if r["status"] == STATUS_OK), key=lambda r: r["index"])
            failed = [r for r in rows if r["status"] != STATUS_OK]
            indices = bootstrap_indices(len(ok)) if len(ok) >= 2 else None
            summaries = {
                name: summarize(np.array([r[name] for r in ok], dtype=float), indices).__dict__
                for name in metric_names
            }
            seconds = sum(r.get("seconds", 0.0) for r in rows)
            fingerprints = sorted({str(r.get("fingerprint", "")) for r in rows})
            series[method] = _series(ok, metric_names)
            entries.append(
                {
                    "method": method,
                    "fingerprint": fingerprints[0] if len(fingerprints) == 1 else None,
                    "n": len(ok),
                    "failed": len(failed),
                    "failure_reasons": sorted({r["status"] for r in failed})[:5],
                    "images_per_s": len(rows) / seconds if seconds > 0 else None,
                    "metrics": summaries,
                }
            )
        entries.sort(key=_rank_key)
        for rank, entry in enumerate(entries, start=1):
            entry["rank"] = rank
        measured = [e["method"] for e in entries if e["n"]]
        comparisons = pairwise_comparisons(series, measured)
        _mark_leader_ties(entries, comparisons)
        tables.append(
            {
                "mask": mask,
                "entries": entries,
                "comparisons": comparisons,
                "buckets": ratio_buckets(series, [m for m in BUCKET_METRICS if m in metric_names]),
            }
        )
    return {"format": LEADERBOARD_FORMAT, "config": config, "tables": tables}


def _series(ok: list[dict[str, Any]], metric_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-image values of one method (records sorted by index) for the paired statistics."""
    wanted = {*PAIRED_METRICS, *BUCKET_METRICS, "mask_ratio"} & set(metric_names)
    series = {"index": np.array([int(r["index"]) for r in ok], dtype=np.int64)}
    for name in wanted:
        series[name] = np.array([r[name] for r in ok], dtype=float)
    return series


def _mark_leader_ties(entries: list[dict[str, Any]], comparisons: list[dict[str, Any]]) -> None:
    """Set each entry's ``vs_leader`` (method minus leader) and ``tied_with_leader``."""
    leader = entries[0]["method"] if entries and entries[0]["n"] else None
    against = {c["b"]: c for c in comparisons if c["a"] == leader}
    for entry in entries:
        comparison = against.get(entry["method"])
        entry["vs_leader"] = None
        entry["tied_with_leader"] = None
        if comparison is None:
            continue
        entry["vs_leader"] = {"n": comparison["n"]}
        for metric in PAIRED_METRICS:
            d = comparison.get(metric)
            if d is not None:  # leader - method, turned into method - leader
                entry["vs_leader"][metric] = {
                    "mean": -d["mean"],
                    "ci_low": -d["ci_high"],
                    "ci_high": -d["ci_low"],
                    "p_value": d["p_value"],
                    "n": d["n"],
                }
        p = comparison["psnr"]["p_value"] if "psnr" in comparison else None
        if p is not None and np.isfinite(p):
            entry["tied_with_leader"] = bool(p >= SIGNIFICANCE_LEVEL)


def _rank_key(entry: dict[str, Any]) -> tuple[int, float]:
    mean = entry["metrics"]["psnr"]["mean"]
    return (0, -mean) if entry["n"] and np.isfinite(mean) else (1, 0.0)


def _cell(summary: dict[str, Any], decimals: int) -> str:
    if not summary or summary.get("n", 0) == 0 or summary.get("mean") is None:
        return "—"
    half = (summary["ci_high"] - summary["ci_low"]) / 2
    return f"{summary['mean']:.{decimals}f} ± {half:.{decimals}f}"


def table_rows(table: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of one mask's table (mean ± half-width of the 95 % CI)."""
    from benchmark.metrics import all_metrics

    metrics = {m.name: m for m in all_metrics()}
    shown = [metrics[name] for name in TABLE_METRICS if name in metrics]
    arrow = {True: " ↑", False: " ↓", None: ""}
    header = ["#", "method", *(m.label + arrow[m.higher_is_better] for m in shown)]
    header += ["mask ratio", "n", "failed", "img/s"]
    rows = []
    for entry in table["entries"]:
        ratio = entry["metrics"].get("mask_ratio", {}).get("mean")
        speed = entry["images_per_s"]
        tied = f" {TIED_MARK}" if entry.get("tied_with_leader") else ""
        rows.append(
            [
                entry["rank"],
                entry["method"] + tied,
                *(_cell(entry["metrics"].get(m.name, {}), m.decimals) for m in shown),
                f"{ratio:.3f}" if ratio is not None and entry["n"] else "—",
                entry["n"],
                entry["failed"],
                f"{speed:,.0f}" if speed else "—",
            ]
        )
    return header, rows


def render_markdown(leaderboard: dict[str, Any]) -> str:
    """The leaderboard as Markdown: one section and table per mask type."""
    config = leaderboard.get("config", {})
    lines = ["# Leaderboard", ""]
    if config:
        lines += [
            f"Data set `{config.get('dataset')}` ({config.get('split')} split), "
            f"seed {config.get('seed')}; mean over images ± half-width of the 95 % bootstrap CI.",
            "",
        ]
    for table in leaderboard["tables"]:
        header, rows = table_rows(table)
        lines += [f"## Mask `{table['mask']}`", ""]
        lines += [tabulate(rows, headers=header, tablefmt="github", disable_numparse=True), ""]
        if _has_ties(table):
            lines += [TIED_NOTE, ""]
        bucket_header, buckets = bucket_rows(table)
        if buckets:
            lines += [f"Mean PSNR (dB) by mask ratio, mask `{table['mask']}`:", ""]
            lines += [
                tabulate(buckets, headers=bucket_header, tablefmt="github", disable_numparse=True),
                "",
            ]
    return "\n".join(lines)


def _has_ties(table: dict[str, Any]) -> bool:
    return any(e.get("tied_with_leader") for e in table["entries"])


def bucket_rows(
    table: dict[str, Any], metric: str = "psnr", decimals: int = 2
) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of a table's mask-ratio buckets: ``metric`` mean per method.

    The ``n`` column is the bucket's image count (the largest over methods); a method that
    measured fewer images there (failures) shows its own count in brackets.
    """
    methods = [e["method"] for e in table["entries"]]
    header = ["mask ratio", "n", *methods]
    rows = []
    for bucket in table.get("buckets") or []:
        per = bucket["methods"]
        n = max((per.get(m, {}).get("n", 0) for m in methods), default=0)
        cells = []
        for m in methods:
            value, count = per.get(m, {}).get(metric), per.get(m, {}).get("n", 0)
            cell = f"{value:.{decimals}f}" if value is not None and count else "—"
            cells.append(cell + (f" ({count})" if count != n and count else ""))
        rows.append([bucket["label"], n, *cells])
    return header, rows


def render_console(leaderboard: dict[str, Any]) -> str:
    """The leaderboard as plain-text tables for the terminal."""
    parts = []
    for table in leaderboard["tables"]:
        header, rows = table_rows(table)
        parts.append(f"mask: {table['mask']}")
        parts.append(tabulate(rows, headers=header, tablefmt="simple", disable_numparse=True))
        if _has_ties(table):
            parts.append(TIED_NOTE)
        parts.append("")
    return "\n".join(parts)
