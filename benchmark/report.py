"""``python -m benchmark report RUN_DIR``: one self-contained HTML report of a run.

The file embeds everything (PNG images as ``data:`` URIs, inline CSS, no scripts, no links to
other files or sites), so it opens offline and can be mailed or attached to a CI job. It shows
the leaderboard tables (``≈`` = not significantly different from the leader), sample grids,
PSNR versus mask ratio (matplotlib), the mask-ratio buckets, the paired comparisons of every
two methods, the time per image, and the run's configuration and versions (``run.json``).

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
from benchmark.leaderboard import TIED_MARK, TIED_NOTE, bucket_rows, table_rows
from benchmark.records import read_json, write_atomic
from benchmark.significance import BUCKET_METRICS, ratio_buckets

DEFAULT_SAMPLES = 8
#: Quantile bins of mask ratio in the PSNR-versus-mask-ratio plot.
PLOT_BINS = 10
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


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 2) -> str:
    """An HTML table; the first ``left`` columns are left-aligned."""
    head = "".join(
        f'<th class="{"l" if i < left else ""}">{_e(h)}</th>' for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        tied = any(TIED_MARK in str(c) for c in row[:left])
        cells = "".join(
            f'<td class="{"l" if i < left else ""}">{_e(c)}</td>' for i, c in enumerate(row)
        )
        body.append(f'<tr class="{"tied" if tied else ""}">{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


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
        from benchmark.compare import series_from_records

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


# -- sample grids -----------------------------------------------------------------------------
def _masked_view(original: np.ndarray, hole: np.ndarray) -> np.ndarray:
    shown = original.copy()
    shown[hole.astype(bool)] = HOLE_RGB
    return shown


def saved_samples(run: Run, mask: str, methods: Sequence[str], indices: Sequence[int]):
    """Grid cells from the run's PNGs: ``{index: {column: png bytes or None}}``, or None."""
    from benchmark.runner import slugify

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
    holes = build_mask(mask).batch(list(indices), height, width, int(config.get("seed", 0)))
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
            with torch.no_grad():
                prediction = prediction_to_cpu(
                    method.inpaint(masked.clone(), holes.clone()), masked
                )
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
    head = "<th></th>" + "".join(f"<th>{_e(c)}</th>" for c in columns)
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
def psnr_vs_ratio_plot(run: Run) -> str | None:
    """PNG data URI: mean PSNR per quantile bin of mask ratio, one line per method and mask."""
    tables = [
        t
        for t in run.leaderboard["tables"]
        if any((t["mask"], e["method"]) in run.series for e in t["entries"])
    ]
    if not tables:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(tables), figsize=(5.5 * len(tables), 4), squeeze=False, sharey=True
    )
    for ax, table in zip(axes[0], tables):
        for entry in table["entries"]:
            s = run.series.get((table["mask"], entry["method"]))
            if s is None or len(s["index"]) < 2:
                continue
            order = np.argsort(s["mask_ratio"], kind="stable")
            bins = np.array_split(order, min(PLOT_BINS, len(order)))
            x = [s["mask_ratio"][b].mean() * 100 for b in bins if len(b)]
            y = [s["psnr"][b].mean() for b in bins if len(b)]
            ax.plot(x, y, marker="o", markersize=3, linewidth=1.5, label=entry["method"])
        ax.set_title(f"mask {table['mask']}")
        ax.set_xlabel("mask ratio (% of pixels in the hole)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean PSNR (dB)")
    axes[0][-1].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return png_data_uri(buffer.getvalue())


# -- sections ---------------------------------------------------------------------------------
def leaderboard_section(table: dict[str, Any]) -> str:
    header, rows = table_rows(table)
    header = [*header, "Δ PSNR vs leader", "p"]
    full = []
    for entry, row in zip(table["entries"], rows):
        vs = (entry.get("vs_leader") or {}).get("psnr") or {}
        delta = _fmt(vs.get("mean"), 2, sign=True)
        if vs:
            delta += f" [{_fmt(vs.get('ci_low'), 2, True)}, {_fmt(vs.get('ci_high'), 2, True)}]"
        full.append([*row, delta if vs else "—", _p(vs.get("p_value")) if vs else "—"])
    note = (
        f'<p class="note">{_e(TIED_NOTE)}</p>'
        if any(e.get("tied_with_leader") for e in table["entries"])
        else ""
    )
    return _table(header, full) + note


def buckets_section(run: Run, table: dict[str, Any]) -> str:
    if "buckets" not in table:  # a format-1 leaderboard: compute them from the records
        series = {
            e["method"]: run.series[(table["mask"], e["method"])]
            for e in table["entries"]
            if (table["mask"], e["method"]) in run.series
        }
        table = {**table, "buckets": ratio_buckets(series, BUCKET_METRICS)}
    parts = []
    for metric, label, decimals in (("psnr", "PSNR (dB)", 2), ("ssim", "SSIM", 4)):
        header, rows = bucket_rows(table, metric, decimals)
        if rows:
            parts.append(f"<h4>Mean {label} by mask ratio</h4>" + _table(header, rows, left=1))
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
    methods = list(dict.fromkeys(e["method"] for t in tables for e in t["entries"]))
    rows = []
    for method in methods:
        row = [method]
        for t in tables:
            entry = next((e for e in t["entries"] if e["method"] == method), None)
            speed = (entry or {}).get("images_per_s")
            row.append(f"{1000 / speed:.3f}" if speed else "—")
        rows.append(row)
    workers, device = run.config.get("workers"), run.info.get("device", "?")
    note = (
        f'<p class="note">Wall-clock milliseconds per image, measured per batch '
        f"({_e(workers)} worker threads for CPU-only methods; device {_e(device)}).</p>"
    )
    return note + _table(["method", *(f"ms/img, {t['mask']}" for t in tables)], rows, left=1)


def _dl(items: dict[str, Any]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items.items()) + "</dl>"


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
    config = {k: v for k, v in (info.get("config") or {}).items()}
    params = {
        f"{kind[:-1]} {name}": ", ".join(f"{k}={v}" for k, v in (d.get("parameters") or {}).items())
        or "—"
        for kind in ("methods", "masks")
        for name, d in (info.get(kind) or {}).items()
    }
    return (
        "<h3>Run</h3>"
        + _dl(general)
        + "<h3>Configuration</h3>"
        + _dl(config)
        + "<h3>Parameters</h3>"
        + _dl(params)
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
        f"<h3>Mask <code>{_e(t['mask'])}</code></h3>{leaderboard_section(t)}" for t in tables
    )
    sections.append(("leaderboard", "Leaderboards", boards))
    grids = "".join(
        f"<h3>Mask <code>{_e(t['mask'])}</code></h3>"
        + sample_grid(run, t["mask"], [e["method"] for e in t["entries"]], samples)
        for t in tables
    )
    sections.append(("samples", "Sample images", grids))
    plot = psnr_vs_ratio_plot(run)
    plot_html = (
        f'<p class="note">Mean PSNR over equal-count bins ({PLOT_BINS}) of mask ratio.</p>'
        f'<img src="{plot}" alt="PSNR versus mask ratio" style="max-width:100%">'
        if plot
        else '<p class="muted">No records.jsonl in the run directory: no per-image data.</p>'
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
