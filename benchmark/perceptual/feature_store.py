"""Inception features on disk: the method's, stored with the records of a run, and the real
images', cached once per data set, size, split, image count and feature variant.

**Method features** live in the run folder, ``features/<mode>/<sha256 prefix>.npy``, one file per
delivered batch (float32, ``(k, 2048)``); the file name is the hash of its content, so a file is
written once and never changes. A record refers to its row as ``"<mode>/<name>.npy#<row>"`` in
its ``features`` field. The file is written (atomically) before the records that refer to it,
so a resumed run never finds a record without its features; a reference that does not resolve
(a deleted, damaged or foreign file) makes the record count as not done, and the run measures it
again (a damaged file is then written anew).

**Real features** (:func:`real_features`) are cached under ``$INPAINT_BENCH_CACHE`` (default
``~/.cache/inpaint-bench``) in ``real-features/<key>.npy``, where ``key`` hashes the data set's
fingerprint, split, image size, the number of images and the feature stamp (mode, code hash,
weights' sha256): another data set, size, crop or weight file never reuses them.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import DataError
from benchmark.records import write_atomic

#: Features per image (Inception pool3).
DIMENSIONS = 2048
#: The run folder's features folder.
FOLDER = "features"
#: A record's feature reference: ``<mode>/<40 hex>.npy#<row>``; nothing else is ever opened.
REFERENCE = re.compile(r"^(pytorch-fid|clean)/([0-9a-f]{40})\.npy#(\d{1,9})$")
#: Images per batch when the real images' features are computed.
REAL_BATCH = 64


def _to_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _read(path: Path) -> np.ndarray:
    """A stored feature matrix, checked: float32, ``(k, 2048)``, finite."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"features file {str(path)!r} cannot be read: {exc}") from None
    if array.dtype != np.float32 or array.ndim != 2 or array.shape[1] != DIMENSIONS:
        raise DataError(
            f"features file {str(path)!r}: expected float32 (k, {DIMENSIONS}), got "
            f"{array.dtype} {array.shape}"
        )
    if not np.isfinite(array).all():
        raise DataError(f"features file {str(path)!r} holds values that are not finite")
    return array


class FeatureStore:
    """The method features of one run folder."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.root = Path(run_dir) / FOLDER
        self._files: dict[str, np.ndarray] = {}

    def write(self, mode: str, rows: np.ndarray) -> list[str]:
        """Store ``rows`` (``(k, 2048)``) of ``mode``; returns each row's reference."""
        array = np.ascontiguousarray(rows, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] != DIMENSIONS:
            raise ValueError(f"features: expected (k, {DIMENSIONS}) rows, got {array.shape}")
        data = _to_bytes(array)
        name = f"{hashlib.sha256(data).hexdigest()[:40]}.npy"
        path = self.root / mode / name
        if not path.is_file() or path.read_bytes() != data:  # absent, or damaged since
            write_atomic(path, data)
        self._files[f"{mode}/{name}"] = array
        return [f"{mode}/{name}#{row}" for row in range(len(array))]

    def _file(self, key: str) -> np.ndarray:
        if key not in self._files:
            self._files[key] = _read(self.root / key)
        return self._files[key]

    def resolves(self, reference: Any) -> bool:
        """``reference`` is well formed and its file reads as features with that row (each
        file is read once and kept for :meth:`rows`): a missing, damaged or foreign file makes
        the records that refer to it count as not done."""
        match = REFERENCE.match(reference) if isinstance(reference, str) else None
        if match is None:
            return False
        try:
            array = self._file(reference.split("#")[0])
        except DataError:
            return False
        return int(match.group(3)) < len(array)

    def rows(self, references: Sequence[str]) -> np.ndarray:
        """The feature rows of ``references``, ``(n, 2048)`` float32, in their order."""
        out = np.empty((len(references), DIMENSIONS), dtype=np.float32)
        for k, reference in enumerate(references):
            match = REFERENCE.match(reference) if isinstance(reference, str) else None
            if match is None:
                raise DataError(f"records: malformed feature reference {str(reference)[:80]!r}")
            array = self._file(reference.split("#")[0])
            row = int(match.group(3))
            if row >= len(array):
                raise DataError(f"records: feature reference {reference!r} is past its file")
            out[k] = array[row]
        return out


def cache_folder() -> Path:
    """Where real features are cached: ``$INPAINT_BENCH_CACHE`` or ``~/.cache/inpaint-bench``."""
    configured = os.environ.get("INPAINT_BENCH_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "inpaint-bench"


def real_key(data: dict[str, Any], stamp: str) -> str:
    """The cache key of a data set's real features (``data``: fingerprint, split, size, count)."""
    text = repr(sorted(data.items())) + "|" + stamp
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def real_features(
    data: dict[str, Any],
    stamp: str,
    count: int,
    images: Callable[[list[int]], Any],
    compute: Callable[[Any], np.ndarray],
    note: Callable[[str], None] | None = None,
) -> np.ndarray:
    """Features of real images ``0 .. count - 1``, ``(count, 2048)``, from the cache or computed
    (``images(indices)`` decodes a batch, ``compute(batch)`` returns its features) and cached.

    A cache file that is unreadable or of the wrong shape is computed again and replaced.
    """
    path = cache_folder() / "real-features" / f"{real_key({**data, 'count': count}, stamp)}.npy"
    if path.is_file():
        try:
            cached = _read(path)
            if len(cached) == count:
                return cached
        except DataError:
            pass
    if note is not None:
        note(f"computing the Inception features of {count} real images (cached in {path.parent})")
    parts = [
        np.asarray(compute(images(list(range(start, min(count, start + REAL_BATCH))))))
        for start in range(0, count, REAL_BATCH)
    ]
    array = (
        np.concatenate(parts).astype(np.float32) if parts else np.empty((0, DIMENSIONS), np.float32)
    )
    try:
        write_atomic(path, _to_bytes(array))
    except OSError as exc:  # a read-only cache: the run goes on without caching
        if note is not None:
            note(f"warning: cannot cache real features in {path.parent} ({exc.strerror or exc})")
    return array
