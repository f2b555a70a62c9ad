"""The run folder: its layout, the slugs of file names, saved images, the same-configuration check.

A run writes ``records.jsonl``, ``leaderboard.json``, ``leaderboard.md`` and ``run.json`` into its
folder and, with ``--save-images``, lossless PNGs under ``images/``. This module imports neither
torch nor OpenCV at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.errors import UsageError
from benchmark.names import slugify
from benchmark.results.schema import RunFile, read_file

if TYPE_CHECKING:
    import torch

    from benchmark.run.config import RunConfig

#: Files of a run folder (the gate deletes them before it runs again).
RUN_FILES = ("records.jsonl", "leaderboard.json", "leaderboard.md", "run.json")


def image_path(run_dir: Path, *parts: str) -> Path:
    """Where a saved image of ``run_dir`` lives (``images/<parts...>``)."""
    return run_dir.joinpath("images", *parts)


def check_run_dir(run_dir: Path, config: RunConfig) -> None:
    """Refuse to mix records of a different configuration into ``run_dir``."""
    run_json = run_dir / "run.json"
    if not run_json.exists():
        return
    previous = read_file(run_json, RunFile, "run file")["identity"]
    changed = [k for k, v in config.identity().items() if previous.get(k) != v]
    if changed:
        diffs = ", ".join(f"{k} {previous.get(k)!r} -> {config.identity()[k]!r}" for k in changed)
        raise UsageError(
            f"{run_dir} holds a run with a different configuration ({diffs}); "
            "choose another --out or delete that folder"
        )


def save_images(
    run_dir: Path,
    originals: torch.Tensor,
    masks: torch.Tensor,
    results: torch.Tensor,
    batch: Sequence[int],
    mask_name: str,
    method_name: str,
    problems: list[str | None],
) -> None:
    """Lossless PNGs of original, mask and composite, so anyone can recompute the metrics."""
    import cv2
    import numpy as np

    from benchmark.method import to_uint8_hwc

    originals_u8, results_u8 = to_uint8_hwc(originals), to_uint8_hwc(results)
    masks_u8 = masks[:, 0].numpy().astype(np.uint8) * 255
    for j, index in enumerate(batch):
        name = f"{index:06d}.png"
        # (path, pixels, overwrite): originals and masks are shared by methods, written once
        writes = [
            (image_path(run_dir, "_original", name), originals_u8[j][..., ::-1], False),
            (image_path(run_dir, slugify(mask_name), "_mask", name), masks_u8[j], False),
        ]
        if problems[j] is None:
            result_path = image_path(run_dir, slugify(mask_name), slugify(method_name), name)
            writes.append((result_path, results_u8[j][..., ::-1], True))
        for path, pixels, overwrite in writes:
            if overwrite or not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                if not cv2.imwrite(str(path), np.ascontiguousarray(pixels)):
                    raise OSError(f"cannot write image {path}")


def save_images_to(run_dir: Path) -> Callable[..., None]:
    """A ``save_images`` callback of the pipeline writing lossless PNGs under ``run_dir/images``."""

    def save(originals, masks, results, batch, mask_name, method_name, problems) -> None:
        save_images(run_dir, originals, masks, results, batch, mask_name, method_name, problems)

    return save
