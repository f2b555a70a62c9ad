"""``places365``: the Places365-Standard validation images as distributed, and the reader of
published layouts that ``celebahq`` and ``ffhq`` share.

Layout (``--data-dir DIR``): ``DIR/val_large/Places365_val_00000001.jpg`` .. ``00036500.jpg``
(``variant=large``: shorter side 512, aspect kept) or ``DIR/val_256/`` (``variant=256``: 256x256);
``DIR`` may also be that folder itself. ``sample=N`` takes N of the 36,500 images in the order of
a permutation fixed by seed 0, so image ``i`` of a run is the ``i``-th of that order and
``--limit`` takes a random subset. ``download=true`` fetches ``val_large.tar`` (2.1 GB) or
``val_256.tar`` from the Places2 site and checks its MD5 (the sums torchvision publishes).

The shared reader (:class:`ListedImages`) takes a fixed list of files, refuses with one line if
any is missing (saying what is missing and how to get it), decodes each with Pillow (no EXIF
rotation, as LaMa reads them) and applies the crop rule of :func:`scale_and_crop`: the shorter
side scaled to the size with Pillow's bicubic filter, as LaMa's ``bin/gen_mask_dataset.py`` does,
then the centred square. Its fingerprint hashes every file's path, size and modification time
and the list of names, so results record exactly which files they measured.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.datasets.base import DATASETS, Dataset, resolve_size
from benchmark.errors import DataError, UsageError
from benchmark.fingerprint import source_hash
from benchmark.images import from_uint8_hwc
from benchmark.lazy import lazy_module

if TYPE_CHECKING:
    import cv2
    import numpy as np
    import torch
else:  # imported on first use: ``list`` and ``--help`` never need them
    cv2 = lazy_module("cv2")
    np = lazy_module("numpy")
    torch = lazy_module("torch")

VAL_COUNT = 36_500
FILE_NAME = "Places365_val_{:08d}.jpg"
#: variant -> (folder, native side, archive, its MD5 as torchvision's Places365 lists it)
VARIANTS: dict[str, tuple[str, int, str, str]] = {
    "large": ("val_large", 512, "val_large.tar", "9b71c4993ad89d2d8bcbdc4aef38042f"),
    "256": ("val_256", 256, "val_256.tar", "e27b17d8d44f4af9a78502beb927f808"),
}
BASE_URL = "http://data.csail.mit.edu/places/places365/"
LICENCE = "Places365 is for non-commercial research and education: never redistribute or commit it"
_JPEG_MAGIC = b"\xff\xd8\xff"


def scale_and_crop(image: Any, size: int) -> np.ndarray:
    """A Pillow RGB ``image`` with its shorter side scaled to ``size`` (bicubic, lengths rounded
    as LaMa rounds them) and the centred ``size x size`` square cut out, as ``uint8 (H, W, 3)``."""
    from PIL import Image

    width, height = image.size
    factor = size / min(width, height)
    scaled = (round(width * factor), round(height * factor))
    if scaled != (width, height):
        image = image.resize(scaled, resample=Image.BICUBIC)
    left, top = (scaled[0] - size) // 2, (scaled[1] - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def read_scaled(path: Path, size: int, where: str) -> np.ndarray:
    """File ``path`` decoded to RGB and brought to ``size`` by :func:`scale_and_crop`.

    Unreadable, undecodable, corrupt (any libjpeg warning) or oversized files are one-line
    :class:`DataError` s starting with ``where``.
    """
    from PIL import Image

    from benchmark.datasets.folder import check_jpeg
    from benchmark.images import check_pixels, header_size

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{where}: cannot read ({exc.strerror or exc})") from exc
    header_size(data, where)  # the pixel limit, before anything is decoded
    if data[:3] == _JPEG_MAGIC:
        problem = check_jpeg(data)
        if problem is not None:
            raise DataError(f"{where} {problem}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            check_pixels(image.size[0], image.size[1], where)
            rgb = image.convert("RGB")
    except DataError:
        raise
    except Exception as exc:  # Pillow's errors for broken files vary by format
        raise DataError(f"{where}: cannot decode ({type(exc).__name__}: {exc})") from exc
    return scale_and_crop(rgb, size)


def missing_files(files: Sequence[Path]) -> list[Path]:
    """The files of ``files`` that do not exist (one directory listing per folder)."""
    listed: dict[Path, set[str]] = {}
    missing = []
    for path in files:
        folder = path.parent
        if folder not in listed:
            try:
                listed[folder] = {e.name for e in os.scandir(folder) if e.is_file()}
            except OSError:
                listed[folder] = set()
        if path.name not in listed[folder]:
            missing.append(path)
    return missing


class ListedImages(Dataset):
    """The files ``files`` under ``root`` in index order, as ``size x size`` RGB images."""

    def __init__(
        self, root: Path, files: Sequence[Path], size: int, split: str, label: str, get: str
    ) -> None:
        self.root = root
        self.files = list(files)
        self.size = size
        self.split = split
        self.label = label
        missing = missing_files(self.files)
        if missing:
            first = missing[0].relative_to(root).as_posix()
            raise DataError(
                f"{label}: {len(missing):,} of the {len(self.files):,} images are missing "
                f"(first: {first}); {get}"
            )
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.files)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.size, self.size

    def fingerprint(self) -> str:
        """Code, folder, size, the list of names, and each file's size and modification time."""
        if self._fingerprint is None:
            names = hashlib.sha256()
            stats = hashlib.sha256(f"{self.root.resolve()}|{self.size}".encode())
            for path in self.files:
                relative = path.relative_to(self.root).as_posix()
                names.update(f"{relative}\n".encode())
                try:
                    stat = path.stat()
                except OSError as exc:
                    raise DataError(f"{self.label}: cannot read '{relative}' ({exc})") from exc
                stats.update(f"|{relative}|{stat.st_size}|{stat.st_mtime_ns}".encode())
            self._fingerprint = (
                f"code {source_hash(self)}; list {len(self.files)} {names.hexdigest()[:16]}; "
                f"files {stats.hexdigest()[:16]}"
            )
        return self._fingerprint

    def read(self, index: int) -> np.ndarray:
        path = self.files[index]
        where = f"{self.label}: image '{path.relative_to(self.root).as_posix()}'"
        return read_scaled(path, self.size, where)

    def images(self, indices: Sequence[int]) -> torch.Tensor:
        if len(indices) == 0:
            return torch.empty((0, 3, self.size, self.size))
        threads = min(len(indices), max(1, cv2.getNumThreads()))
        if threads > 1:  # Pillow decodes and resizes without the GIL
            with ThreadPoolExecutor(threads, thread_name_prefix="inpaint-bench-decode") as pool:
                batch = np.stack(list(pool.map(self.read, [int(i) for i in indices])))
        else:
            batch = np.stack([self.read(int(i)) for i in indices])
        return from_uint8_hwc(batch)


# -- Places365 ------------------------------------------------------------------------------
def sample_order(sample: int | None) -> list[int]:
    """0-based image numbers in index order: all 36,500, or ``sample`` of a fixed permutation."""
    if sample is None:
        return list(range(VAL_COUNT))
    return np.random.default_rng([0, 365]).permutation(VAL_COUNT)[:sample].tolist()


def find_folder(data_dir: Path, folder: str) -> Path | None:
    """``data_dir/folder``, or ``data_dir`` itself when it is that folder; None if neither."""
    if (data_dir / folder).is_dir():
        return data_dir / folder
    if data_dir.name == folder or (data_dir / FILE_NAME.format(1)).is_file():
        return data_dir
    return None


def _how_to_get(variant: str, data_dir: Path) -> str:
    folder, _, archive, md5 = VARIANTS[variant]
    return (
        f"get {archive} ({BASE_URL}{archive}, MD5 {md5}) and unpack it into {data_dir} (it "
        f"holds {folder}/), or pass download=true; {LICENCE}"
    )


def _check(variant: str, sample: int | None, download: bool) -> None:
    if variant not in VARIANTS:
        raise UsageError(f"places365: unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    if sample is not None and (
        isinstance(sample, bool) or not isinstance(sample, int) or not 1 <= sample <= VAL_COUNT
    ):
        raise UsageError(f"places365: sample must be a whole number 1..{VAL_COUNT}, got {sample!r}")
    if not isinstance(download, bool):
        raise UsageError(f"places365: download must be true or false, got {download!r}")


def planned_files(params: dict[str, Any], split: str, data_dir: str | Path | None) -> list[Path]:
    """The files ``places365:<params>`` reads from ``data_dir``, present or not."""
    variant = str(params.get("variant", "large"))  # variant=256 parses as a number
    _check(variant, params.get("sample"), params.get("download", False))
    if data_dir is None:
        raise UsageError("places365: give --data-dir, the folder holding val_large/ or val_256/")
    root = find_folder(Path(data_dir).expanduser(), VARIANTS[variant][0])
    if root is None:
        raise DataError(f"places365: no {VARIANTS[variant][0]}/ in {data_dir}")
    return [root / FILE_NAME.format(k + 1) for k in sample_order(params.get("sample"))]


@DATASETS.register("places365")
def places365(
    *,
    variant: str = "large",
    sample: int | None = None,
    download: bool = False,
    split: str = "test",
    size: int | None = None,
    data_dir: str | Path | None = None,
) -> ListedImages:
    """Places365-Standard validation images (36,500; ``sample=N`` takes N in a fixed order).

    ``variant=large`` reads val_large/ (shorter side 512), ``256`` val_256/; ``size`` defaults
    to that side. One split: ``train`` gives the same images, and training on them is refused
    (protocols evaluate on them).
    """
    variant = str(variant)  # variant=256 parses as a number
    _check(variant, sample, download)
    folder, native, archive, md5 = VARIANTS[variant]
    side = resolve_size(size, native, "places365")
    if data_dir is None:
        raise UsageError(f"places365: give --data-dir, the folder holding {folder}/")
    base = Path(data_dir).expanduser()
    root = find_folder(base, folder)
    if root is None:
        if not download:
            raise DataError(f"places365: no {folder}/ in {base}; {_how_to_get(variant, base)}")
        fetch_and_unpack(BASE_URL + archive, base, archive, md5)
        root = base / folder
    files = [root / FILE_NAME.format(k + 1) for k in sample_order(sample)]
    label = f"places365 {folder} in '{data_dir}'"
    return ListedImages(root, files, side, split, label, _how_to_get(variant, base))


def fetch_and_unpack(url: str, data_dir: Path, archive: str, md5: str) -> None:
    """Download ``url`` into ``data_dir/archive`` with a progress bar, check its MD5 and unpack
    it there (members outside ``data_dir`` refused); one-line DataErrors for what goes wrong."""
    from tqdm import tqdm

    target = data_dir / archive
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        if not target.is_file():
            fd, tmp_name = tempfile.mkstemp(prefix=f".{archive}-", dir=data_dir)
            tmp = Path(tmp_name)
            try:
                digest = hashlib.md5()
                with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
                    total = int(resp.headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=archive) as bar:
                        while chunk := resp.read(1 << 20):
                            out.write(chunk)
                            digest.update(chunk)
                            bar.update(len(chunk))
                if digest.hexdigest() != md5:
                    raise DataError(
                        f"downloaded {url} has MD5 {digest.hexdigest()}, expected {md5} "
                        "(corrupt or incomplete download; try again)"
                    )
                tmp.replace(target)
            finally:
                tmp.unlink(missing_ok=True)
        with tarfile.open(target) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(data_dir, filter="data")
            else:  # Python without extraction filters: refuse unsafe members ourselves
                for member in tar.getmembers():
                    if (
                        member.name.startswith("/")
                        or ".." in Path(member.name).parts
                        or not (member.isfile() or member.isdir())
                    ):
                        raise DataError(f"{target}: unsafe member {member.name!r}; not unpacked")
                tar.extractall(data_dir)
    except urllib.error.URLError as exc:
        raise DataError(f"cannot download {url} ({exc.reason}); get it by hand") from exc
    except (OSError, tarfile.TarError) as exc:
        raise DataError(f"cannot fetch or unpack {archive} into {data_dir}: {exc}") from exc
