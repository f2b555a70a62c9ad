"""The report's HTML: the values of each section, rendered by the Jinja2 templates in
``report_templates/`` with autoescaping on (every name and value from the run's files is text,
never markup)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from benchmark.commands.report_data import Run
from benchmark.commands.report_images import (
    LOSSLESS_MAX_SIDE,
    picture_uri,
    psnr_vs_ratio_plot,
)
from benchmark.commands.report_samples import RunData, sample_grid
from benchmark.marks import INCOMPLETE_MARK, TIED_MARK
from benchmark.tables import (
    bucket_rows,
    display_name,
    notes,
    ranking_line,
    set_metric_lines,
    table_rows,
)

DEFAULT_SAMPLES = 8
TEMPLATE = "report.html.j2"
#: Shown width of a grid image in CSS pixels: twice its side (a 32-pixel patch at 96, a 256-pixel
#: photo at 192), within these bounds; a click enlarges it to :func:`zoom_px`.
THUMB_PX = (96, 192)
#: Side of an enlarged image: at least this, or twice the image side (within the window).
ZOOM_PX = 512


def thumb_px(side: int) -> int:
    """Shown width of a grid image of ``side`` pixels.

    >>> thumb_px(32), thumb_px(64), thumb_px(256)
    (96, 128, 192)
    """
    return min(THUMB_PX[1], max(THUMB_PX[0], 2 * side))


def zoom_px(side: int) -> int:
    """Side of a clicked (enlarged) grid image: :data:`ZOOM_PX`, or twice a larger side."""
    return max(ZOOM_PX, 2 * side)


@cache
def environment() -> jinja2.Environment:
    """The templates' environment; autoescaping on for every template, whatever its name
    (``select_autoescape(["html"])`` alone would leave ``*.html.j2`` files unescaped)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("benchmark.commands", "report_templates"),
        autoescape=jinja2.select_autoescape(["html", "html.j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )


# -- tables ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    text: str
    left: bool = False
    colour: str | None = None  # a method's swatch before the text


@dataclass(frozen=True)
class Row:
    cells: list[Cell]
    tied: bool = False


@dataclass(frozen=True)
class TableView:
    header: list[Cell]
    rows: list[Row]


def table_view(
    header: Sequence[Any],
    rows: Sequence[Sequence[Any]],
    left: int = 2,
    colours: dict[str, str] | None = None,
    colour_header: bool = False,
    name_column: int = 1,
) -> TableView:
    """A table; the first ``left`` columns are left-aligned. With ``colours``, a cell of column
    ``name_column`` (or, with ``colour_header``, a header) naming a method gets its swatch;
    a row whose first columns carry the tie mark is highlighted."""
    # a method is shown under its name or its display name, marks after it
    by_label = {display_name(m): c for m, c in (colours or {}).items()} | (colours or {})

    def cell(text: Any, column: int, named: bool) -> Cell:
        label = str(text).removesuffix(f" {INCOMPLETE_MARK}").removesuffix(f" {TIED_MARK}")
        return Cell(str(text), column < left, by_label.get(label) if named else None)

    return TableView(
        [cell(h, i, colour_header) for i, h in enumerate(header)],
        [
            Row(
                [cell(c, i, i == name_column) for i, c in enumerate(row)],
                any(TIED_MARK in str(c) for c in row[:left]),
            )
            for row in rows
        ],
    )


def fmt(value: float | None, decimals: int, sign: bool = False) -> str:
    """A number with ``decimals`` decimals, ``—`` when missing or not finite."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}"


def fmt_p(value: float | None) -> str:
    """A p-value: ``<1e-4``, four decimals, or ``—``."""
    if value is None or not math.isfinite(value):
        return "—"
    return "<1e-4" if value < 1e-4 else f"{value:.4f}"


def readable(value: Any) -> str:
    """A configuration value as a person writes it: lists comma-separated, no JSON quoting."""
    if value is None:
        return "— (default)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(readable(v) for v in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}={readable(v)}" for k, v in value.items()) or "—"
    return str(value)


# -- sections -------------------------------------------------------------------------------------
def leaderboard_view(run: Run, table: dict[str, Any]) -> dict[str, Any]:
    """The table as ranked in leaderboard.json, with the difference to the leader and notes."""
    header, rows = table_rows(table, reason_width=60)
    full = []
    for entry, row in zip(table["entries"], rows):
        vs = (entry.get("vs_leader") or {}).get("psnr") or {}
        delta, p = "—", "—"
        if vs:
            delta = fmt(vs.get("mean"), 2, sign=True)
            delta += f" [{fmt(vs.get('ci_low'), 2, True)}, {fmt(vs.get('ci_high'), 2, True)}]"
            p = fmt_p(vs.get("p_value"))
        full.append([*row, delta, p])
    return {
        "basis": ranking_line(table),
        "table": table_view([*header, "Δ PSNR vs leader", "p"], full, colours=run.colours),
        "notes": [line.strip() for line in [*notes(table), *set_metric_lines(run.leaderboard)]],
    }


def buckets_view(run: Run, table: dict[str, Any]) -> list[tuple[str, TableView]]:
    """Mean PSNR and SSIM per mask-ratio bin: ``(title, table)`` for each metric with data."""
    table = {**table, "buckets": run.buckets(table)}
    views = []
    for metric, label, decimals in (("psnr", "PSNR (dB)", 2), ("ssim", "SSIM", 4)):
        header, rows = bucket_rows(table, metric, decimals)
        if rows:
            title = f"Mean {label} by mask ratio"
            views.append((title, table_view(header, rows, 1, run.colours, colour_header=True)))
    return views


def comparisons_view(table: dict[str, Any]) -> TableView | None:
    """The paired comparisons of the ranked methods (None when the table has none)."""
    rows = []
    for c in table.get("comparisons") or []:
        row = [c["a"], c["b"], "—" if c.get("n") is None else c["n"]]
        for metric, decimals in (("psnr", 3), ("ssim", 5)):
            d = c.get(metric) or {}
            low, high = fmt(d.get("ci_low"), decimals, True), fmt(d.get("ci_high"), decimals, True)
            row += [fmt(d.get("mean"), decimals, True), f"[{low}, {high}]", fmt_p(d.get("p_value"))]
        rows.append(row)
    header = ["a", "b", "n", "Δ PSNR (a−b)", "95 % CI", "p", "Δ SSIM (a−b)", "95 % CI", "p"]
    return table_view(header, rows) if rows else None


def timing_view(run: Run) -> TableView:
    """Method time per image (ms) per mask."""
    rows = []
    for method in run.methods:
        row = [method]
        for t in run.tables:
            entry = next((e for e in t["entries"] if e["method"] == method), None)
            speed = (entry or {}).get("images_per_s")
            row.append(f"{1000 / speed:.3f}" if speed else "—")
        rows.append(row)
    header = ["method", *(f"ms/img, {t['mask']}" for t in run.tables)]
    return table_view(header, rows, left=1, colours=run.colours, name_column=0)


def methods_view(run: Run) -> TableView:
    """Each method with its colour, parameters and fingerprint (code hash and weights hash)."""
    described = run.info.get("methods") or {}
    fingerprints: dict[str, set[str]] = {}
    for table in run.tables:
        for entry in table["entries"]:
            if entry.get("fingerprint"):
                fingerprints.setdefault(entry["method"], set()).add(str(entry["fingerprint"]))
    rows = [
        [
            method,
            readable((described.get(method) or {}).get("parameters") or {}),
            "; ".join(sorted(fingerprints.get(method, set()))) or "—",
        ]
        for method in run.methods
    ]
    header = ["method", "parameters", "fingerprint"]
    return table_view(header, rows, left=3, colours=run.colours, name_column=0)


def configuration_view(run: Run) -> list[tuple[str, dict[str, str]]]:
    """``(heading, {key: readable value})`` groups of run.json (empty without one)."""
    info = run.info
    if not info:
        return []
    size = "x".join(str(s) for s in info.get("image_size") or [])
    general = {
        "status": info.get("status"),
        "started": info.get("started"),
        "finished": info.get("finished"),
        "images": f"{info.get('images')} of {info.get('dataset_size')} ({size} px)",
        "device": info.get("device"),
        "git revision": info.get("git_revision"),
    }
    masks = {
        f"mask {name}": (d or {}).get("parameters") or {}
        for name, d in (info.get("masks") or {}).items()
    }
    groups = [("Run", general), ("Configuration", run.config), ("Mask parameters", masks)]
    if info.get("plugins"):
        groups.append(("Plug-ins", info["plugins"]))
    groups.append(("Versions", info.get("versions") or {}))
    return [(title, {k: readable(v) for k, v in items.items()}) for title, items in groups]


def grid_view(
    run: Run, table: dict[str, Any], samples: int, data: RunData | None = None
) -> dict[str, Any]:
    """One mask's sample grid: its images as data URIs (PNG or WebP), the columns' colours,
    each row's source name, and the shown and enlarged sizes of its images."""
    grid = sample_grid(run, table["mask"], run.table_methods(table), samples, data)

    def uri(index: int, column: str) -> str | None:
        pixels = grid.cells[index].get(column)
        return picture_uri(pixels) if pixels is not None else None

    rows = (
        [(i, grid.names.get(i), [(uri(i, c), c) for c in grid.columns]) for i in grid.indices]
        if grid.cells
        else []
    )
    side = max(
        (max(p.shape[:2]) for row in grid.cells.values() for p in row.values() if p is not None),
        default=LOSSLESS_MAX_SIDE,
    )
    return {
        "grid": grid,
        "columns": [(c, run.colours.get(c)) for c in grid.columns],
        "rows": rows,
        "thumb": thumb_px(side),
        "zoom": zoom_px(side),
        "pixelated": side <= LOSSLESS_MAX_SIDE,
    }


# -- the report -----------------------------------------------------------------------------------
def build_report(run_dir: str | Path, samples: int = DEFAULT_SAMPLES) -> str:
    """The HTML text of the report of ``run_dir``."""
    run = Run(run_dir)
    data = RunData.load(run) if samples > 0 and run.images > 0 else None
    tables = [
        {
            "mask": t["mask"],
            "board": leaderboard_view(run, t),
            "grid": grid_view(run, t, samples, data),
            "buckets": buckets_view(run, t),
            "comparisons": comparisons_view(t),
        }
        for t in run.tables
    ]
    template = environment().get_template(TEMPLATE)
    return template.render(
        title=f"inpaint-bench report — {run.name}",
        config=run.board_config,
        images=run.images,
        tables=tables,
        colours=run.colours,
        plot=psnr_vs_ratio_plot(run),
        has_records=bool(run.series),
        timing=timing_view(run),
        workers=run.config.get("workers"),
        device=run.info.get("device", "?"),
        methods_table=methods_view(run),
        configuration=configuration_view(run),
    )
