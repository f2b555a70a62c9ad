"""Rendering leaderboards: the console and Markdown tables, their notes and verdict lines.

Everything here reads a ``leaderboard.json`` dict (:mod:`benchmark.leaderboard` builds it) and
writes text; nothing is computed again.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tabulate import tabulate

from benchmark.decision import (
    BETTER,
    INCONCLUSIVE,
    NO_CHANGE,
    TOLERANCES,
    ci_text,
    format_p,
    signed,
)
from benchmark.errors import BenchmarkError
from benchmark.leaderboard import TABLE_METRICS, failure_reason
from benchmark.marks import (
    INCOMPLETE_MARK,
    INCOMPLETE_NOTE,
    MIN_COMMON_FRACTION,
    ORACLE_MARK,
    ORACLE_NOTE,
    SPEED_NOTE,
    STOCHASTIC_MARK,
    STOCHASTIC_NOTE,
    TIED_MARK,
    TIED_NOTE,
    UNRANKED_NOTE,
)


def _cell(summary: dict[str, Any], decimals: int) -> str:
    if not summary or summary.get("n", 0) == 0 or summary.get("mean") is None:
        return "—"
    if summary["n"] < 2 or summary.get("ci_low") is None or summary.get("ci_high") is None:
        return f"{summary['mean']:.{decimals}f}"  # one image: no interval to show
    half = (summary["ci_high"] - summary["ci_low"]) / 2
    return f"{summary['mean']:.{decimals}f} ± {half:.{decimals}f}"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def first_failure(entry: dict[str, Any], width: int = 48) -> str:
    """``"reason ×count"`` of an entry's most frequent failure (``""`` when none)."""
    failures = entry.get("failures")
    if failures is None:  # format 2: reasons without counts
        reasons = entry.get("failure_reasons") or []
        return _short(failure_reason(reasons[0]), width) if reasons else ""
    if not failures:
        return ""
    top = failures[0]
    more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
    return f"{_short(top['reason'], width)} ×{top['count']}{more}"


def _is_ranked(entry: dict[str, Any]) -> bool:
    return entry.get("ranked", bool(entry.get("n")))  # format 2: every measured entry ranked


def _is_incomplete(entry: dict[str, Any]) -> bool:
    if "complete" in entry:
        return not entry["complete"]
    return bool(entry.get("failed"))


#: Per-image metrics that are not extra columns: the built-in ones.
_NOT_EXTRA = frozenset({*TABLE_METRICS, "mask_ratio"})


def _column(name: str) -> SimpleNamespace:
    """A table column: the metric's name, label, direction and decimals."""
    from benchmark.perceptual.selection import describe_metric

    label, higher, decimals = describe_metric(name)
    return SimpleNamespace(name=name, label=label, higher_is_better=higher, decimals=decimals)


def _set_cell(item: dict[str, Any] | None, decimals: int) -> str:
    """A set metric's cell: the value (KID: ± its standard deviation over subsets) and n."""
    if not item:
        return "—"
    if item.get("value") is None:
        return f"— ({item.get('note') or 'not computed'})"
    text = f"{item['value']:.{decimals}f}"
    if item.get("std") is not None:
        text += f" ± {item['std']:.{decimals}f}"
    return f"{text} (n={item.get('n', 0):,})"


def set_metric_lines(leaderboard: dict[str, Any]) -> list[str]:
    """What the set metric columns are (variant, reference) and the small-n FID warning."""
    config = leaderboard.get("config") or {}
    lines = list(config.get("set_metric_notes") or [])
    if isinstance(config.get("set_metrics"), str):
        lines.append(f"set metrics: {config['set_metrics']}")
    if lines:
        lines.insert(
            0,
            "set metrics (one value per table entry, over the images its other metrics are "
            "summarised on; KID: mean ± std over subsets):",
        )
    return lines


def table_rows(table: dict[str, Any], reason_width: int = 32) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of one mask's table (mean ± half-width of the 95 % CI).

    Ranked entries first (rank, ``≈`` tied with the leader, ``†`` incomplete), unranked ones
    below with ``–`` as rank; ``failed`` (and, when any entry failed, ``first failure``)
    sit beside the ranking.
    """
    shown = [_column(name) for name in TABLE_METRICS]
    extra = [  # --metrics: per-image columns (perceptual, plug-in) of the entries that have them
        name for e in table["entries"] for name in e["metrics"] if name not in _NOT_EXTRA
    ]
    shown += [_column(name) for name in dict.fromkeys(extra)]
    per_set = [name for e in table["entries"] for name in e.get("set_metrics") or {}]
    sets = [_column(name) for name in dict.fromkeys(per_set)]
    arrow = {True: " ↑", False: " ↓", None: ""}
    header = ["#", "method", *(m.label + arrow[m.higher_is_better] for m in shown + sets)]
    with_reasons = any(e.get("failed") for e in table["entries"])
    header += ["mask ratio", "n", "failed", *(["first failure"] if with_reasons else [])]
    header += ["method img/s"]
    rows = []
    for entry in table["entries"]:
        ratio = entry["metrics"].get("mask_ratio", {}).get("mean")
        speed = entry.get("images_per_s")
        marks = f" {TIED_MARK}" if entry.get("tied_with_leader") else ""
        marks += f" {INCOMPLETE_MARK}" if _is_incomplete(entry) else ""
        marks += f" {STOCHASTIC_MARK}" if entry.get("stochastic") else ""
        marks += f" {ORACLE_MARK}" if entry.get("oracle") else ""
        n = (entry["metrics"].get("psnr") or {}).get("n", entry.get("n", 0))
        rows.append(
            [
                entry.get("rank") if _is_ranked(entry) else "–",
                display_name(entry["method"]) + marks,
                *(_cell(entry["metrics"].get(m.name, {}), m.decimals) for m in shown),
                *(_set_cell(entry.get("set_metrics", {}).get(m.name), m.decimals) for m in sets),
                f"{ratio:.3f}" if ratio is not None and n else "—",
                n,
                entry.get("failed", 0),
                *([first_failure(entry, reason_width) or "—"] if with_reasons else []),
                f"{speed:,.0f}" if speed else "—",
            ]
        )
    return header, rows


def ranking_line(table: dict[str, Any]) -> str:
    """What the ranking of a table is computed on."""
    common, images = table.get("common"), table.get("images")
    if common is None:  # format 2
        return "ranked on each method's own images (leaderboard format 2)"
    if not common["methods"]:
        return f"no ranking: no method completed at least {MIN_COMMON_FRACTION:.0%} of the images"
    return f"ranked on the {common['n']} of {images} images that every ranked method completed"


def display_name(method: str) -> str:
    """How a method entry is shown in tables: its ``name=`` parameter when it has one.

    >>> display_name("predictions:name=lama,path=out/lama")
    'lama'
    >>> display_name("telea:radius=5")
    'telea:radius=5'
    """
    from benchmark.registry import parse_spec

    try:
        label = parse_spec(method).kwargs.get("name")
    except BenchmarkError:  # not a spec (a hand-made leaderboard): show it as it is
        return method
    return str(label) if isinstance(label, str) and label else method


def verdict_line(table: dict[str, Any]) -> str:
    """``verdict: A leads B: Δ PSNR +0.42 dB (95 % CI ..., p ..., n images)``; when the CI
    includes 0, ``≈ tie`` (no difference beyond the tolerance) or ``≈ inconclusive`` (with the
    images that would decide it)."""
    verdict = table.get("verdict")
    ranked = (table.get("common") or {}).get("methods") or []
    if verdict is None:
        if len(ranked) == 1:
            return f"verdict: {ranked[0]} is the only ranked method"
        return "verdict: fewer than two ranked methods, nothing to compare"
    d, decision = verdict["psnr"], verdict.get("decision")  # no decision: format 3
    numbers = (
        f"Δ PSNR {signed(d['mean'])} dB ({ci_text(d)}, p {format_p(d['p_value'], d)}, "
        f"{verdict['n']} images)"
    )
    a, b = display_name(verdict["leader"]), display_name(verdict["runner_up"])
    tolerance = f"±{d.get('tolerance', TOLERANCES['psnr']):g} dB"
    needed = d.get("images_needed")
    if not verdict["tied"]:
        first, second = (b, a) if decision not in (None, BETTER) else (a, b)
        return f"verdict: {first} leads {second}: {numbers}"
    if decision == INCONCLUSIVE:
        more = f"; about {needed:,} images would decide it" if needed else ""
        why = f" (the CI includes 0 and reaches beyond {tolerance}{more})"
        return f"verdict: {TIED_MARK} inconclusive between {a} and {b}{why}: {numbers}"
    why = f" (no difference beyond {tolerance})" if decision == NO_CHANGE else ""
    return f"verdict: {TIED_MARK} tie between {a} and {b}{why}: {numbers}"


def notes(table: dict[str, Any]) -> list[str]:
    """Footnotes a table needs (only the markers it uses), the verdict, and the speed note."""
    lines = []
    if _has_ties(table):
        lines.append(TIED_NOTE)
    if any(_is_incomplete(e) for e in table["entries"]):
        lines.append(INCOMPLETE_NOTE)
    if any(e.get("stochastic") for e in table["entries"]):
        lines.append(STOCHASTIC_NOTE)
    if any(e.get("oracle") for e in table["entries"]):
        lines.append(ORACLE_NOTE)
    unranked = [e for e in table["entries"] if not _is_ranked(e)]
    if unranked:
        lines.append(UNRANKED_NOTE)
        for entry in unranked:
            reason = entry.get("unranked_reason") or "completed no image"
            lines.append(f"  {entry['method']}: {reason}")
    if "common" in table:  # format 3 on: format 2 has no verdict
        lines.append(verdict_line(table))
    lines.append(SPEED_NOTE)
    return lines


def render_markdown(leaderboard: dict[str, Any]) -> str:
    """The leaderboard as Markdown: one section and table per mask type, with buckets."""
    config = leaderboard.get("config", {})
    lines = ["# Leaderboard", ""]
    if config:
        lines += [
            f"Data set `{config.get('dataset')}` ({config.get('split')} split), "
            f"seed {config.get('seed')}; mean over images ± half-width of the 95 % bootstrap CI.",
            "",
        ]
    if set_metric_lines(leaderboard):
        lines += [line + "  " for line in set_metric_lines(leaderboard)] + [""]
    for table in leaderboard["tables"]:
        header, rows = table_rows(table, reason_width=80)
        lines += [f"## Mask `{table['mask']}`", "", ranking_line(table) + ".", ""]
        lines += [tabulate(rows, headers=header, tablefmt="github", disable_numparse=True), ""]
        lines += [line.strip() + "  " for line in notes(table)] + [""]
        bucket_header, buckets = bucket_rows(table)
        if buckets:
            lines += [
                f"Mean PSNR (dB) by mask ratio (NVIDIA bins, each method on its own images; "
                f"a count in brackets differs from the bin's n), mask `{table['mask']}`:",
                "",
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


def render_console(leaderboard: dict[str, Any], buckets: bool = False) -> str:
    """The leaderboard as plain-text tables for the terminal (``buckets``: per-bin tables too)."""
    parts = []
    for table in leaderboard["tables"]:
        header, rows = table_rows(table)
        parts.append(f"mask: {table['mask']}")
        parts.append(ranking_line(table))
        parts.append(tabulate(rows, headers=header, tablefmt="simple", disable_numparse=True))
        parts += notes(table)
        if buckets:
            bucket_header, bucket_table = bucket_rows(table)
            if bucket_table:
                parts.append("")
                parts.append(
                    f"mask: {table['mask']}: mean PSNR (dB) by mask ratio (NVIDIA bins; "
                    "n = images in the bin, a count in brackets = that method's own count)"
                )
                parts.append(
                    tabulate(
                        bucket_table, headers=bucket_header, tablefmt="simple",
                        disable_numparse=True,
                    )
                )  # fmt: skip
        parts.append("")
    if set_metric_lines(leaderboard):
        parts += [*set_metric_lines(leaderboard), ""]
    return "\n".join(parts)


def failure_lines(leaderboard: dict[str, Any], records_path: Any = "records.jsonl") -> list[str]:
    """Warning lines for the console: total failed images, then per entry the count and the
    most frequent reason with its count (empty when nothing failed)."""
    lines = []
    for table in leaderboard["tables"]:
        for entry in table["entries"]:
            if entry.get("failed"):
                images = table.get("images") or entry["n"] + entry["failed"]
                lines.append(
                    f"  {entry['method']} / {table['mask']}: {entry['failed']} of {images} "
                    f"failed; first reason: {first_failure(entry, 120)}"
                )
    if not lines:
        return []
    total = sum(e.get("failed", 0) for t in leaderboard["tables"] for e in t["entries"])
    return [
        f"warning: {total} image evaluations failed (see 'failed' column and {records_path}):",
        *lines,
    ]


def run_summary(computed: int, reused: int, seconds: float, run_dir: Any) -> str:
    """The line under the tables: records computed and reused, wall-clock time and rate."""
    rate = f", {computed / seconds:,.0f} evaluations/s" if computed and seconds > 0 else ""
    return (
        f"{computed} records computed, {reused} reused in {seconds:.1f} s wall clock{rate} "
        f"(everything: data, masks, methods, metrics, files); results in {run_dir}"
    )
