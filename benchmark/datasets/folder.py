"""``folder``: every image file under a directory (``--dataset folder:PATH``).

Files with the extensions in :data:`EXTENSIONS` (any case) are found recursively, skipping
hidden files and folders (names starting with ``.``), and sorted by relative path: that order
is the stable image index. Each image is read as 8-bit RGB (grey repeated to three channels,
16-bit scaled down), centre-cropped to a square and resized to ``size × size``. Images are
decoded on demand, not at construction. Symbolic links are followed; a broken link or a
directory reached twice is an error. Images above :data:`MAX_PIXELS` and JPEGs with corrupt
data are refused with an error naming the file.

**Transparency is dropped**: an image with an alpha channel (or a transparent palette colour)
is read as its stored colours, whatever their opacity, exactly as OpenCV reads it; it is not
composited over a background, which would paint pixels the photo does not have. Fully
transparent areas often store black or arbitrary colours, so the data set says, once and with
a count, how many of its images have transparency (file headers only, no decoding).

A folder has a single split: ``train`` and ``test`` give the same images.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from benchmark.datasets.base import DATASETS, SPLITS, Dataset, resolve_size
from benchmark.errors import DataError, UsageError
from benchmark.fingerprint import source_hash
from benchmark.images import from_uint8_hwc

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_SIZE = 128
#: Largest image accepted, in pixels (50 megapixels: 150 MB decoded at 8 bits).
MAX_PIXELS = 50_000_000
#: What :func:`header_size` returns for an image too large for Pillow even to describe.
TOO_LARGE = (-1, -1)
_JPEG_MAGIC = b"\xff\xd8\xff"


def list_images(root: Path, label: str | None = None) -> list[Path]:
    """Image files under ``root`` (recursive, hidden entries skipped), sorted by relative path.

    Symbolic links are followed. A broken link (missing target, or a link that points to
    itself) and a directory reached twice (a link loop, or two links to one directory, which
    would list its images twice) are a :class:`DataError` naming the entry, never skipped.
    """
    label = str(root) if label is None else label
    files: list[Path] = []
    seen: dict[tuple[int, int], str] = {}
    pending = [(root, "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            info = directory.stat()
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except OSError as exc:
            where = prefix.rstrip("/") or "."
            raise DataError(
                f"folder '{label}': cannot list '{where}' ({exc.strerror or exc})"
            ) from exc
        identity = (info.st_dev, info.st_ino)
        if identity in seen:
            raise DataError(
                f"folder '{label}': directory '{prefix.rstrip('/')}' is the same as "
                f"'{seen[identity] or '.'}' (a symbolic link loop or a second link to it); "
                "each directory may be listed once"
            )
        seen[identity] = prefix.rstrip("/")
        for entry in entries:
            if entry.name.startswith("."):
                continue
            relative = prefix + entry.name
            try:
                is_dir = entry.is_dir()  # follows links
                is_file = entry.is_file()
                if entry.is_symlink():
                    os.stat(entry.path)  # raises for a missing target or a loop
            except OSError as exc:
                raise DataError(
                    f"folder '{label}': broken symbolic link '{relative}' "
                    f"({exc.strerror or exc}); remove or fix it"
                ) from exc
            if is_dir:
                pending.append((Path(entry.path), relative + "/"))
            elif is_file and Path(entry.name).suffix.lower() in EXTENSIONS:
                files.append(Path(entry.path))
    return sorted(files, key=lambda path: path.relative_to(root).as_posix())


def header_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from the file header without decoding the pixels; None if unknown.

    :data:`TOO_LARGE` for a header beyond Pillow's decompression-bomb limit.

    Pillow reads only the header at open (it is installed with scikit-image and matplotlib).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.size
    except Image.DecompressionBombError:
        return TOO_LARGE  # above Pillow's own limit (179 megapixels), itself above ours
    except Exception:  # a format Pillow does not know: cv2 may still read it
        return None


#: File types that can carry transparency (JPEG cannot: its files are not opened to look).
ALPHA_CAPABLE = (".png", ".bmp", ".tif", ".tiff", ".webp")
#: Folders whose transparency warning this process has printed (resolved path, count).
_WARNED: set[tuple[str, int]] = set()


def has_alpha(path: Path) -> bool:
    """Whether the image file has an alpha channel or a transparent colour, from its header
    alone (Pillow); False when Pillow cannot read the header (decoding will say what is wrong).

    >>> has_alpha(Path("no-such-file.png"))
    False
    """
    if path.suffix.lower() not in ALPHA_CAPABLE:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return bool({"A", "a"} & set(image.getbands())) or "transparency" in image.info
    except Exception:  # unreadable here: the decoder reports it with the file's name
        return False


def warn_transparency(files: Sequence[Path], root: Path, label: str) -> int:
    """Count the images of ``files`` with transparency and say so on stderr, once per folder
    and process, on one line; returns the count."""
    with_alpha = [path for path in files if has_alpha(path)]
    key = (str(root.resolve()), len(with_alpha))
    if with_alpha and key not in _WARNED:
        _WARNED.add(key)
        example = with_alpha[0].relative_to(root).as_posix()
        print(
            f"warning: folder '{label}': {len(with_alpha)} of {len(files)} images have "
            f"transparency (an alpha channel), e.g. '{example}'; it is dropped: their stored "
            "colours are used whatever their opacity (see the data sets guide)",
            file=sys.stderr,
        )
    return len(with_alpha)


def check_jpeg(data: bytes) -> str | None:
    """None if ``data`` is a JPEG that decodes without any libjpeg warning, else what is wrong.

    OpenCV decodes corrupt entropy data (and some truncated files) into half-garbage images
    with only a warning on stderr; libjpeg-turbo in strict mode (simplejpeg) refuses them. A
    reduced-size decode (1/8, no colour conversion) reads every compressed bit at a fraction
    of the cost.
    """
    try:
        import simplejpeg  # here: only JPEG files need it
    except ImportError:
        return "cannot be checked for corrupt data: simplejpeg is missing (pip install simplejpeg)"
    try:
        _, _, colourspace, _ = simplejpeg.decode_jpeg_header(data)
        target = "CMYK" if colourspace in ("CMYK", "YCCK") else "GRAY"
        simplejpeg.decode_jpeg(data, colorspace=target, min_factor=8, strict=True)
    except ValueError as exc:
        return f"is a corrupt JPEG ({str(exc).splitlines()[0] if str(exc) else 'bad data'})"
    return None


def centre_crop_and_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Crop the centre square of ``image``, then resize it to ``size``² (area down, cubic up).

    Cropping first bounds the memory by the square, whatever the aspect ratio.

    >>> centre_crop_and_resize(np.zeros((40, 100, 3), np.uint8), 20).shape
    (20, 20, 3)
    >>> centre_crop_and_resize(np.zeros((1, 1_000_000, 3), np.uint8), 16).shape
    (16, 16, 3)
    """
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top : top + side, left : left + side]
    if side == size:
        return square
    interpolation = cv2.INTER_AREA if size < side else cv2.INTER_CUBIC
    return cv2.resize(square, (size, size), interpolation=interpolation)


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
        self.files = list_images(root, label)
        if not self.files:
            raise DataError(
                f"folder '{label}': no image files (looked recursively for "
                f"{', '.join('*' + ext for ext in EXTENSIONS)}, any case)"
            )
        #: Images with transparency (dropped when read; see the module docstring).
        self.transparent = warn_transparency(self.files, root, label)

    def __len__(self) -> int:
        return len(self.files)

    def fingerprint(self) -> str:
        """Resolved folder, size, and each file's relative path, resolved path, size and mtime.

        Hashed; the resolved paths make the same relative folder name from two working
        directories, or a symbolic link pointed elsewhere, two different data sets.
        """
        digest = hashlib.sha256(f"{self.root.resolve()}|{self.size}".encode())
        for path in self.files:
            relative = path.relative_to(self.root).as_posix()
            try:
                stat = path.stat()
                resolved = path.resolve(strict=True)
            except OSError as exc:
                raise DataError(
                    f"folder '{self.label}': cannot read image '{relative}' ({exc.strerror or exc})"
                ) from exc
            digest.update(f"|{relative}|{resolved}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        return f"code {source_hash(self)}; files {len(self.files)} {digest.hexdigest()[:16]}"

    @property
    def image_size(self) -> tuple[int, int]:
        return self.size, self.size

    def read(self, index: int) -> np.ndarray:
        """Image ``index`` as ``uint8 (size, size, 3)`` RGB.

        Refused with a one-line :class:`DataError` naming the file: unreadable, undecodable,
        a JPEG with any libjpeg warning (corrupt or truncated data), or more than
        :data:`MAX_PIXELS` pixels (checked from the header before decoding when Pillow can
        read it, else right after decoding).
        """
        path = self.files[index]
        relative = path.relative_to(self.root).as_posix()
        where = f"folder '{self.label}': image '{relative}'"
        try:
            encoded = np.fromfile(path, dtype=np.uint8)
        except OSError as exc:
            raise DataError(
                f"folder '{self.label}': cannot read image '{relative}' ({exc.strerror or exc})"
            ) from exc
        dims = header_size(path)
        if dims == TOO_LARGE:
            raise DataError(f"{where} has more than the limit of {MAX_PIXELS:,} pixels")
        if dims is not None:
            self._check_pixels(dims[0], dims[1], where)
        if encoded[:3].tobytes() == _JPEG_MAGIC:
            problem = check_jpeg(encoded.tobytes())
            if problem is not None:
                raise DataError(f"{where} {problem}")
        # IMREAD_COLOR gives 8-bit BGR: alpha dropped, grey repeated, 16-bit scaled, EXIF applied.
        image = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if encoded.size else None
        if image is None:
            raise DataError(
                f"folder '{self.label}': cannot decode image '{relative}' (corrupt or unsupported)"
            )
        self._check_pixels(image.shape[1], image.shape[0], where)
        # channel order last: the resize treats channels alike, and the small image is cheaper
        return cv2.cvtColor(centre_crop_and_resize(image, self.size), cv2.COLOR_BGR2RGB)

    @staticmethod
    def _check_pixels(width: int, height: int, where: str) -> None:
        if width * height > MAX_PIXELS:
            raise DataError(
                f"{where} has {width}x{height} pixels, more than the limit of {MAX_PIXELS:,}"
            )

    def images(self, indices: Sequence[int]) -> torch.Tensor:
        if len(indices) == 0:
            return torch.empty((0, 3, self.size, self.size))
        # OpenCV decodes and resizes without the GIL: files in parallel, one per OpenCV thread
        # (the run sets that count per worker process, so workers do not oversubscribe cores)
        threads = min(len(indices), cv2.getNumThreads())
        if threads > 1:
            with ThreadPoolExecutor(threads, thread_name_prefix="inpaint-bench-decode") as pool:
                batch = np.stack(list(pool.map(self.read, [int(i) for i in indices])))
        else:
            batch = np.stack([self.read(int(i)) for i in indices])
        return from_uint8_hwc(batch)


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
