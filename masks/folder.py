"""Masks read from a folder of mask images, e.g. the NVIDIA irregular mask test set.

``folder:PATH`` (or ``folder:path=PATH,invert=true,order=sorted``). Files are found like images
of the ``folder`` data set (PNG, JPEG, BMP, TIFF, WebP; recursive; hidden entries skipped) and
sorted by relative path. Each is read at its own bit depth with its EXIF orientation applied
(as images are), converted to grey, and binarised at half of full scale (> 127.5 of 255,
> 32767.5 of 65535, > 0.5 of 1.0 for float files; a float file holding NaN is refused): white
is the hole unless ``invert=true``. It is then resized to the image with nearest neighbour.
Files above the pixel limit (:func:`benchmark.images.max_pixels`) are refused from their
header, before decoding.

Image ``i`` gets file ``perm[i mod n]``, ``perm`` a permutation of the sorted list drawn from
(seed, name), so the first images of a run already cover every bin of a binned set;
``order=sorted`` uses the sorted list itself. With a hole-ratio range, image ``i`` gets the
``i``-th file in range met walking ``perm`` (cyclically, ``i mod m`` for ``m`` files in range),
so each file in range is used once before any repeats.

A file with no hole pixel or no known pixel at the image size (after binarising and resizing)
is skipped: the image takes the next usable file along ``perm``, and the skips are counted on
one warning line (see :mod:`benchmark.masking`). A folder with no usable file is an error.

Decoded masks are cached per (file, size) as packed bits (``np.packbits``: 32 KB at 512x512), at
most :data:`CACHE_BYTES` in all, least recently used dropped first: the 12,000 NVIDIA masks
(393 MB at 512x512) are read once per run, not once per method.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import OrderedDict, deque
from pathlib import Path

import cv2
import numpy as np

from benchmark.datasets.folder import list_images
from benchmark.errors import DataError, UsageError
from benchmark.images import file_digest, read_image, verify_data
from benchmark.masking import MASKS, MaskGenerator, RatioRange

ORDERS = ("permuted", "sorted")
#: Bound of the decoded-mask cache of one generator, in bytes of packed bits.
CACHE_BYTES = 1 << 30


@MASKS.register("folder")
class FolderMasks(MaskGenerator):
    """The mask files under ``path``; see the module docstring for the file-to-image mapping."""

    name = "folder"

    def __init__(self, path: str | None = None, invert: bool = False, order: str = "permuted"):
        if path is None or str(path) == "":
            raise UsageError(
                "mask folder: expected a directory, as folder:PATH or folder:path=PATH"
            )
        if not isinstance(invert, bool):
            raise ValueError(f"invert must be true or false, got {invert!r}")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
        root = Path(str(path)).expanduser()
        self._label = str(path)
        if not root.is_dir():
            problem = "expected a directory, got a file" if root.exists() else "no such directory"
            raise DataError(f"mask folder '{self._label}': {problem}")
        self._root = root
        self._files = list_images(root)
        if not self._files:
            raise DataError(f"mask folder '{self._label}': no mask image files")
        self.path = str(root.resolve())
        self.invert = invert
        self.order = order
        self._digest = self._files_digest()
        self._cache: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._cache_bytes = 0
        self._ratios: dict[tuple[int, int, int], float] = {}
        self._walks: dict[tuple, tuple[deque[int], list[int]]] = {}

    def __len__(self) -> int:
        return len(self._files)

    def __getstate__(self) -> dict:
        """Pickled (e.g. for worker processes) without the decoded-mask cache."""
        state = self.__dict__.copy()
        state.update(_cache=OrderedDict(), _cache_bytes=0)
        return state

    def _files_digest(self) -> str:
        content = verify_data()
        digest = hashlib.sha256()
        for path in self._files:
            if content:
                state = file_digest(path)
            else:
                stat = path.stat()
                state = f"{stat.st_size}|{stat.st_mtime_ns}"
            relative = path.relative_to(self._root).as_posix()
            digest.update(f"{relative}|{state}|".encode())
        return ("contents " if content else "") + digest.hexdigest()[:16]

    def fingerprint(self) -> str:
        """Code, parameters (resolved folder included) and every file's path, size and mtime
        (under ``--verify-data``: its content hash)."""
        return f"{super().fingerprint()}; files {len(self._files)} {self._digest}"

    # -- file to image ------------------------------------------------------------------------
    def permutation(self, seed: int) -> np.ndarray:
        """File numbers in the order images take them for ``seed``."""
        if self.order == "sorted":
            return np.arange(len(self._files))
        return np.random.default_rng([seed, zlib.crc32(self.name.encode())]).permutation(
            len(self._files)
        )

    skip_rule = "each image takes the next usable file instead"

    @property
    def title(self) -> str:
        return f"mask folder '{self._label}'"

    def mask(
        self, index: int, height: int, width: int, seed: int = 0, ratio: RatioRange | None = None
    ) -> np.ndarray:
        """The mask of image ``index``: file ``perm[index mod n]`` (the next usable one after
        it when it has no hole or no known pixel), or the ``index``-th usable file in range."""
        if ratio is None:
            return self._load(self._usable_from(index, height, width, seed), height, width)
        return self._load(self._in_range(index, height, width, seed, ratio), height, width)

    def _usable_from(self, index: int, height: int, width: int, seed: int) -> int:
        """The first usable file from ``perm[index mod n]`` on (cyclically); skips counted."""
        order = self.permutation(seed)
        count = len(self._files)
        counted = self.__dict__.setdefault("_counted", set())
        for step in range(count):
            file = int(order[(index + step) % count])
            problem = degenerate_reason_of(self._ratio(file, height, width))
            if problem is None:
                return file
            if (file, height, width) not in counted:  # each file counted once
                counted.add((file, height, width))
                self.skip(problem)
        raise DataError(
            f"mask folder '{self._label}': none of its {count} files has both a hole and a known "
            f"pixel at {height}x{width} after binarising ({'black' if self.invert else 'white'} "
            "= hole) and resizing"
        )

    def draw(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """A uniformly chosen file's mask (only for callers that bypass :meth:`mask`)."""
        return self._load(int(rng.integers(len(self._files))), height, width)

    def _in_range(self, index: int, height: int, width: int, seed: int, ratio: RatioRange) -> int:
        """File of the ``index``-th in-range mask along the permutation (walked lazily, once)."""
        low, high = ratio
        key = (seed, height, width, low, high)
        if key not in self._walks:
            self._walks[key] = (deque(int(f) for f in self.permutation(seed)), [])
        order, found = self._walks[key]
        while len(found) <= index and order:
            candidate = order.popleft()
            ratio_of = self._ratio(candidate, height, width)
            if degenerate_reason_of(ratio_of) is None and low <= ratio_of <= high:
                found.append(candidate)
        if len(found) > index:
            return found[index]
        if not found:
            raise UsageError(
                f"mask folder '{self._label}' cannot reach hole ratio {low:g}-{high:g} at "
                f"{height}x{width}: none of its {len(self._files)} files is in range"
            )
        return found[index % len(found)]

    # -- decoding -----------------------------------------------------------------------------
    def _ratio(self, file: int, height: int, width: int) -> float:
        key = (file, height, width)
        if key not in self._ratios:
            self._load(file, height, width)
        return self._ratios[key]

    def _load(self, file: int, height: int, width: int) -> np.ndarray:
        """File ``file`` as a ``bool (height, width)`` mask, from the cache when it is there."""
        key = (file, height, width)
        packed = self._cache.get(key)
        if packed is None:
            mask = self._decode(file, height, width)
            packed = np.packbits(mask)
            self._cache[key] = packed
            self._cache_bytes += packed.nbytes
            while self._cache_bytes > CACHE_BYTES and len(self._cache) > 1:
                self._cache_bytes -= self._cache.popitem(last=False)[1].nbytes
            self._ratios[key] = float(mask.mean())
            return mask
        self._cache.move_to_end(key)
        return np.unpackbits(packed, count=height * width).reshape(height, width).astype(bool)

    def _decode(self, file: int, height: int, width: int) -> np.ndarray:
        """File ``file`` as a ``bool (height, width)`` mask (degenerate ones included)."""
        path = self._files[file]
        where = f"mask folder '{self._label}': '{path.relative_to(self._root).as_posix()}'"
        try:
            path.stat()
        except OSError as exc:
            raise DataError(f"{where}: cannot read ({exc.strerror or exc})") from exc
        # any depth and colour, EXIF orientation applied as for images (IMREAD_UNCHANGED would
        # ignore it); alpha is dropped, grey comes from the colour channels
        image = read_image(path, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR, where)
        if image is None:
            raise DataError(f"{where}: cannot decode (corrupt or unsupported)")
        if image.ndim == 3:
            image = (
                cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.shape[2] == 3 else image[..., 0]
            )
        if image.dtype == np.uint8 or image.dtype == np.uint16:
            full_scale = float(np.iinfo(image.dtype).max)
        elif image.dtype.kind == "f":
            full_scale = 1.0
            if np.isnan(image).any():
                raise DataError(
                    f"{where}: holds NaN values; a mask must say hole or known for every pixel"
                )
        else:
            raise DataError(f"{where}: unsupported pixel type {image.dtype}")
        hole = image > full_scale / 2
        if self.invert:
            hole = ~hole
        if hole.shape != (height, width):
            resized = cv2.resize(
                hole.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST_EXACT
            )
            hole = resized > 0
        return hole


def degenerate_reason_of(ratio: float) -> str | None:
    """``"no hole"`` / ``"no known"`` for a hole ratio of 0 / 1, else None."""
    return "no hole" if ratio <= 0 else "no known" if ratio >= 1 else None
