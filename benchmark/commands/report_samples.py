"""The report's sample grids: the same first images for every mask, from the run's saved PNGs
or, when the run was made without ``--save-images``, recomputed through the registries and the
pipeline's own :func:`~benchmark.run.pipeline.measure` (the composite the run measured). Each
row names its image's source: the file of a folder data set, the photo and position of a
patch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.commands.report_data import Run
from benchmark.commands.report_images import masked_view, read_png

#: Grid cells: ``{index: {column: uint8 (H, W, 3) RGB pixels, or None where the method failed}}``.
Cells = dict[int, dict[str, np.ndarray | None]]

#: The note on a method whose recomputed images do not measure like the run's records.
DIFFERS = (
    "recomputed images differ from the measured ones (the method changed since the run, or its "
    "output depends on the other images of its batch)"
)


@dataclass
class SampleGrid:
    """One mask's grid: rows of images, where they came from, and per-method warnings."""

    indices: list[int]
    columns: list[str]
    cells: Cells = field(default_factory=dict)
    source: str = ""
    notes: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # why there are no images at all
    names: dict[int, str] = field(default_factory=dict)  # index -> where the image comes from


@dataclass
class RunData:
    """The run's data set, built once for every grid (or why it could not be built)."""

    dataset: Any = None
    error: str | None = None

    @classmethod
    def load(cls, run: Run) -> RunData:
        """Build the data set of ``run``'s configuration; a failure is kept as text."""
        from benchmark.datasets import build_dataset

        config = run.config
        try:
            return cls(
                build_dataset(
                    config.get("dataset", "skimage-patches"),
                    config.get("split", "test"),
                    config.get("size"),
                    config.get("data_dir"),
                )
            )
        except Exception as exc:  # data set no longer available: saved PNGs may still show
            return cls(error=f"{type(exc).__name__}: {exc}")

    def source_name(self, index: int) -> str | None:
        """Where image ``index`` comes from: a folder data set's file (relative path), a
        patch's photo and position, else None."""
        files, root = getattr(self.dataset, "files", None), getattr(self.dataset, "root", None)
        if isinstance(files, Sequence) and index < len(files):
            path = Path(files[index])
            return path.relative_to(root).as_posix() if root else path.name
        sources = getattr(self.dataset, "sources", None)
        if isinstance(sources, Sequence) and index < len(sources):
            photo, y, x = sources[index]
            return f"{photo} at y={y}, x={x}"
        return None


def _saved_folder(root: Path, spec: str) -> Path:
    """The folder of ``spec``'s saved images: its slug, or the older versions' name of it
    (run folders made before slugs were unique) when only that one exists."""
    from benchmark.names import legacy_slug, slugify

    folder = root / slugify(spec)
    old = root / legacy_slug(spec)
    return old if not folder.is_dir() and old.is_dir() else folder


def saved_samples(
    run: Run, mask: str, methods: Sequence[str], indices: Sequence[int]
) -> Cells | None:
    """Grid cells from the run's PNGs, or None when the run did not save them all.

    Only files inside the run's records folder are read (a symbolic link leading elsewhere
    is ignored), each checked against the pixel limit, and of the run's image size when
    ``run.json`` records it. An image the records say failed shows no composite."""
    from benchmark.results.paths import is_within

    root, base = run.images_dir, run.records_dir
    size = tuple(run.info.get("image_size") or ())

    def read(path: Path, gray: bool = False) -> np.ndarray | None:
        if not is_within(path, base):
            return None
        pixels = read_png(path, gray)
        if pixels is None or (len(size) == 2 and pixels.shape[:2] != size):
            return None
        return pixels

    has_records = (run.dir / "records.jsonl").exists()
    mask_dir = _saved_folder(root, mask)
    if not (root / "_original").is_dir() or not (mask_dir / "_mask").is_dir():
        return None
    cells: Cells = {}
    for index in indices:
        name = f"{index:06d}.png"
        original = read(root / "_original" / name)
        hole = read(mask_dir / "_mask" / name, gray=True)
        if original is None or hole is None:
            return None
        row: dict[str, np.ndarray | None] = {
            "original": original,
            "masked input": masked_view(original, hole > 127),
        }
        for method in methods:
            measured = run.series.get((mask, method))
            if has_records and (measured is None or index not in measured["index"]):
                row[method] = None  # failed in the run: never a composite of another run
                continue
            row[method] = read(_saved_folder(mask_dir, method) / name)
        cells[index] = row
    return cells


def recomputed_samples(
    run: Run, mask: str, methods: Sequence[str], indices: Sequence[int], dataset: Any
) -> tuple[Cells, dict[str, str]]:
    """Grid cells recomputed through the registries, and warnings (method -> text)."""
    import torch

    from benchmark.checks import prediction_to_cpu
    from benchmark.masking import build_mask
    from benchmark.method import METHODS, to_uint8_hwc
    from benchmark.run.pipeline import measure

    config = run.config
    originals = dataset.images(list(indices))
    height, width = originals.shape[-2:]
    ratio = config.get("mask_ratio")
    holes = build_mask(mask).batch(
        list(indices), height, width, int(config.get("seed", 0)), tuple(ratio) if ratio else None
    )
    masked = originals.masked_fill(holes, 0.0)
    originals_u8 = to_uint8_hwc(originals)
    holes_np = holes[:, 0].numpy()
    cells: Cells = {
        index: {
            "original": originals_u8[j],
            "masked input": masked_view(originals_u8[j], holes_np[j]),
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
            values, result = measure(originals, prediction_to_cpu(output, masked), holes, True)
        except Exception as exc:  # a method that cannot run here: say so in its column
            notes[method_name] = f"not recomputed: {type(exc).__name__}: {exc}"
            for index in indices:
                cells[index][method_name] = None
            continue
        results_u8 = to_uint8_hwc(result)
        for j, index in enumerate(indices):
            cells[index][method_name] = results_u8[j]
        if _differs(run, mask, method_name, indices, values["psnr"]):
            notes[method_name] = DIFFERS
    return cells, notes


def _differs(
    run: Run, mask: str, method: str, indices: Sequence[int], psnr: Sequence[float]
) -> bool:
    """Whether a recomputed PSNR is more than 1e-3 dB from the run's record of that image."""
    recorded = run.series.get((mask, method))
    if recorded is None:
        return False
    for index, value in zip(indices, psnr):
        where = np.flatnonzero(recorded["index"] == index)
        if len(where) and abs(recorded["psnr"][where[0]] - value) > 1e-3:
            return True
    return False


def sample_grid(
    run: Run, mask: str, methods: Sequence[str], samples: int, data: RunData | None = None
) -> SampleGrid:
    """The grid of the first ``samples`` images of ``mask``: saved PNGs, else recomputed;
    ``data``: the run's data set, when already built."""
    grid = SampleGrid(list(range(min(samples, run.images))), ["original", "masked input", *methods])
    if not grid.indices:
        return grid
    data = data if data is not None else RunData.load(run)
    grid.names = {i: name for i in grid.indices if (name := data.source_name(i)) is not None}
    saved = saved_samples(run, mask, methods, grid.indices)
    if saved is not None:
        grid.cells, grid.source = saved, "saved PNGs of the run"
        return grid
    if data.error is not None:
        grid.error = data.error
        return grid
    try:
        grid.cells, grid.notes = recomputed_samples(run, mask, methods, grid.indices, data.dataset)
        grid.source = "recomputed (the run was made without --save-images)"
    except Exception as exc:  # a mask no longer available
        grid.error = f"{type(exc).__name__}: {exc}"
    return grid
