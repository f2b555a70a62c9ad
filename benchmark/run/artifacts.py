"""The run folder: its layout, the slugs of file names, saved images, the same-configuration check.

A run writes ``records.jsonl``, ``leaderboard.json``, ``leaderboard.md`` and ``run.json`` into its
folder and, with ``--save-images``, lossless PNGs under ``images/``. This module imports neither
torch nor OpenCV at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


#: PNG compression level of saved images (fixed: the same pixels give the same bytes).
PNG_COMPRESSION = 3


def save_images(
    run_dir: Path,
    originals: torch.Tensor,
    masks: torch.Tensor,
    results: torch.Tensor | None,
    batch: Sequence[int],
    mask_name: str,
    method_name: str,
    problems: list[str | None],
) -> None:
    """Lossless PNGs of original, mask and composite, so anyone can recompute the metrics.

    Every file always holds what the records beside it were measured on: original and mask
    are rewritten whenever their bytes differ (the data or the masks changed since an earlier
    run), and a failed image's composite from an earlier run is removed, never left to be
    shown as if it were this run's result (``results`` None: the whole batch failed). Each
    write is atomic (workers of two methods may write the same original at once).
    """
    import numpy as np

    from benchmark.method import to_uint8_hwc

    originals_u8 = to_uint8_hwc(originals)
    results_u8 = to_uint8_hwc(results) if results is not None else None
    masks_u8 = masks[:, 0].numpy().astype(np.uint8) * 255
    mask_slug, method_slug = slugify(mask_name), slugify(method_name)
    for j, index in enumerate(batch):
        name = f"{index:06d}.png"
        _keep(image_path(run_dir, "_original", name), originals_u8[j][..., ::-1])
        _keep(image_path(run_dir, mask_slug, "_mask", name), masks_u8[j])
        result_path = image_path(run_dir, mask_slug, method_slug, name)
        if problems[j] is None and results_u8 is not None:
            _keep(result_path, results_u8[j][..., ::-1])
        else:
            result_path.unlink(missing_ok=True)


def _keep(path: Path, pixels: Any) -> None:
    """Make ``path`` hold the PNG of ``pixels`` (BGR or gray), writing only when it differs."""
    import os
    import tempfile

    import cv2
    import numpy as np

    params = [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION]
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(pixels), params)
    if not ok:
        raise OSError(f"cannot encode image {path}")
    data = buffer.tobytes()
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except OSError:  # absent (or unreadable): write it
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_images_to(run_dir: Path) -> Callable[..., None]:
    """A ``save_images`` callback of the pipeline writing lossless PNGs under ``run_dir/images``."""

    def save(originals, masks, results, batch, mask_name, method_name, problems) -> None:
        save_images(run_dir, originals, masks, results, batch, mask_name, method_name, problems)

    return save
