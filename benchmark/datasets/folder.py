"""``folder``: every image file under a directory (``--dataset folder:PATH``).

Files with the extensions in :data:`EXTENSIONS` (any case) are found recursively, skipping
hidden files and folders (names starting with ``.``), and sorted by relative path: that order
is the stable image index. Each image is read as 8-bit RGB (alpha dropped, grey repeated to
three channels, 16-bit scaled down), resized so its shorter side equals ``size`` and
centre-cropped to ``size × size``. Images are decoded on demand, not at construction.

A folder has a single split: ``train`` and ``test`` give the same images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmark.datasets.base import DATASETS, SPLITS, Dataset, resolve_size
from benchmark.errors import DataError, UsageError
from benchmark.fingerprint import source_hash

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_SIZE = 128


def list_images(root: Path) -> list[Path]:
    """Image files under ``root`` (recursive, hidden entries skipped), sorted by relative path."""
    files = [
        path
        for path in root.rglob("*")
        if path.suffix.lower() in EXTENSIONS
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
        and path.is_file()
    ]
    return sorted(files, key=lambda path: path.relative_to(root).as_posix())


def resize_and_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Resize ``image`` so its shorter side is ``size`` (area down, cubic up); crop the centre.

    >>> resize_and_crop(np.zeros((40, 100, 3), np.uint8), 20).shape
    (20, 20, 3)
    """
    height, width = image.shape[:2]
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    if (new_h, new_w) != (height, width):
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return image[top : top + size, left : left + size]


class FolderDataset(Dataset):
    """The images under ``root``, decoded lazily; ``files`` lists them in index order."""

    def __init__(self, root: Path, size: int, split: str, label: str) -> None:
        self.root = root
        self.size = size
        self.split = split
        self.label = label  # the path as the user wrote it, for messages
        if not root.exists():
            raise DataError(f"folder '{label}': no such directory")
        if not root.is_dir():
            raise DataError(f"folder '{label}': expected a directory, got a file")
        self.files = list_images(root)
        if not self.files:
            raise DataError(
                f"folder '{label}': no image files (looked recursively for "
                f"{', '.join('*' + ext for ext in EXTENSIONS)}, any case)"
            )

    def __len__(self) -> int:
        return len(self.files)

    def fingerprint(self) -> str:
        """Resolved folder, size, and every file's relative path, byte size and mtime (hashed)."""
        digest = hashlib.sha256(f"{self.root.resolve()}|{self.size}".encode())
        for path in self.files:
            stat = path.stat()
            digest.update(f"|{path.relative_to(self.root).as_posix()}|{stat.st_size}|".encode())
            digest.update(str(stat.st_mtime_ns).encode())
        return f"code {source_hash(self)}; files {len(self.files)} {digest.hexdigest()[:16]}"

    @property
    def image_size(self) -> tuple[int, int]:
        return self.size, self.size

    def read(self, index: int) -> np.ndarray:
        """Image ``index`` as ``uint8 (size, size, 3)`` RGB."""
        path = self.files[index]
        relative = path.relative_to(self.root).as_posix()
        try:
            encoded = np.fromfile(path, dtype=np.uint8)
        except OSError as exc:
            raise DataError(
                f"folder '{self.label}': cannot read image '{relative}' ({exc.strerror or exc})"
            ) from exc
        # IMREAD_COLOR gives 8-bit BGR: alpha dropped, grey repeated, 16-bit scaled, EXIF applied.
        image = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if encoded.size else None
        if image is None:
            raise DataError(
                f"folder '{self.label}': cannot decode image '{relative}' (corrupt or unsupported)"
            )
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return resize_and_crop(image, self.size)

    def images(self, indices: Sequence[int]) -> torch.Tensor:
        if len(indices) == 0:
            return torch.empty((0, 3, self.size, self.size))
        batch = np.stack([self.read(int(i)) for i in indices])
        return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255).contiguous()


@DATASETS.register("folder")
def folder(
    *,
    path: str | None = None,
    split: str = "test",
    size: int | None = None,
    data_dir: str | Path | None = None,
) -> FolderDataset:
    """The images under ``path`` as ``size × size`` RGB (default 128); one split for both.

    A relative ``path`` is taken from the working directory; ``data_dir`` is unused.
    """
    if path is None or str(path) == "":
        raise UsageError("folder: expected a directory, as folder:PATH or folder:path=PATH")
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    side = resolve_size(size, DEFAULT_SIZE, "folder")
    return FolderDataset(Path(str(path)).expanduser(), side, split, str(path))
