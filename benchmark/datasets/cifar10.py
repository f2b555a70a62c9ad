"""``cifar10``: CIFAR-10 from its standard python-pickle release.

The data live in a folder ``cifar-10-batches-py`` (``data_batch_1`` .. ``data_batch_5``,
``test_batch``, ``batches.meta``) or in the archive ``cifar-10-python.tar.gz`` holding it.
``data_dir`` is searched for either (the folder may also be ``data_dir`` itself); an archive is
extracted next to itself. With ``download=True`` and neither present, the archive is fetched
from the official URL, checked against its MD5 and extracted.

Batches are pickles; they are read without unpickling (:mod:`pickle_reader` walks the opcodes
and runs nothing), so a file placed in ``data_dir`` can neither run code nor make numpy build
an array of another dtype or of more bytes than the file holds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import cv2
import numpy as np

from benchmark.datasets.base import DATASETS, SPLITS, TensorDataset, resolve_size
from benchmark.datasets.pickle_reader import Call, Global, PickleFormatError, read_plain_pickle
from benchmark.errors import DataError, UsageError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
FILES = (*BATCHES["train"], *BATCHES["test"], "batches.meta")
NATIVE_SIZE = 32
DEFAULT_DATA_DIR = "./data"

#: Images in one official batch; a batch may hold fewer (tests, subsets), never more.
MAX_BATCH_IMAGES = 10_000
ROW_BYTES = 3 * NATIVE_SIZE * NATIVE_SIZE
#: Largest batch file read: an official batch is 31 MB (46 MB when re-pickled by Python 3,
#: which stores the pixel bytes as UTF-8 text).
MAX_BATCH_FILE_BYTES = 128 * 1024 * 1024
NUM_CLASSES = 10
_RECONSTRUCT_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
#: The state numpy pickles for ``dtype('u1')``: version 3, no byte order, no fields, no flags.
_UINT8_DTYPE_STATE = (3, "|", None, None, None, -1, -1, 0)


def _text(value: object) -> str | None:
    """A pickled ``str`` (Python 3) or ``bytes`` (Python 2 ``str``) as text; else None."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else None


def _is_global(value: object, modules: tuple[str, ...], name: str) -> bool:
    return isinstance(value, Global) and value.module in modules and value.name == name


def _uint8_dtype(node: object) -> str | None:
    """None if ``node`` is numpy's pickled ``dtype('u1')`` exactly, else what it is."""
    if not isinstance(node, Call) or not _is_global(node.func, ("numpy",), "dtype"):
        return "not a numpy dtype"
    if len(node.args) != 3 or _text(node.args[0]) is None:
        return "a malformed dtype"
    kind = _text(node.args[0])
    if kind != "u1":
        return f"dtype {kind}"
    state = node.state
    if not isinstance(state, tuple) or len(state) != len(_UINT8_DTYPE_STATE):
        return "dtype u1 with an unexpected state"
    plain = tuple(_text(v) if isinstance(v, bytes) else v for v in state)
    if plain != _UINT8_DTYPE_STATE:  # e.g. made-up flags that would turn it into object pointers
        return "dtype u1 with unexpected flags or fields"
    return None


def _array_bytes(node: object, where: str) -> tuple[int, bytes]:
    """``(rows, raw bytes)`` of a pickled C-order ``uint8 (rows, 3072)`` numpy array.

    Only the description is read; numpy never rebuilds the array from the file, so no object,
    structured or oversized array can arise. The byte count must equal the declared shape.
    """
    expected = "expected uint8 (N, 3072) data"
    if not isinstance(node, Call) or not _is_global(
        node.func, _RECONSTRUCT_MODULES, "_reconstruct"
    ):
        raise DataError(f"{where}: {expected}, got {type(node).__name__}")
    if not node.has_state:  # numpy would hand back uninitialised memory of the declared shape
        raise DataError(f"{where}: {expected}, got an array without its pixel bytes")
    args, state = node.args, node.state
    if (
        len(args) != 3
        or not _is_global(args[0], ("numpy",), "ndarray")
        or args[1] != (0,)
        or _text(args[2]) != "b"
        or not isinstance(state, tuple)
        or len(state) != 5
        or state[0] != 1
    ):
        raise DataError(f"{where}: {expected}, got a malformed numpy array")
    _, shape, dtype, fortran, raw = state
    problem = _uint8_dtype(dtype)
    if problem is not None:
        raise DataError(f"{where}: {expected}, got {problem}")
    if (
        not isinstance(shape, tuple)
        or len(shape) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in shape)
    ):
        raise DataError(f"{where}: {expected}, got shape {_describe(shape)}")
    rows, columns = shape
    if columns != ROW_BYTES or not 1 <= rows <= MAX_BATCH_IMAGES:
        raise DataError(f"{where}: {expected} with 1 <= N <= {MAX_BATCH_IMAGES}, got shape {shape}")
    if fortran not in (0, False):
        raise DataError(f"{where}: {expected} in C order, got Fortran order")
    if not isinstance(raw, bytes) or len(raw) != rows * columns:
        got = len(raw) if isinstance(raw, bytes) else type(raw).__name__
        raise DataError(
            f"{where}: shape {shape} needs {rows * columns} bytes of pixels, the file holds {got}"
        )
    return rows, raw


def _describe(value: object) -> str:
    """A short description of a pickled value (never a deep repr)."""
    if isinstance(value, tuple) and len(value) <= 4 and all(isinstance(v, int) for v in value):
        return repr(value)
    return type(value).__name__


def _labels(value: object, rows: int, where: str) -> np.ndarray:
    """The class labels: a list of ``rows`` integers in 0..9."""
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise DataError(f"{where}: expected labels as a list of integers, got {_describe(value)}")
    if len(value) != rows:
        raise DataError(f"{where}: expected {rows} labels (one per image), got {len(value)}")
    if not all(0 <= v < NUM_CLASSES for v in value):
        bad = next(v for v in value if not 0 <= v < NUM_CLASSES)
        raise DataError(f"{where}: labels must lie in 0..{NUM_CLASSES - 1}, got {bad}")
    return np.array(value, dtype=np.int64)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 (N, 32, 32, 3)`` and labels ``int64 (N,)`` of one CIFAR-10 batch file.

    The pickle is read by :func:`read_plain_pickle`, which runs nothing from the file. The
    batch must be a dict with ``data``, a C-order ``uint8 (N, 3072)`` array whose bytes are all
    in the file (``1 <= N <= 10,000``), and ``labels``, a list of ``N`` integers in 0..9.
    """
    where = f"CIFAR-10 batch '{path}'"
    try:
        size = path.stat().st_size
        if size > MAX_BATCH_FILE_BYTES:
            raise DataError(
                f"{where}: {size} bytes, larger than any CIFAR-10 batch "
                f"(limit {MAX_BATCH_FILE_BYTES})"
            )
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(
            f"{where} is missing (a complete {FOLDER} holds {', '.join(FILES)})"
        ) from exc
    except OSError as exc:
        raise DataError(f"cannot read {where}: {exc.strerror or exc}") from exc
    try:
        batch = read_plain_pickle(raw)
    except PickleFormatError as exc:
        raise DataError(f"{where} is truncated or corrupt ({exc})") from exc
    if not isinstance(batch, dict):
        raise DataError(f"{where}: expected a dict, got {type(batch).__name__}")
    batch = {_text(k) if isinstance(k, (str, bytes)) else k: v for k, v in batch.items()}
    for key in ("data", "labels"):
        if key not in batch:
            raise DataError(f"{where}: missing key b'{key}'")
    rows, pixels = _array_bytes(batch["data"], where)
    labels = _labels(batch["labels"], rows, where)
    # Each row holds the R, G and B planes, each 32 rows of 32 pixels.
    data = np.frombuffer(pixels, dtype=np.uint8).reshape(rows, 3, NATIVE_SIZE, NATIVE_SIZE)
    return np.ascontiguousarray(data.transpose(0, 2, 3, 1)), labels


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
    counts = {len(labels) for _, labels in batches}
    if len(counts) > 1:
        raise DataError(
            f"CIFAR-10 in '{folder}': the {split} batches hold different numbers of images "
            f"({', '.join(str(len(labels)) for _, labels in batches)}); expected equal batches"
        )
    pixels = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    if size is not None and size != NATIVE_SIZE:
        pixels = resize(pixels, size)
    return Cifar10(pixels, split, labels)
