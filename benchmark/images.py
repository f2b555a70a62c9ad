"""Image helpers shared by data sets, masks, methods, the run and the report: 8-bit <-> float
conversions, and the one pixel limit of every image the tool decodes.

**The pixel limit.** Every image file the tool reads (data-set images, mask files, predictions,
exported inputs, the images a report embeds) is checked against :func:`max_pixels` from its
header (Pillow reads only the header at open) before it is decoded, and once more after
decoding for formats whose header Pillow cannot read. The limit is
:data:`DEFAULT_MAX_PIXELS` unless the environment variable :data:`MAX_PIXELS_ENV` says
otherwise; ``run --max-pixels N`` sets that variable for the run and the worker processes it
starts (see :func:`set_max_pixels`).

**Content hashes of data.** :func:`verify_data` (``--verify-data``, or :data:`VERIFY_DATA_ENV`
set to 1) makes the data sets that read files fingerprint each file's content instead of its
size and modification time; :func:`file_digest` is that hash.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.errors import DataError, UsageError
from benchmark.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import torch
else:  # imported on first use: ``list`` and ``--help`` never need them
    np = lazy_module("numpy")
    torch = lazy_module("torch")

#: Largest image accepted by default, in pixels (50 megapixels: 150 MB decoded at 8 bits).
DEFAULT_MAX_PIXELS = 50_000_000
#: Environment variable holding the pixel limit (inherited by worker processes).
MAX_PIXELS_ENV = "INPAINT_BENCH_MAX_PIXELS"
#: Environment variable: ``1`` makes data-set fingerprints hash file contents.
VERIFY_DATA_ENV = "INPAINT_BENCH_VERIFY_DATA"


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """``float (N, 3, H, W)`` in [0, 1] -> contiguous ``uint8 (N, H, W, 3)``, rounded."""
    scaled = images.detach().to("cpu").mul(255).round_().clamp_(0, 255).to(torch.uint8)
    return np.ascontiguousarray(scaled.permute(0, 2, 3, 1).numpy())


def from_uint8_hwc(images: np.ndarray) -> torch.Tensor:
    """``uint8 (N, H, W, 3)`` -> ``float32 (N, 3, H, W)`` in [0, 1]: ``value / 255``, exactly.

    >>> every = np.arange(256, dtype=np.uint8).reshape(1, 16, 8, 2)
    >>> planes = from_uint8_hwc(every)
    >>> planes.shape, planes.is_contiguous()
    (torch.Size([1, 2, 16, 8]), True)
    >>> torch.equal(planes, torch.from_numpy(every).permute(0, 3, 1, 2).float() / 255)
    True
    """
    n, h, w, c = images.shape
    planes = np.empty((n, c, h, w), np.float32)  # contiguous: what metrics read
    # one pass (a true division, correctly rounded: the values torch's ``div_(255)`` gives),
    # 1.7x faster than torch's strided copy and division
    np.divide(images.transpose(0, 3, 1, 2), np.float32(255), out=planes, dtype=np.float32)
    return torch.from_numpy(planes)


# -- settings ---------------------------------------------------------------------------------
def max_pixels() -> int:
    """The pixel limit of every decoded image: :data:`MAX_PIXELS_ENV`, else the default."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"{MAX_PIXELS_ENV}: expected a whole number of pixels >= 1, got {text!r}")
    return int(text)


def set_max_pixels(limit: int | None) -> None:
    """Set the pixel limit of this process and of the processes it starts (None: keep it)."""
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise UsageError(f"--max-pixels must be a whole number >= 1, got {limit!r}")
    os.environ[MAX_PIXELS_ENV] = str(limit)


def verify_data() -> bool:
    """Whether data-set fingerprints hash file contents (``--verify-data``)."""
    return os.environ.get(VERIFY_DATA_ENV, "").strip().lower() in ("1", "true", "yes")


def set_verify_data(enabled: bool) -> None:
    """Turn content hashing on for this process and those it starts (False: leave as is)."""
    if enabled:
        os.environ[VERIFY_DATA_ENV] = "1"


def file_digest(path: str | Path) -> str:
    """BLAKE2b (16 hex digits) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- the pixel limit ---------------------------------------------------------------------------
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def check_pixels(width: int, height: int, where: str) -> None:
    """Raise a one-line :class:`DataError` when ``width * height`` exceeds :func:`max_pixels`."""
    limit = max_pixels()
    if width * height > limit:
        raise DataError(f"{where} has {width}x{height} pixels, more than the limit of {limit:,}")


def header_size(source: str | Path | bytes, where: str) -> tuple[int, int] | None:
    """``(width, height)`` of an image from its header alone, checked against the limit.

    ``source`` is a file path or the file's bytes. A PNG's size comes from its IHDR chunk,
    any other format's from Pillow. Returns None when Pillow cannot read the header (the
    caller checks the decoded image instead); an image above the limit is a
    :class:`DataError` starting with ``where``, before anything is decoded.
    """
    import io

    data = isinstance(source, (bytes, bytearray, memoryview))
    size = _png_size(bytes(source[:24]) if data else _head(source))
    if size is not None and size[0] * size[1] <= max_pixels():
        return size  # a PNG within the limit, from its IHDR (Pillow's open takes 0.25 ms)

    from PIL import Image

    handle = io.BytesIO(source) if data else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(handle) as image:
                width, height = image.size
    except Image.DecompressionBombError as exc:  # beyond Pillow's own limit (179 MP)
        found = _BOMB_PIXELS.search(str(exc))
        pixels = int(found.group(1)) if found else None
        limit = max_pixels()
        if pixels is None or pixels > limit:
            shown = f"{pixels:,} pixels" if pixels else "more pixels than Pillow opens"
            raise DataError(f"{where} has {shown}, more than the limit of {limit:,}") from None
        return None
    except Exception:  # a format Pillow does not know, or a broken header: decoding tells
        return None
    check_pixels(width, height, where)
    return width, height


_PNG_START = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"


def _png_size(head: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the first 24 bytes of a PNG file (its IHDR chunk), else None.

    >>> _png_size(_PNG_START + (640).to_bytes(4, "big") + (480).to_bytes(4, "big"))
    (640, 480)
    >>> _png_size(b"GIF89a" + bytes(18)) is None
    True
    """
    if len(head) < 24 or not head.startswith(_PNG_START):
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _head(path: str | Path) -> bytes:
    """The first 24 bytes of a file (fewer when it is shorter or unreadable)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(24)
    except OSError:
        return b""


def decode(data: bytes | np.ndarray, flags: int, where: str) -> np.ndarray | None:
    """OpenCV's ``imdecode`` of a file's bytes under the pixel limit (header first, then the
    decoded size); None when OpenCV cannot decode it."""
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    if not raw:
        return None
    header_size(raw, where)
    return _decode_checked(raw, flags, where)


def read_image(path: str | Path, flags: int, where: str) -> np.ndarray | None:
    """:func:`decode` of the file ``path`` (its header checked before the file is read);
    None when it cannot be read or decoded."""
    header_size(path, where)
    try:
        raw = Path(path).read_bytes()
    except OSError:
        return None
    return _decode_checked(raw, flags, where) if raw else None


def _decode_checked(raw: bytes, flags: int, where: str) -> np.ndarray | None:
    import cv2

    pixels = cv2.imdecode(np.frombuffer(raw, np.uint8), flags)
    if pixels is not None:
        check_pixels(pixels.shape[1], pixels.shape[0], where)
    return pixels
