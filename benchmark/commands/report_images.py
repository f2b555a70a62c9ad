"""The report's pictures: their encoding as ``data:`` URIs, PNG decoding, and the
PSNR-versus-ratio plot (matplotlib, one panel per mask, each method in its report colour).

Sample images up to :data:`LOSSLESS_MAX_SIDE` pixels a side are lossless PNGs (a few kB, and
every pixel shows when enlarged); larger ones are WebP at quality :data:`WEBP_QUALITY`, a
tenth of a PNG's size, so a report of photos at 256 pixels stays a few MB.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

from benchmark.commands.report_data import Run

#: Colour of hole pixels in the "masked input" column (RGB).
HOLE_RGB = (255, 0, 255)
#: Largest image side embedded losslessly (PNG); larger images are WebP.
LOSSLESS_MAX_SIDE = 64
#: WebP quality of larger sample images (0-100): artefacts well below the methods' own.
WEBP_QUALITY = 90

#: Per mask: its name, the bin labels and each method's mean PSNR per bin.
PlotPanel = tuple[str, list[str], dict[str, list[float]]]


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` of PNG bytes (the report embeds every image)."""
    return data_uri(png, "image/png")


def data_uri(data: bytes, mime: str) -> str:
    """``data:<mime>;base64,...`` of encoded image bytes."""
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def picture_uri(rgb: np.ndarray) -> str:
    """A sample image as a ``data:`` URI: PNG up to :data:`LOSSLESS_MAX_SIDE` pixels a side,
    else WebP at :data:`WEBP_QUALITY` (the same pixels always give the same bytes)."""
    import cv2

    if max(rgb.shape[:2]) <= LOSSLESS_MAX_SIDE:
        return png_data_uri(encode_png(rgb))
    pixels = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    ok, buffer = cv2.imencode(
        ".webp", np.ascontiguousarray(pixels), [cv2.IMWRITE_WEBP_QUALITY, WEBP_QUALITY]
    )
    if not ok:
        raise ValueError("cannot encode WebP")
    return data_uri(buffer.tobytes(), "image/webp")


def encode_png(rgb: np.ndarray) -> bytes:
    """``uint8 (H, W, 3)`` RGB or ``(H, W)`` gray -> PNG bytes."""
    import cv2

    pixels = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(pixels))
    if not ok:
        raise ValueError("cannot encode PNG")
    return buffer.tobytes()


def read_png(path: Path, gray: bool = False) -> np.ndarray | None:
    """A PNG file as RGB (or gray) ``uint8`` pixels; None when it cannot be read or is above
    the pixel limit (checked from its header before decoding)."""
    import cv2

    from benchmark.errors import DataError
    from benchmark.images import read_image

    try:
        pixels = read_image(path, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR, str(path))
    except DataError:
        return None
    if pixels is None:
        return None
    return pixels if gray else np.ascontiguousarray(pixels[..., ::-1])


def masked_view(original: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The "masked input" picture: ``original`` with its hole pixels magenta."""
    shown = original.copy()
    shown[hole.astype(bool)] = HOLE_RGB
    return shown


def plot_data(run: Run) -> list[PlotPanel]:
    """Per mask: the bin labels (the bucket bins) and each method's mean PSNR per bin (NaN where
    it measured no image), methods in the run's order."""
    data = []
    for table in run.tables:
        buckets = run.buckets(table)
        if not buckets:
            continue
        lines = {}
        for method in run.table_methods(table):
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
    """PNG data URI of :func:`plot_data` (None without buckets): one panel per mask, each
    method in its report colour, one legend for the whole figure."""
    panels = plot_data(run)
    return png_data_uri(_draw(panels, run.methods, run.colours)) if panels else None


def _draw(panels: list[PlotPanel], methods: list[str], colours: dict[str, str]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    # names are drawn as written: a "$" in a method or mask name is not TeX
    with matplotlib.rc_context({"text.parse_math": False}):
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
            Line2D([], [], color=colours[m], marker="o", markersize=3, label=m) for m in methods
        ]
        fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 8), fontsize=8)
        fig.tight_layout(rect=(0, 0, 1, 0.9))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
        plt.close(fig)
    return buffer.getvalue()
