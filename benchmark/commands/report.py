"""``python -m benchmark report RUN_DIR``: one self-contained HTML report of a run.

The file embeds everything (PNG images as ``data:`` URIs, inline CSS, no scripts, no links to
other files or sites), so it opens offline and can be mailed or attached to a CI job. It shows
the leaderboard tables exactly as ranked in ``leaderboard.json`` (on the images every ranked
method completed; ``≈`` = not significantly different from the leader, ``†`` = incomplete,
``–`` = unranked, failures beside the ranking, the verdict line), sample grids, PSNR versus mask
ratio over the same NVIDIA bins as the bucket tables (matplotlib), the mask-ratio buckets, the
paired comparisons of the ranked methods, the method time per image, each method's parameters
and fingerprint (code and weights hash), and the run's configuration and versions
(``run.json``) as readable values. Every method keeps one colour throughout (plot, legend,
tables, grids), in the run's method order, and grid columns follow that order for every mask.

**Sample grids** show the same fixed images for every mask type: the first ``--samples``
indices (default 8) with original, masked input (holes magenta) and every method's result, so
the report stays small for any run size. They come from the run's PNGs when it was made with
``--save-images``; otherwise they are recomputed by running the methods on those few images
through the registries (same data set, masks, seed and composite as the runner). A recomputed
image whose PSNR differs from the run's record (the method changed since) is flagged.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import DataError
from benchmark.leaderboard import TIED_MARK, bucket_rows, notes, ranking_line, table_rows
from benchmark.records import read_json, write_atomic
from benchmark.significance import BUCKET_EDGES, BUCKET_METRICS, ratio_buckets

DEFAULT_SAMPLES = 8
#: Colours of the methods, in the run's method order (matplotlib's tab10, then tab20's light
#: halves); the same method has the same colour everywhere in the report.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip
#: Colour of hole pixels in the "masked input" column (RGB).
HOLE_RGB = (255, 0, 255)

EXAMPLES = """\
examples:
  python -m benchmark run --methods telea,ns,diffusion --masks lines,square --limit 500 --out r
  python -m benchmark report r                    # writes r/report.html
  python -m benchmark report r --out /tmp/report.html --samples 4
"""

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1200px;
       color: #1d1d1f; padding: 0 16px; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { margin-top: 32px; border-bottom: 1px solid #ddd; }
h3 { margin-bottom: 6px; } .muted { color: #666; } .note { color: #555; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 12px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f4f4f6; } td.l, th.l { text-align: left; }
tr.tied td { background: #f3f8ff; }
.grid td { padding: 2px; text-align: center; border: none; font-size: 12px; }
.grid th { background: none; border: none; font-size: 12px; text-align: center; }
.grid img { width: 80px; height: 80px; image-rendering: pixelated; display: block;
            margin: 0 auto; }
.warn { color: #b3261e; } nav a { margin-right: 12px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
          margin-right: 5px; vertical-align: baseline; }
.legend span { margin-right: 14px; white-space: nowrap; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; }
dt { font-weight: 600; } dd { margin: 0; font-family: ui-monospace, monospace; font-size: 13px; }
"""


# -- helpers ----------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value))


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def encode_png(rgb: np.ndarray) -> bytes:
    """``uint8 (H, W, 3)`` RGB or ``(H, W)`` gray -> PNG bytes."""
    import cv2

    pixels = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(pixels))
    if not ok:
        raise ValueError("cannot encode PNG")
    return buffer.tobytes()


def _read_png(path: Path, gray: bool = False) -> np.ndarray | None:
    import cv2

    pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if pixels is None:
        return None
    return pixels if gray else np.ascontiguousarray(pixels[..., ::-1])


def _img(png: bytes | None, title: str) -> str:
    if png is None:
        return f'<td class="muted">{_e(title)}</td>'
    return f'<td><img src="{png_data_uri(png)}" alt="{_e(title)}" title="{_e(title)}"></td>'


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    left: int = 2,
    colours: dict[str, str] | None = None,
    colour_header: bool = False,
    name_column: int = 1,
) -> str:
    """An HTML table; the first ``left`` columns are left-aligned. With ``colours``, a cell of
    column ``name_column`` (or, with ``colour_header``, a header) naming a method gets its
    swatch."""
    colours = colours or {}

    def label(text: Any) -> str:
        name = str(text).split(" ")[0]
        if name in colours:
            return _swatch(colours[name]) + _e(text)
        return _e(text)

    head = "".join(
        f'<th class="{"l" if i < left else ""}">{label(h) if colour_header else _e(h)}</th>'
        for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        tied = any(TIED_MARK in str(c) for c in row[:left])
        cells = "".join(
            f'<td class="{"l" if i < left else ""}">{label(c) if i == name_column else _e(c)}</td>'
            for i, c in enumerate(row)
        )
        body.append(f'<tr class="{"tied" if tied else ""}">{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _swatch(colour: str) -> str:
    return f'<span class="swatch" style="background:{_e(colour)}"></span>'


def _fmt(value: float | None, decimals: int, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}"


def _p(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return "<1e-4" if value < 1e-4 else f"{value:.4f}"


# -- run loading ------------------------------------------------------------------------------
class Run:
    """A run directory: leaderboard, run.json and (when present) per-image records."""

    def __init__(self, run_dir: str | Path) -> None:
        from benchmark.commands.compare import series_from_records

        self.dir = Path(run_dir)
        if not self.dir.is_dir():
            raise DataError(f"run directory {str(self.dir)!r} does not exist")
        board_path = self.dir / "leaderboard.json"
        if not board_path.exists():
            raise DataError(f"run directory {str(self.dir)!r} has no leaderboard.json")
        self.leaderboard = read_json(board_path, "leaderboard")
        if not isinstance(self.leaderboard, dict) or not isinstance(
            self.leaderboard.get("tables"), list
        ):
            raise DataError(f"leaderboard {str(board_path)!r} has no 'tables' list")
        run_json = self.dir / "run.json"
        self.info: dict[str, Any] = read_json(run_json, "run file") if run_json.exists() else {}
        records = self.dir / "records.jsonl"
        metrics = ("psnr", "ssim", "hole_psnr", "mask_ratio")
        self.series = (
            series_from_records(records, self.leaderboard, metrics) if records.exists() else {}
        )

    @property
    def config(self) -> dict[str, Any]:
        return self.info.get("config") or {}

    @property
    def images(self) -> int:
        count = (self.leaderboard.get("config") or {}).get("images") or self.info.get("images")
        return int(count or 0)

    @property
    def methods(self) -> list[str]:
        """Every method of the run in the run's own order (not a table's ranking)."""
        described = self.info.get("methods")
        order = list(described) if isinstance(described, dict) else []
        for table in self.leaderboard["tables"]:
            order += [e["method"] for e in table["entries"]]
        return list(dict.fromkeys(order))

    @property
    def colours(self) -> dict[str, str]:
        """One colour per method for the whole report."""
        return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(self.methods)}


# -- sample grids -----------------------------------------------------------------------------
def _masked_view(original: np.ndarray, hole: np.ndarray) -> np.ndarray:
    shown = original.copy()
    shown[hole.astype(bool)] = HOLE_RGB
    return shown


def saved_samples(run: Run, mask: str, methods: Sequence[str], indices: Sequence[int]):
    """Grid cells from the run's PNGs: ``{index: {column: png bytes or None}}``, or None."""
    from benchmark.run.artifacts import slugify

    root = run.dir / "images"
    if not (root / "_original").is_dir() or not (root / slugify(mask) / "_mask").is_dir():
        return None
    cells: dict[int, dict[str, bytes | None]] = {}
    for index in indices:
        name = f"{index:06d}.png"
        original = root / "_original" / name
        hole = _read_png(root / slugify(mask) / "_mask" / name, gray=True)
        if not original.exists() or hole is None:
            return None
        row: dict[str, bytes | None] = {"original": original.read_bytes()}
        row["masked input"] = encode_png(_masked_view(_read_png(original), hole > 127))
        for method in methods:
            path = root / slugify(mask) / slugify(method) / name
            row[method] = path.read_bytes() if path.exists() else None
        cells[index] = row
    return cells


def recomputed_samples(run: Run, mask: str, methods: Sequence[str], indices: Sequence[int]):
    """Grid cells recomputed through the registries, and warnings (method -> text)."""
    import torch

    from benchmark.checks import prediction_to_cpu
    from benchmark.datasets import build_dataset
    from benchmark.masking import build_mask
    from benchmark.method import METHODS, composite, to_uint8_hwc
    from benchmark.metrics import psnr

    config = run.config
    dataset = build_dataset(
        config.get("dataset", "skimage-patches"),
        config.get("split", "test"),
        config.get("size"),
        config.get("data_dir"),
    )
    originals = dataset.images(list(indices))
    height, width = originals.shape[-2:]
    ratio = config.get("mask_ratio")
    holes = build_mask(mask).batch(
        list(indices), height, width, int(config.get("seed", 0)), tuple(ratio) if ratio else None
    )
    masked = originals.masked_fill(holes, 0.0)
    originals_u8 = to_uint8_hwc(originals)
    holes_np = holes[:, 0].numpy()
    cells = {
        index: {
            "original": encode_png(originals_u8[j]),
            "masked input": encode_png(_masked_view(originals_u8[j], holes_np[j])),
        }
        for j, index in enumerate(indices)
    }
    notes: dict[str, str] = {}
    for method_name in methods:
        try:
            method = METHODS.build(method_name)
            method.to(torch.device("cpu"))
            indexed = getattr(method, "inpaint_indexed", None)  # e.g. predictions:DIR
            with torch.no_grad():
                if callable(indexed):
                    output = indexed(masked.clone(), holes.clone(), list(indices), mask)
                else:
                    output = method.inpaint(masked.clone(), holes.clone())
            if isinstance(output, tuple):  # (predictions, per-image failure reasons)
                output = output[0]
            prediction = prediction_to_cpu(output, masked)
            result = composite(originals, torch.nan_to_num(prediction).clamp_(0, 1), holes)
        except Exception as exc:  # a method that cannot run here: say so in its column
            notes[method_name] = f"not recomputed: {type(exc).__name__}: {exc}"
            for index in indices:
                cells[index][method_name] = None
            continue
        results_u8 = to_uint8_hwc(result)
        values = psnr(result, originals).tolist()
        recorded = run.series.get((mask, method_name))
        for j, index in enumerate(indices):
            cells[index][method_name] = encode_png(results_u8[j])
            if recorded is not None:
                where = np.flatnonzero(recorded["index"] == index)
                if len(where) and abs(recorded["psnr"][where[0]] - values[j]) > 1e-3:
                    notes[method_name] = (
                        "recomputed images differ from the measured ones (the method "
                        "changed since the run, or its output depends on the other images "
                        "of its batch)"
                    )
    return cells, notes


def sample_grid(run: Run, mask: str, methods: Sequence[str], samples: int) -> str:
    indices = list(range(min(samples, run.images)))
    if not indices:
        return '<p class="muted">No images.</p>'
    cells, notes, source = saved_samples(run, mask, methods, indices), {}, "saved PNGs of the run"
    if cells is None:
        try:
            cells, notes = recomputed_samples(run, mask, methods, indices)
            source = "recomputed (the run was made without --save-images)"
        except Exception as exc:  # data set or mask no longer available
            return (
                f'<p class="warn">Images were not saved (run without --save-images) and cannot '
                f"be recomputed here: {_e(type(exc).__name__)}: {_e(exc)}</p>"
            )
    columns = ["original", "masked input", *methods]
    colours = run.colours
    head = "<th></th>" + "".join(
        f"<th>{_swatch(colours[c]) if c in colours else ''}{_e(c)}</th>" for c in columns
    )
    rows = []
    for index in indices:
        row = cells[index]
        images = "".join(
            _img(row.get(c), f"#{index} {c}" if row.get(c) else "failed") for c in columns
        )
        rows.append(f"<tr><th>#{index}</th>{images}</tr>")
    warnings = "".join(f'<p class="warn">{_e(m)}: {_e(t)}</p>' for m, t in notes.items())
    return (
        f'<p class="note">Images {indices[0]}–{indices[-1]}; source: {_e(source)}; '
        f"holes shown magenta in the masked input.</p>{warnings}"
        f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


# -- plot -------------------------------------------------------------------------------------
def _methods_of(table: dict[str, Any]) -> set[str]:
    return {e["method"] for e in table["entries"]}


def _plot_buckets(run: Run, table: dict[str, Any]) -> list[dict[str, Any]]:
    """The table's buckets (NVIDIA bins), recomputed from the records for older leaderboards."""
    buckets = table.get("buckets") or []
    if buckets and len(buckets) == len(BUCKET_EDGES) - 1:
        return buckets
    series = {
        e["method"]: run.series[(table["mask"], e["method"])]
        for e in table["entries"]
        if (table["mask"], e["method"]) in run.series
    }
    return ratio_buckets(series, BUCKET_METRICS) if series else []


def plot_data(run: Run) -> list[tuple[str, list[str], dict[str, list[float]]]]:
    """Per mask: the bin labels (the bucket bins) and each method's mean PSNR per bin (NaN where
    it measured no image), methods in the run's order."""
    data = []
    for table in run.leaderboard["tables"]:
        buckets = _plot_buckets(run, table)
        if not buckets:
            continue
        lines = {}
        for method in (m for m in run.methods if m in _methods_of(table)):
            per = [b["methods"].get(method, {}) for b in buckets]
            y = [
                float(c["psnr"]) if c.get("n") and c.get("psnr") is not None else np.nan
                for c in per
            ]
            if np.isfinite(y).any():
                lines[method] = y
        data.append((table["mask"], [b["label"] for b in buckets], lines))
    return data


def psnr_vs_ratio_plot(run: Run) -> str | None:
    """PNG data URI of :func:`plot_data`: one panel per mask, each method in its report colour,
    one legend for the whole figure."""
    panels = plot_data(run)
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    colours = run.colours
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False, sharey=True
    )
    for ax, (mask, labels, lines) in zip(axes[0], panels):
        for method, y in lines.items():
            ax.plot(range(len(y)), y, marker="o", markersize=3, linewidth=1.5,
                    color=colours[method])  # fmt: skip
        ax.set_xticks(range(len(labels)), labels)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        ax.set_title(f"mask {mask}")
        ax.set_xlabel("mask ratio (share of pixels in the hole)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean PSNR (dB)")
    handles = [
        Line2D([], [], color=colours[m], marker="o", markersize=3, label=m) for m in run.methods
    ]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 8), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return png_data_uri(buffer.getvalue())


def legend_html(run: Run) -> str:
    """The report's one legend: each method with its colour, in the run's order."""
    items = "".join(f"<span>{_swatch(c)}{_e(m)}</span>" for m, c in run.colours.items())
    return f'<p class="legend">{items}</p>'


# -- sections ---------------------------------------------------------------------------------
def leaderboard_section(run: Run, table: dict[str, Any]) -> str:
    """The table as ranked in leaderboard.json, with the difference to the leader and notes."""
    header, rows = table_rows(table, reason_width=60)
    header = [*header, "Δ PSNR vs leader", "p"]
    full = []
    for entry, row in zip(table["entries"], rows):
        vs = (entry.get("vs_leader") or {}).get("psnr") or {}
        delta = _fmt(vs.get("mean"), 2, sign=True)
        if vs:
            delta += f" [{_fmt(vs.get('ci_low'), 2, True)}, {_fmt(vs.get('ci_high'), 2, True)}]"
        full.append([*row, delta if vs else "—", _p(vs.get("p_value")) if vs else "—"])
    lines = "".join(f'<p class="note">{_e(line.strip())}</p>' for line in notes(table))
    basis = f'<p class="note">{_e(ranking_line(table))}.</p>'
    return basis + _table(header, full, colours=run.colours) + lines


def buckets_section(run: Run, table: dict[str, Any]) -> str:
    table = {**table, "buckets": _plot_buckets(run, table)}
    parts = []
    for metric, label, decimals in (("psnr", "PSNR (dB)", 2), ("ssim", "SSIM", 4)):
        header, rows = bucket_rows(table, metric, decimals)
        if rows:
            parts.append(
                f"<h4>Mean {label} by mask ratio</h4>"
                + _table(header, rows, left=1, colours=run.colours, colour_header=True)
            )
    return "".join(parts) or '<p class="muted">No per-image data.</p>'


def comparisons_section(table: dict[str, Any]) -> str:
    rows = []
    for c in table.get("comparisons") or []:
        row = [c["a"], c["b"], c.get("n", "—")]
        for metric, decimals in (("psnr", 3), ("ssim", 5)):
            d = c.get(metric) or {}
            low, high = (
                _fmt(d.get("ci_low"), decimals, True),
                _fmt(d.get("ci_high"), decimals, True),
            )
            ci = f"[{low}, {high}]"
            row += [_fmt(d.get("mean"), decimals, True), ci, _p(d.get("p_value"))]
        rows.append(row)
    if not rows:
        return '<p class="muted">No paired comparisons in this leaderboard.</p>'
    header = ["a", "b", "n", "Δ PSNR (a−b)", "95 % CI", "p", "Δ SSIM (a−b)", "95 % CI", "p"]
    return _table(header, rows)


def timing_section(run: Run) -> str:
    tables = run.leaderboard["tables"]
    rows = []
    for method in run.methods:
        row = [method]
        for t in tables:
            entry = next((e for e in t["entries"] if e["method"] == method), None)
            speed = (entry or {}).get("images_per_s")
            row.append(f"{1000 / speed:.3f}" if speed else "—")
        rows.append(row)
    workers, device = run.config.get("workers"), run.info.get("device", "?")
    note = (
        f'<p class="note">Method time per image in milliseconds: the method\'s own inpainting '
        f"calls, measured per batch ({_e(workers)} worker threads for CPU-only methods; device "
        f"{_e(device)}). Data loading, mask drawing, metrics and writing are not included, so "
        "the run's wall-clock time per image is higher.</p>"
    )
    header = ["method", *(f"ms/img, {t['mask']}" for t in tables)]
    return note + _table(header, rows, left=1, colours=run.colours, name_column=0)


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


def _dl(items: dict[str, Any]) -> str:
    return (
        "<dl>"
        + "".join(f"<dt>{_e(k)}</dt><dd>{_e(readable(v))}</dd>" for k, v in items.items())
        + "</dl>"
    )


def methods_section(run: Run) -> str:
    """Each method with its colour, parameters and fingerprint (code hash and weights hash)."""
    described = run.info.get("methods") if isinstance(run.info.get("methods"), dict) else {}
    fingerprints: dict[str, set[str]] = {}
    for table in run.leaderboard["tables"]:
        for entry in table["entries"]:
            if entry.get("fingerprint"):
                fingerprints.setdefault(entry["method"], set()).add(str(entry["fingerprint"]))
    rows = []
    for method in run.methods:
        parameters = (described.get(method) or {}).get("parameters") or {}
        found = sorted(fingerprints.get(method, set()))
        rows.append([method, readable(parameters), "; ".join(found) or "—"])
    note = (
        '<p class="note">The fingerprint identifies the exact method version measured: its code '
        "hash and, for learned methods, the hash of the weights file.</p>"
    )
    header = ["method", "parameters", "fingerprint"]
    return note + _table(header, rows, left=3, colours=run.colours, name_column=0)


def configuration_section(run: Run) -> str:
    info = run.info
    if not info:
        return '<p class="muted">No run.json in the run directory.</p>'
    general = {
        "status": info.get("status"),
        "started": info.get("started"),
        "finished": info.get("finished"),
        "images": f"{info.get('images')} of {info.get('dataset_size')} "
        f"({'x'.join(str(s) for s in info.get('image_size') or [])} px)",
        "device": info.get("device"),
        "git revision": info.get("git_revision"),
    }
    config = dict(info.get("config") or {}) if isinstance(info.get("config"), dict) else {}
    masks = info.get("masks") if isinstance(info.get("masks"), dict) else {}
    params = {
        f"mask {name}": readable((d or {}).get("parameters") or {}) for name, d in masks.items()
    }
    plugins = info.get("plugins") if isinstance(info.get("plugins"), dict) else {}
    plugin_items = {name: readable(d) for name, d in plugins.items()}
    return (
        "<h3>Run</h3>"
        + _dl(general)
        + "<h3>Configuration</h3>"
        + _dl(config)
        + "<h3>Mask parameters</h3>"
        + _dl(params)
        + ("<h3>Plug-ins</h3>" + _dl(plugin_items) if plugin_items else "")
        + "<h3>Versions</h3>"
        + _dl(info.get("versions") or {})
    )


# -- the report -------------------------------------------------------------------------------
def build_report(run_dir: str | Path, samples: int = DEFAULT_SAMPLES) -> str:
    """The HTML text of the report of ``run_dir``."""
    run = Run(run_dir)
    config = run.leaderboard.get("config") or {}
    tables = run.leaderboard["tables"]
    title = f"inpaint-bench report — {run.dir.name}"
    sections: list[tuple[str, str, str]] = []  # (anchor, heading, html)

    boards = "".join(
        f"<h3>Mask <code>{_e(t['mask'])}</code></h3>{leaderboard_section(run, t)}" for t in tables
    )
    sections.append(("leaderboard", "Leaderboards", boards))
    grids = "".join(
        f"<h3>Mask <code>{_e(t['mask'])}</code></h3>"
        + sample_grid(run, t["mask"], [m for m in run.methods if m in _methods_of(t)], samples)
        for t in tables
    )
    sections.append(("samples", "Sample images", grids))
    plot = psnr_vs_ratio_plot(run)
    plot_html = legend_html(run)
    if not run.series:
        plot_html += (
            '<p class="muted">No records.jsonl in the run directory: no per-image data; the '
            "plot and the buckets come from leaderboard.json.</p>"
        )
    plot_html += (
        '<p class="note">Mean PSNR per mask-ratio bin (the NVIDIA bins of the bucket tables), '
        "each method on its own images (see the counts in the bucket tables).</p>"
        f'<img src="{plot}" alt="PSNR versus mask ratio" style="max-width:100%">'
        if plot
        else '<p class="muted">No mask-ratio buckets in this run.</p>'
    )
    sections.append(("ratio", "PSNR versus mask ratio", plot_html))
    buckets = "".join(
        f"<h3>Mask <code>{_e(t['mask'])}</code></h3>{buckets_section(run, t)}" for t in tables
    )
    sections.append(("buckets", "Mask-ratio buckets", buckets))
    pairs = "".join(
        f"<h3>Mask <code>{_e(t['mask'])}</code></h3>{comparisons_section(t)}" for t in tables
    )
    pairs = (
        '<p class="note">Per-image differences a − b on the images both methods measured: mean, '
        "95 % bootstrap CI, Wilcoxon signed-rank p-value.</p>" + pairs
    )
    sections.append(("pairs", "Paired comparisons", pairs))
    sections.append(("time", "Time per image", timing_section(run)))
    sections.append(("methods", "Methods and fingerprints", methods_section(run)))
    sections.append(("config", "Configuration and versions", configuration_section(run)))

    nav = "".join(f'<a href="#{a}">{_e(h)}</a>' for a, h, _ in sections)
    body = "".join(f'<h2 id="{a}">{_e(h)}</h2>{content}' for a, h, content in sections)
    subtitle = (
        f"Data set <code>{_e(config.get('dataset'))}</code> ({_e(config.get('split'))} split), "
        f"{_e(run.images)} images, seed {_e(config.get('seed'))}, inpaint-bench "
        f"{_e(config.get('version'))}. Means over images ± half-width of the 95 % bootstrap CI."
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f'<h1>{_e(title)}</h1><p class="muted">{subtitle}</p><nav>{nav}</nav>{body}'
        "</body></html>\n"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``report``."""
    parser.add_argument("run_dir", help="a run directory (with leaderboard.json)")
    parser.add_argument("--out", default=None, help="HTML file (default RUN_DIR/report.html)")
    parser.add_argument(
        "--samples",
        type=int,
        default=DEFAULT_SAMPLES,
        help=f"images per sample grid, the first indices (default {DEFAULT_SAMPLES})",
    )


def run(args: argparse.Namespace) -> int:
    """``report`` subcommand: write the HTML file and print its path."""
    from benchmark.errors import UsageError

    if args.samples < 0:
        raise UsageError(f"--samples must be >= 0, got {args.samples}")
    out = Path(args.out) if args.out else Path(args.run_dir) / "report.html"
    text = build_report(args.run_dir, args.samples)
    write_atomic(out, text)
    print(f"report written to {out} ({len(text.encode()) / 1024:.0f} kB)")
    return 0
