"""``predictions:DIR``: score images filled by a model that lives outside the harness.

The model reads an export (``python -m benchmark export``) and writes one filled RGB PNG per
(mask, image) in the export's layout: ``DIR/<mask>/<index:06d>.png`` (``layout=native``) or
``DIR/<mask>/<index:06d>_mask000.png`` (``layout=lama``, what LaMa's ``bin/predict.py`` writes).
The harness composites and measures these images exactly like a native method's predictions.

A method is normally called with pixels only; this one must know which (mask, image) each
prediction belongs to, so it is a :class:`ContextMethod`: the harness calls
:meth:`ContextMethod.inpaint_indexed` with the batch's indices and mask spec, and gets back the
predictions plus a per-image failure reason (``None`` for images that succeeded).

The export's manifest is a file anyone may have edited: every path in it is confined to the
export folder (absolute paths, ``..`` and symbolic links leading out are refused, one line),
and every image read (prediction or exported input) is checked against the pixel limit from
its header before it is decoded. With a manifest, each mask's folder is the one it names, so
predictions laid out for an export of an older version (older folder names) are still found.
"""

from __future__ import annotations

import hashlib
import os
import sys
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.errors import ContractError, DataError, UsageError
from benchmark.images import decode, read_image
from benchmark.method import METHODS, Method, from_uint8_hwc
from benchmark.names import legacy_slug
from benchmark.results.export_layout import (
    LAYOUTS,
    MANIFEST_JSON,
    mask_folder,
    prediction_name,
    read_manifest,
)
from benchmark.results.paths import confined

#: Per-image failure reasons of a batch: None where the image succeeded.
Problems = list[str | None]


class ContextMethod(Method):
    """A method that needs each image's index and mask spec, not only its pixels.

    The harness calls :meth:`inpaint_indexed` instead of :meth:`inpaint` when a method sets
    ``needs_context = True``; predictions of failed images are NaN and their reason is in the
    returned list (a harness that ignores the list still fails them, as NaN predictions).
    """

    needs_context = True

    def inpaint(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise ContractError(
            f"{type(self).__name__} needs each image's index and mask: the harness must call "
            "inpaint_indexed(masked, mask, indices, mask_name)"
        )

    @abstractmethod
    def inpaint_indexed(
        self, masked: torch.Tensor, mask: torch.Tensor, indices: Sequence[int], mask_name: str
    ) -> tuple[torch.Tensor, Problems]:
        """Predictions ``(N, 3, H, W)`` for images ``indices`` under mask spec ``mask_name``.

        Returns the predictions (NaN for images that failed) and one reason per image
        (``None`` when it succeeded).
        """


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _holds_export_files(root: Path, manifest: dict[str, Any]) -> bool:
    """Whether ``root`` is the export itself (its first image's three files are there), not a
    prediction folder that holds a copy of the export's manifest."""
    rows = manifest.get("files") or []
    try:
        return bool(rows) and all(
            confined(root, rows[0][key], MANIFEST_JSON).is_file()
            for key in ("original", "masked", "mask_file")
        )
    except DataError:  # names outside the folder: not this folder's files
        return False


def _mask_folders(manifest: dict[str, Any] | None, what: str) -> dict[str, str]:
    """Mask spec -> its folder in the export (one plain folder name each), from a manifest."""
    folders: dict[str, str] = {}
    for spec, entry in ((manifest or {}).get("masks") or {}).items():
        folder = entry.get("folder") if isinstance(entry, dict) else None
        if folder is None:
            continue
        if (
            not isinstance(folder, str)
            or "/" in folder
            or "\\" in folder
            or folder in ("", ".", "..")
        ):
            raise DataError(f"{what}: mask {spec!r} has folder {folder!r}, not a folder name")
        folders[spec] = folder
    return folders


def _png_size(path: str) -> tuple[int, int] | None:
    """``(height, width)`` of an image file from its header; None when unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size[1], image.size[0]
    except Exception:  # unreadable files fail their own images with the reason
        return None


def _manifest_differences(
    manifest: dict[str, Any],
    config: Any,
    count: int,
    image_size: Sequence[int],
    data_fingerprint: str,
    masks: Mapping[str, str],
) -> tuple[list[str], list[str]]:
    """(settings that differ between the export and the run, content that changed since)."""
    data = manifest.get("dataset") or {}
    problems = []

    def differ(flag: str, exported: Any, run: Any, fix: str = "") -> None:
        if exported != run:
            problems.append(
                f"{flag}: the export has {exported}, this run {run}" + (f" ({fix})" if fix else "")
            )

    differ("--dataset", data.get("spec"), config.identity()["dataset"])
    differ("--split", data.get("split"), config.split)
    exported_size = "x".join(map(str, data.get("image_size") or [])) or None
    differ("--size", exported_size, "x".join(map(str, image_size)), "pixels")
    differ("--seed", manifest.get("seed"), config.seed)
    ratio = list(config.mask_ratio) if config.mask_ratio else None
    differ("--mask-ratio", manifest.get("mask_ratio"), ratio)
    exported_images = data.get("images")
    if isinstance(exported_images, int) and count > exported_images:
        problems.append(
            f"--limit: the export holds the first {exported_images} images, this run scores "
            f"{count} (run with --limit {exported_images})"
        )
    exported_masks = manifest.get("masks") or {}
    absent = [spec for spec in masks if spec not in exported_masks]
    if absent:
        problems.append(
            f"masks: {', '.join(absent)} not in the export (it has "
            f"{', '.join(exported_masks) or 'none'})"
        )
    stale = []
    if not problems and data.get("fingerprint") not in (None, data_fingerprint):
        stale.append("the data set's files changed")
    changed = [
        spec
        for spec, fingerprint in masks.items()
        if spec in exported_masks and exported_masks[spec].get("fingerprint") != fingerprint
    ]
    if not problems and changed:
        stale.append(f"the code of mask {', '.join(changed)} changed")
    return problems, stale


@METHODS.register("predictions")
class PredictionsMethod(ContextMethod):
    """Images filled elsewhere: reads DIR/<mask>/<index>.png (predictions:DIR, layout=lama).

    ``export=EXPORT_DIR`` (optional) checks every image's mask and masked input against the
    export the model read, so predictions made for other masks (another ``--seed``, ``--size``,
    ``--mask-ratio`` or data set) fail with that reason instead of being scored. Before the run,
    :meth:`check_run` compares the export's manifest (from ``export=``, or a copy of
    ``manifest.json`` in DIR) with the run's settings and stops at the first run that cannot
    match: other ``--limit``, ``--size``, ``--seed``, ``--split``, ``--mask-ratio``, data set or
    masks is one line naming the difference (exit 2). Without a manifest, a mask with no folder
    in DIR, predictions that end before the run's last image, or of another size stop it too.
    """

    device = "cpu"
    #: Built only from a user's folder: ``--methods all`` and parameter-free contract tests skip it.
    requires_path = True

    def __init__(
        self, path: str | None = None, name: str = "", layout: str = "native", export: str = ""
    ) -> None:
        if not path:
            raise ValueError("needs the prediction folder: predictions:DIR")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        self.root = Path(str(path)).expanduser().resolve()
        self.name = str(name)
        self.layout = layout
        self._root_text = str(self.root)
        self._label = str(path)  # as the user wrote it, for messages
        if not self.root.is_dir():
            raise DataError(f"prediction folder {str(path)!r} does not exist")
        copy = read_manifest(self.root)
        if copy is not None and _holds_export_files(self.root, copy):
            raise UsageError(
                f"{str(path)!r} is an export folder (it holds {MANIFEST_JSON}): its files are the "
                "benchmark's inputs, not predictions; point predictions: at your model's output"
            )
        self.export = str(export)
        self._export_files: dict[tuple[str, int], tuple[str, str]] = {}
        #: The export's manifest (``export=``, else a copy in the folder): what the model saw.
        self.manifest = copy
        self._manifest_source = f"{MANIFEST_JSON} in {path}"
        if export:
            manifest = read_manifest(Path(self.export).expanduser())
            if manifest is None:
                raise DataError(
                    f"export={self.export!r}: no export manifest ({MANIFEST_JSON}) there"
                )
            self.manifest, self._manifest_source = manifest, f"export {self.export}"
            root = Path(self.export).expanduser().resolve()
            what = f"export manifest {str(root / MANIFEST_JSON)!r}"
            self._export_files = {
                (row["mask_folder"], int(row["index"])): (
                    str(confined(root, row["masked"], what)),
                    str(confined(root, row["mask_file"], what)),
                )
                for row in manifest.get("files", [])
            }
        #: Mask spec -> folder, as the manifest names it (else :func:`mask_folder`).
        self._folders = _mask_folders(self.manifest, self._manifest_source)
        #: SHA-256 of every PNG under the folder at build time, by relative path
        self._digests = {
            p.relative_to(self.root).as_posix(): _sha256(p.read_bytes())
            for p in sorted(self.root.rglob("*.png"))
            if p.is_file()
        }

    def check_run(
        self,
        *,
        config: Any,
        count: int,
        image_size: Sequence[int],
        data_fingerprint: str,
        masks: Mapping[str, str],
    ) -> None:
        """Stop (:class:`UsageError`, exit 2) when the run cannot match what the predictions were
        made for. ``config`` is the run's :class:`~benchmark.run.config.RunConfig`, ``count``
        the images it scores, ``image_size`` their ``(height, width)``, ``masks`` each mask
        spec's generator fingerprint. Differences only of content (the data set's files or a
        mask's code changed since the export) are a warning: the images decide.
        """
        if self.manifest is not None:
            problems, stale = _manifest_differences(
                self.manifest, config, count, image_size, data_fingerprint, masks
            )
            source = self._manifest_source
        else:
            problems, stale = self._folder_differences(count, image_size, masks), []
            source = f"the files in {self._label}"
        if problems:
            raise UsageError(
                f"predictions:{self._label} were made for other settings than this run "
                f"(from {source}): {'; '.join(problems)}"
            )
        if stale:
            print(
                f"warning: predictions:{self._label}: {'; '.join(stale)} since {source}"
                + ("; every image is checked against the export" if self.export else ""),
                file=sys.stderr,
            )

    def _folder_differences(
        self, count: int, image_size: Sequence[int], masks: Mapping[str, str]
    ) -> list[str]:
        """Without a manifest: mask folders missing, too few images or another image size."""
        problems, ends = [], {}
        suffix = prediction_name(self.layout, 0).removeprefix("000000")
        for spec in masks:
            folder = mask_folder(spec)
            indices = sorted(
                int(name[len(folder) + 1 : -len(suffix)])
                for name in self._digests
                if name.startswith(folder + "/")
                and name.endswith(suffix)
                and name[len(folder) + 1 : -len(suffix)].isdigit()
            )
            if not indices:
                old = legacy_slug(spec)
                hint = (
                    f" ({old}/ is named by the rule of older versions: rename it to {folder}/, "
                    "or pass export= with the export's folder)"
                    if old != folder and (self.root / old).is_dir()
                    else ""
                )
                problems.append(f"mask {spec!r}: no predictions in {folder}/{hint}")
                continue
            ends[folder] = indices[-1]
            first = f"{self._root_text}/{folder}/{prediction_name(self.layout, indices[0])}"
            size = _png_size(first)
            if size is not None and tuple(size) != tuple(image_size):
                problems.append(
                    f"--size: {folder}/ holds {size[1]}x{size[0]} images, this run's are "
                    f"{image_size[1]}x{image_size[0]} (run with the export's --size)"
                )
        short = {folder: end for folder, end in ends.items() if end + 1 < count}
        if short:
            last = min(short.values())
            problems.append(
                f"--limit: the predictions end at image {last} ({', '.join(short)}) but this "
                f"run scores {count} images (run with --limit {last + 1}, the export's --limit)"
            )
        return problems

    def fingerprint(self) -> str:
        listing = "\n".join(f"{k} {v}" for k, v in self._digests.items())
        return f"predictions {self.layout} sha256:{_sha256(listing.encode())[:16]}"

    def _read(self, relative: str, height: int, width: int) -> np.ndarray:
        """One prediction as ``uint8 (H, W, 3)`` RGB; raises DataError with the reason."""
        import cv2

        # plain strings, not Path objects: path building was a third of the reading time
        path = f"{self._root_text}/{relative}"
        expected = self._digests.get(relative)
        if expected is None:
            if os.path.isfile(path):
                raise DataError(f"{relative}: appeared after the run started")
            folder = os.path.dirname(path)
            if not os.path.isdir(folder):
                raise DataError(f"missing prediction folder {folder}")
            raise DataError(f"missing prediction file {path}")
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise DataError(f"{relative}: cannot read ({exc.strerror or exc})") from None
        if _sha256(data) != expected:
            raise DataError(f"{relative}: changed after the run started")
        pixels = decode(data, cv2.IMREAD_UNCHANGED, relative)  # the pixel limit, header first
        if pixels is None:
            raise DataError(f"{relative}: not a readable PNG")
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        if channels != 3:
            kind = {1: "grayscale", 2: "grayscale with alpha", 4: "RGBA"}.get(channels, "")
            plural = "" if channels == 1 else "s"
            raise DataError(f"{relative}: {kind} image ({channels} channel{plural}), expected RGB")
        if pixels.dtype != np.uint8:
            raise DataError(f"{relative}: {pixels.dtype} samples, expected 8-bit")
        if pixels.shape[:2] != (height, width):
            got = f"{pixels.shape[1]}x{pixels.shape[0]}"
            raise DataError(f"{relative}: {got} pixels, expected {width}x{height} (width x height)")
        # BGR -> RGB with OpenCV: 30x faster than copying the reversed NumPy view
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)

    def _check_export(
        self, masked: torch.Tensor, hole: torch.Tensor, folder: str, index: int
    ) -> None:
        """Raise DataError unless the export holds this image with this mask and input."""
        import cv2

        files = self._export_files.get((folder, index))
        if files is None:
            raise DataError(
                f"image {index} of mask folder {folder!r} is not in export {self.export}"
            )
        where = f"image {index} of {folder!r} in export {self.export}"
        exported_masked = read_image(files[0], cv2.IMREAD_COLOR, where)
        exported_hole = read_image(files[1], cv2.IMREAD_GRAYSCALE, where)
        if exported_masked is None or exported_hole is None:
            raise DataError(f"cannot read image {index} of {folder!r} in export {self.export}")
        pixels = masked.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        if exported_hole.shape != tuple(hole.shape) or not (
            np.array_equal(exported_hole == 255, hole.numpy())
            and np.array_equal(exported_masked[..., ::-1], pixels)
        ):
            raise DataError(
                f"image {index} of {folder!r}: its mask or masked input differs from export "
                f"{self.export} (exported with other --seed, --size, --mask-ratio or data?)"
            )

    def inpaint_indexed(
        self, masked: torch.Tensor, mask: torch.Tensor, indices: Sequence[int], mask_name: str
    ) -> tuple[torch.Tensor, Problems]:
        height, width = masked.shape[-2:]
        folder = self._folders.get(mask_name) or mask_folder(mask_name)
        filled = np.zeros((len(indices), height, width, 3), np.uint8)
        problems: Problems = []
        for k, index in enumerate(indices):
            relative = f"{folder}/{prediction_name(self.layout, int(index))}"
            try:
                if self.export:
                    self._check_export(masked[k], mask[k, 0], folder, int(index))
                filled[k] = self._read(relative, height, width)
                problems.append(None)
            except DataError as exc:
                problems.append(str(exc))
        prediction = from_uint8_hwc(filled)
        if any(problems):
            failed = torch.tensor([p is not None for p in problems], dtype=torch.bool)
            prediction[failed] = float("nan")
        return prediction, problems
