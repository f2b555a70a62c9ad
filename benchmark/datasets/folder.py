"""``folder``: every image file under a directory (``--dataset folder:PATH``).

Files with the extensions in :data:`EXTENSIONS` (any case) are found recursively, skipping
hidden files and folders (names starting with ``.``), and sorted by relative path: that order
is the stable image index. Each image is read as 8-bit RGB (grey repeated to three channels,
16-bit scaled down, EXIF orientation applied), centre-cropped to a square and resized to
``size × size``. Images are decoded on demand, not at construction. Symbolic links are
followed; a broken link or a directory reached twice is an error. Images above the pixel
limit (:func:`benchmark.images.max_pixels`, checked from the header before decoding) and
JPEGs with corrupt data are refused with an error naming the file.

**Images smaller than the size** (shorter side below ``size``, from their headers) are never
upscaled silently: ``small=skip`` (the default) leaves them out of the data set and says so
once, with a count, on one warning line; ``small=error`` refuses the folder naming the first
one; ``small=upscale`` keeps them, enlarged with bicubic interpolation (an upscaled image has
little detail to lose, so its scores flatter every method).

**Fingerprint.** Each file's relative and resolved path with its size and modification time;
under ``--verify-data`` its content hash instead (copies made with ``cp -p`` or ``rsync -a``
keep size and time, so only the content tells them apart).

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
from benchmark.images import (
    DEFAULT_MAX_PIXELS,
    check_pixels,
    decode,
    file_digest,
    from_uint8_hwc,
    header_size,
    verify_data,
)

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_SIZE = 128
#: The default pixel limit (the limit in force is :func:`benchmark.images.max_pixels`).
MAX_PIXELS = DEFAULT_MAX_PIXELS
#: What to do with images smaller than the size (see the module docstring).
SMALL_POLICIES = ("skip", "error", "upscale")
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


#: File types that can carry transparency (JPEG cannot: its files are not opened to look).
ALPHA_CAPABLE = (".png", ".bmp", ".tif", ".tiff", ".webp")
#: Warnings this process has printed (kind, resolved folder, count): each is said once.
_WARNED: set[tuple[str, ...]] = set()


def has_alpha(path: Path) -> bool:
    """Whether the image file has an alpha channel or a transparent colour, from its header
    alone (Pillow); False when Pillow cannot read the header (decoding will say what is wrong).

    >>> has_alpha(Path("no-such-file.png"))
    False
    """
    return header(path)[1]


def header(path: Path) -> tuple[tuple[int, int] | None, bool]:
    """``((width, height) or None, has transparency)`` of an image file from its header alone
    (Pillow; EXIF rotation does not change the shorter side). Nothing is decoded and no limit
    is checked here: reading the image does that."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                alpha = path.suffix.lower() in ALPHA_CAPABLE and (
                    bool({"A", "a"} & set(image.getbands())) or "transparency" in image.info
                )
                return image.size, alpha
    except Image.DecompressionBombError:  # huge: not small; reading it refuses it
        return None, False
    except Exception:  # unreadable here: the decoder reports it with the file's name
        return None, False


def _warn_once(key: tuple[str, ...], message: str) -> None:
    """Print ``warning: message`` on stderr once per ``key`` and process."""
    if key not in _WARNED:
        _WARNED.add(key)
        print(f"warning: {message}", file=sys.stderr)


def warn_transparency(
    files: Sequence[Path], root: Path, label: str, alpha: Sequence[bool] | None = None
) -> int:
    """Count the images of ``files`` with transparency (``alpha``: known per file, else read
    from the headers) and say so on stderr, once per folder and process, on one line; returns
    the count."""
    flags = list(alpha) if alpha is not None else [has_alpha(path) for path in files]
    with_alpha = [path for path, flag in zip(files, flags) if flag]
    key = ("alpha", str(root.resolve()), str(len(with_alpha)))
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

    def __init__(self, root: Path, size: int, split: str, label: str, small: str = "skip") -> None:
        self.root = root
        self.size = size
        self.split = split
        self.label = label  # the path as the user wrote it, for messages
        self.small = small
        if not root.exists():
            raise DataError(f"folder '{label}': no such directory")
        if not root.is_dir():
            raise DataError(f"folder '{label}': expected a directory, got a file")
        files = list_images(root, label)
        if not files:
            raise DataError(
                f"folder '{label}': no image files (looked recursively for "
                f"{', '.join('*' + ext for ext in EXTENSIONS)}, any case)"
            )
        headers = [header(path) for path in files]
        #: Images left out because they are smaller than the size (``small=skip``).
        self.skipped = self._small_images(files, [dims for dims, _ in headers])
        left_out = set(self.skipped)
        kept = [k for k, path in enumerate(files) if path not in left_out]
        self.files = [files[k] for k in kept]
        #: Images with transparency (dropped when read; see the module docstring).
        self.transparent = warn_transparency(self.files, root, label, [headers[k][1] for k in kept])

    def _small_images(
        self, files: Sequence[Path], sizes: Sequence[tuple[int, int] | None]
    ) -> list[Path]:
        """The files whose header says they are smaller than the size, handled as ``small``
        says: listed (to skip, with one warning line), refused, or kept (upscaled)."""
        small = [
            path for path, dims in zip(files, sizes) if dims is not None and min(dims) < self.size
        ]
        if not small or self.small == "upscale":
            return []
        example = small[0].relative_to(self.root).as_posix()
        what = (
            f"{len(small)} of {len(files)} images are smaller than {self.size}x{self.size} "
            f"(shorter side below --size {self.size}), e.g. '{example}'"
        )
        if self.small == "error" or len(small) == len(files):
            hint = "choose a smaller --size, or add small=upscale to the data set to enlarge them"
            if self.small == "error":
                hint += " (folder:path=PATH,small=upscale), or small=skip to leave them out"
            raise DataError(f"folder '{self.label}': {what}; {hint}")
        _warn_once(
            ("small", str(self.root.resolve()), str(self.size), str(len(small))),
            f"folder '{self.label}': {what}; skipped (small=upscale enlarges them, small=error "
            "stops instead)",
        )
        return small

    def __len__(self) -> int:
        return len(self.files)

    def fingerprint(self) -> str:
        """Resolved folder, size, and each file's relative path, resolved path, size and mtime
        (under ``--verify-data``: its content hash instead of size and mtime).

        Hashed; the resolved paths make the same relative folder name from two working
        directories, or a symbolic link pointed elsewhere, two different data sets.
        """
        content = verify_data()
        digest = hashlib.sha256(f"{self.root.resolve()}|{self.size}".encode())
        for path in self.files:
            relative = path.relative_to(self.root).as_posix()
            try:
                resolved = path.resolve(strict=True)
                if content:
                    state = file_digest(path)
                else:
                    stat = path.stat()
                    state = f"{stat.st_size}|{stat.st_mtime_ns}"
            except OSError as exc:
                raise DataError(
                    f"folder '{self.label}': cannot read image '{relative}' ({exc.strerror or exc})"
                ) from exc
            digest.update(f"|{relative}|{resolved}|{state}".encode())
        kind = "contents" if content else "files"
        return f"code {source_hash(self)}; {kind} {len(self.files)} {digest.hexdigest()[:16]}"

    @property
    def image_size(self) -> tuple[int, int]:
        return self.size, self.size

    def read(self, index: int) -> np.ndarray:
        """Image ``index`` as ``uint8 (size, size, 3)`` RGB.

        Refused with a one-line :class:`DataError` naming the file: unreadable, undecodable,
        a JPEG with any libjpeg warning (corrupt or truncated data), more than the pixel limit
        (checked from the header before decoding when Pillow can read it, else right after
        decoding), or smaller than the size when its header did not say so (``small=skip`` or
        ``error``).
        """
        path = self.files[index]
        relative = path.relative_to(self.root).as_posix()
        where = f"folder '{self.label}': image '{relative}'"
        try:
            encoded = path.read_bytes()
        except OSError as exc:
            raise DataError(
                f"folder '{self.label}': cannot read image '{relative}' ({exc.strerror or exc})"
            ) from exc
        if encoded[:3] == _JPEG_MAGIC:
            header_size(encoded, where)  # the limit, before the check decodes
            problem = check_jpeg(encoded)
            if problem is not None:
                raise DataError(f"{where} {problem}")
        # IMREAD_COLOR gives 8-bit BGR: alpha dropped, grey repeated, 16-bit scaled, EXIF applied;
        # decode checks the limit from the header before decoding
        image = decode(encoded, cv2.IMREAD_COLOR, where)
        if image is None:
            raise DataError(
                f"folder '{self.label}': cannot decode image '{relative}' (corrupt or unsupported)"
            )
        check_pixels(image.shape[1], image.shape[0], where)
        if min(image.shape[:2]) < self.size and self.small != "upscale":
            raise DataError(
                f"{where} is {image.shape[1]}x{image.shape[0]}, smaller than --size {self.size} "
                "(its header did not say so, so it was not skipped); add small=upscale or "
                "remove it"
            )
        # channel order last: the resize treats channels alike, and the small image is cheaper
        return cv2.cvtColor(centre_crop_and_resize(image, self.size), cv2.COLOR_BGR2RGB)

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
    small: str = "skip",
    split: str = "test",
    size: int | None = None,
    data_dir: str | Path | None = None,
) -> FolderDataset:
    """The images under ``path`` as ``size × size`` RGB (default 128); one split for both.

    A relative ``path`` is taken from the working directory; ``data_dir`` is unused.
    ``small=skip|error|upscale``: what to do with images smaller than the size.
    """
    if path is None or str(path) == "":
        raise UsageError("folder: expected a directory, as folder:PATH or folder:path=PATH")
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    if small not in SMALL_POLICIES:
        raise UsageError(f"folder: small must be one of {', '.join(SMALL_POLICIES)}, got {small!r}")
    side = resolve_size(size, DEFAULT_SIZE, "folder")
    return FolderDataset(Path(str(path)).expanduser(), side, split, str(path), small)
