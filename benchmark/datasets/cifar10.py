"""``cifar10``: CIFAR-10 from its standard python-pickle release.

The data live in a folder ``cifar-10-batches-py`` (``data_batch_1`` .. ``data_batch_5``,
``test_batch``, ``batches.meta``) or in the archive ``cifar-10-python.tar.gz`` holding it.
``data_dir`` is searched for either (the folder may also be ``data_dir`` itself); an archive is
extracted next to itself. With ``download=True`` and neither present, the archive is fetched
from the official URL, checked against its MD5 and extracted.

Batches are read with a restricted unpickler that only rebuilds numpy arrays, so a file placed
in ``data_dir`` cannot run code.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmark.datasets.base import DATASETS, SPLITS, TensorDataset, resolve_size
from benchmark.errors import DataError, UsageError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
FILES = (*BATCHES["train"], *BATCHES["test"], "batches.meta")
NATIVE_SIZE = 32
DEFAULT_DATA_DIR = "./data"

# The only globals a CIFAR-10 batch needs: numpy array reconstruction and, for files pickled
# by Python 3 at protocol 2, the bytes helper ``_codecs.encode``.
_RECONSTRUCT = np.zeros(1).__reduce__()[0]
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}") from None


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 (N, 32, 32, 3)`` and labels ``int64 (N,)`` of one CIFAR-10 batch file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(
            f"CIFAR-10 batch '{path}' is missing (a complete {FOLDER} holds {', '.join(FILES)})"
        ) from exc
    except OSError as exc:
        raise DataError(f"cannot read CIFAR-10 batch '{path}': {exc.strerror or exc}") from exc
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # unpickling can fail in many ways; all mean a damaged file
        raise DataError(
            f"CIFAR-10 batch '{path}' is truncated or corrupt ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(batch, dict):
        raise DataError(f"CIFAR-10 batch '{path}': expected a dict, got {type(batch).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    for key in ("data", "labels"):
        if key not in batch:
            raise DataError(f"CIFAR-10 batch '{path}': missing key b'{key}'")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"CIFAR-10 batch '{path}': expected uint8 (N, 3072) data, got {got}")
    if data.shape[1] != 3 * NATIVE_SIZE * NATIVE_SIZE:
        raise DataError(f"CIFAR-10 batch '{path}': expected (N, 3072) data, got {data.shape}")
    labels = np.asarray(batch["labels"])
    if labels.shape != (len(data),):
        raise DataError(
            f"CIFAR-10 batch '{path}': expected {len(data)} labels, got shape {labels.shape}"
        )
    # Each row holds the R, G and B planes, each 32 rows of 32 pixels.
    images = data.reshape(-1, 3, NATIVE_SIZE, NATIVE_SIZE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def find_folder(data_dir: Path) -> Path | None:
    """The ``cifar-10-batches-py`` folder in ``data_dir`` (or ``data_dir`` itself), if any."""
    if (data_dir / FOLDER).is_dir():
        return data_dir / FOLDER
    if any((data_dir / name).is_file() for name in FILES):
        return data_dir
    return None


def extract(archive: Path, data_dir: Path) -> Path:
    """Extract the batch files of ``archive`` into ``data_dir/cifar-10-batches-py``.

    Only the known file names are written, to paths built here, so member names cannot escape
    ``data_dir``. The folder appears atomically (extracted to a temporary folder, then renamed).
    """
    target = data_dir / FOLDER
    wanted = {f"{FOLDER}/{name}": name for name in FILES}
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{FOLDER}-", dir=data_dir))
    except OSError as exc:
        raise DataError(f"cannot extract '{archive}' into '{data_dir}': {exc}") from exc
    try:
        found: set[str] = set()
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:
                    name = wanted.get(member.name.removeprefix("./"))
                    if name is None or not member.isfile():
                        continue
                    source = tar.extractfile(member)
                    if source is None:
                        continue
                    with source, open(tmp / name, "wb") as out:
                        shutil.copyfileobj(source, out)
                    found.add(name)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise DataError(f"cannot extract '{archive}': truncated or corrupt ({exc})") from exc
        missing = [f"{FOLDER}/{name}" for name in FILES if name not in found]
        if missing:
            raise DataError(f"archive '{archive}' lacks {', '.join(missing)}")
        try:
            tmp.rename(target)
        except OSError:
            if not target.is_dir():  # else another process extracted it first: use theirs
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def fetch_archive(data_dir: Path, url: str = URL, md5: str = MD5) -> Path:
    """Download the CIFAR-10 archive into ``data_dir`` (atomically) and check its MD5."""
    from tqdm import tqdm

    archive = data_dir / ARCHIVE
    hint = f"put {FOLDER} or {ARCHIVE} in {data_dir}"
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{ARCHIVE}-", dir=data_dir)
    except OSError as exc:
        raise DataError(f"cannot write the download to '{data_dir}': {exc}") from exc
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5()
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(
                    total=total, unit="B", unit_scale=True, desc=ARCHIVE, disable=None
                ) as bar:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        except OSError as exc:  # URLError, HTTPError, timeouts and resets are all OSErrors
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise DataError(f"cannot download {url} (network error: {reason}); {hint}") from exc
        if digest.hexdigest() != md5:
            raise DataError(
                f"downloaded {url} has MD5 {digest.hexdigest()}, expected {md5} "
                f"(corrupt or incomplete download; try again or {hint})"
            )
        tmp.replace(archive)
    finally:
        tmp.unlink(missing_ok=True)
    return archive


def locate(data_dir: Path, allow_download: bool) -> Path:
    """The batch folder under ``data_dir``, extracting or downloading the archive if needed."""
    folder = find_folder(data_dir)
    if folder is not None:
        return folder
    archive = data_dir / ARCHIVE
    if not archive.is_file():
        if not allow_download:
            raise DataError(
                f"CIFAR-10 not found: expected {data_dir / FOLDER} or {archive} "
                "(download=false; pass download=true to fetch it)"
            )
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create data directory '{data_dir}': {exc}") from exc
        archive = fetch_archive(data_dir, URL, MD5)
    return extract(archive, data_dir)


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Resize ``uint8 (N, H, W, 3)`` images to ``size``² (area when shrinking, else cubic)."""
    interpolation = cv2.INTER_AREA if size < images.shape[1] else cv2.INTER_CUBIC
    out = np.empty((len(images), size, size, 3), np.uint8)
    for i, image in enumerate(images):
        out[i] = cv2.resize(image, (size, size), interpolation=interpolation)
    return out


class Cifar10(TensorDataset):
    """CIFAR-10 images in memory, with their class ``labels`` (0-9)."""

    def __init__(self, pixels: np.ndarray, split: str, labels: np.ndarray) -> None:
        super().__init__(pixels, split)
        self.labels = labels


@DATASETS.register("cifar10")
def cifar10(
    *,
    split: str = "test",
    size: int | None = None,
    data_dir: str | Path | None = None,
    download: bool = True,
) -> Cifar10:
    """CIFAR-10 ``train`` (50,000 images, batches 1-5 in order) or ``test`` (10,000).

    ``size`` other than 32 resizes every image (staying 8-bit); ``data_dir`` defaults to
    ``./data``; ``download`` fetches the archive when neither form is found there.
    """
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    size = resolve_size(size, None, "cifar10")
    if not isinstance(download, bool):
        raise UsageError(f"cifar10: expected download=true or download=false, got {download!r}")
    root = Path(DEFAULT_DATA_DIR if data_dir is None else data_dir).expanduser()
    folder = locate(root, download)
    batches = [read_batch(folder / name) for name in BATCHES[split]]
    pixels = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    if size is not None and size != NATIVE_SIZE:
        pixels = resize(pixels, size)
    return Cifar10(pixels, split, labels)
