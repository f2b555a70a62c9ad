"""Leaderboards: per-mask tables of methods ranked by mean PSNR, built from per-image records.

``leaderboard.json`` is the source of truth; the Markdown and console tables are rendered from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from tabulate import tabulate

from benchmark.metrics import all_metrics
from benchmark.records import STATUS_OK
from benchmark.stats import bootstrap_indices, summarize

LEADERBOARD_FORMAT = 1
#: Metrics shown with a confidence interval in the tables, in column order.
TABLE_METRICS = ("psnr", "ssim", "hole_psnr", "hole_l1")


def build_leaderboard(
    records: Iterable[dict[str, Any]],
    methods: Sequence[str],
    masks: Sequence[str],
    config: dict[str, Any],
) -> dict[str, Any]:
    """Aggregate records into ``{"tables": [...]}``: one table per mask, methods by mean PSNR.

    Each entry holds, per metric, the mean over the method's successful images with a 95 %
    bootstrap CI, plus ``n`` (images measured), ``failed`` and ``images_per_s``.
    """
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault((record["mask"], record["method"]), []).append(record)
    metric_names = [m.name for m in all_metrics()]
    tables = []
    for mask in masks:
        entries = []
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
            entries.append(
                {
                    "method": method,
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
        tables.append({"mask": mask, "entries": entries})
    return {"format": LEADERBOARD_FORMAT, "config": config, "tables": tables}


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
    metrics = {m.name: m for m in all_metrics()}
    shown = [metrics[name] for name in TABLE_METRICS if name in metrics]
    arrow = {True: " ↑", False: " ↓", None: ""}
    header = ["#", "method", *(m.label + arrow[m.higher_is_better] for m in shown)]
    header += ["mask ratio", "n", "failed", "img/s"]
    rows = []
    for entry in table["entries"]:
        ratio = entry["metrics"].get("mask_ratio", {}).get("mean")
        speed = entry["images_per_s"]
        rows.append(
            [
                entry["rank"],
                entry["method"],
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
    return "\n".join(lines)


def render_console(leaderboard: dict[str, Any]) -> str:
    """The leaderboard as plain-text tables for the terminal."""
    parts = []
    for table in leaderboard["tables"]:
        header, rows = table_rows(table)
        parts.append(f"mask: {table['mask']}")
        parts.append(tabulate(rows, headers=header, tablefmt="simple", disable_numparse=True))
        parts.append("")
    return "\n".join(parts)
