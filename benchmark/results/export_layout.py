"""The layout of an export folder: file names of each (mask, image), where a model's
predictions go, and the manifest that lists them.

``python -m benchmark export`` writes this layout and the ``predictions:`` method reads it, so
both take it from here (a method never imports a command).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from benchmark.names import slugify
from benchmark.results.schema import Manifest, validated

#: Identifies an export manifest (``predictions:`` refuses to score an export folder itself).
MANIFEST_KIND = "inpaint-bench export"
MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
LAYOUTS = ("native", "lama")
#: Folder of the originals (the answers), one file per image, in both layouts: apart from the
#: mask folders a model reads, so that it cannot read them by accident.
GROUND_TRUTH = "_ground_truth"
CSV_FIELDS = ("mask", "mask_folder", "index", "original", "masked", "mask_file", "mask_ratio")


def mask_folder(mask_spec: str) -> str:
    """The folder name of a (normalised) mask spec, the run folders' rule."""
    return slugify(mask_spec)


def file_names(layout: str, folder: str, index: int) -> dict[str, str]:
    """Relative paths of the original (in :data:`GROUND_TRUTH`, shared by every mask), the
    masked input and the mask of one (mask, image)."""
    stem = f"{index:06d}"
    original = f"{GROUND_TRUTH}/{stem}.png"
    if layout == "lama":
        masked, mask_file = f"{folder}/{stem}.png", f"{folder}/{stem}_mask000.png"
    else:
        masked, mask_file = f"{folder}/{stem}_masked.png", f"{folder}/{stem}_mask.png"
    return {"original": original, "masked": masked, "mask_file": mask_file}


def prediction_name(layout: str, index: int) -> str:
    """File name (inside the mask folder) of a model's prediction for image ``index``."""
    return f"{index:06d}_mask000.png" if layout == "lama" else f"{index:06d}.png"


def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    """The export manifest of ``directory``, checked against the schema; None when the folder
    holds no ``manifest.json`` or one that is not an export's (another tool's file of that
    name). A manifest of ours that does not fit the schema is a one-line ``DataError``."""
    path = Path(directory) / MANIFEST_JSON
    if not path.is_file():
        return None
    try:
        data = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND:
        return None
    return validated(data, Manifest, f"export manifest {str(path)!r}")
