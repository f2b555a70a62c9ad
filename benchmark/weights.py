"""Weights and checkpoint files: safetensors (no pickle) with JSON metadata, written atomically.

A file holds named tensors plus a flat metadata dict (architecture, data set, masks, epochs, seed,
validation metrics, package version, ...). Every metadata value is stored JSON-encoded, and a
SHA-256 of the tensor data (``tensor_sha256``) is kept so bit rot is caught on load. Any problem
reading a file (missing, truncated, garbage, wrong checksum, wrong architecture or shapes) raises a
:class:`~benchmark.errors.DataError` whose one-line message names the file and the problem.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

import benchmark
from benchmark.errors import DataError
from benchmark.records import truncate_reason, write_atomic

#: Value of the ``format`` metadata key; bump when the layout of the files changes.
FORMAT = "inpaint-bench/1"
_HEADER_LIMIT = 100_000_000  # safetensors' own cap on the JSON header size


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes of ``tensors``, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_tensors(
    path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]
) -> None:
    """Write ``tensors`` and ``metadata`` to ``path`` atomically (temporary file, then rename).

    ``format``, ``version`` (package version) and ``tensor_sha256`` are added to the metadata.
    """
    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {"format": FORMAT, "version": benchmark.__version__, **metadata}
    meta["tensor_sha256"] = tensor_digest(tensors)
    data = _canonical(_st_save(tensors, {key: json.dumps(value) for key, value in meta.items()}))
    write_atomic(path, data)


def _canonical(data: bytes) -> bytes:
    """``data`` with its JSON header keys sorted (same length), so equal input gives equal bytes.

    safetensors writes the metadata in hash-map order, which varies from run to run.
    """
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > size:  # cannot happen for the compact JSON safetensors writes; keep as is
        return data
    return data[:8] + text.ljust(size, b" ") + data[8 + size :]


def _read_metadata(data: bytes, where: str) -> dict[str, Any]:
    """Parse the safetensors header of ``data`` and return its decoded metadata."""
    if len(data) < 8:
        raise DataError(f"{where}: truncated or not a safetensors file ({len(data)} bytes)")
    size = int.from_bytes(data[:8], "little")
    if size > _HEADER_LIMIT:
        raise DataError(f"{where}: not a safetensors file (corrupt header length {size})")
    if 8 + size > len(data):
        raise DataError(f"{where}: truncated (header needs {8 + size} bytes, file has {len(data)})")
    try:
        header = json.loads(data[8 : 8 + size])
        raw = header.get("__metadata__") or {}
        return {key: json.loads(value) for key, value in raw.items()}
    except RecursionError:
        raise DataError(f"{where}: corrupt header (JSON nested too deeply)") from None
    except (ValueError, AttributeError, TypeError) as exc:  # ValueError: JSON and Unicode errors
        raise DataError(f"{where}: corrupt header ({truncate_reason(exc, 200)})") from exc


def load_tensors(
    path: str | Path, what: str = "weights file"
) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    """Read ``path``: ``(tensors, metadata, sha256 of the file bytes)``.

    Raises :class:`DataError` if the file is missing, truncated, not safetensors, not written by
    this package, or its tensors do not match the stored checksum.
    """
    where = f"{what} {str(path)!r}"
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{where}: not found") from None
    except OSError as exc:
        raise DataError(f"{where}: cannot be read ({exc.strerror or exc})") from exc
    metadata = _read_metadata(data, where)
    try:
        tensors = _st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{where}: corrupt or truncated ({detail})") from exc
    if metadata.get("format") != FORMAT:
        raise DataError(
            f"{where}: not an inpaint-bench file (format {metadata.get('format')!r}, "
            f"expected {FORMAT!r})"
        )
    if metadata.get("tensor_sha256") != tensor_digest(tensors):
        raise DataError(f"{where}: corrupt (tensor data does not match its stored checksum)")
    return tensors, metadata, hashlib.sha256(data).hexdigest()


def check_state(
    path: str | Path,
    tensors: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    architecture: str,
    what: str = "weights file",
) -> None:
    """Raise :class:`DataError` unless ``tensors`` has the names and shapes of ``expected``."""
    where = f"{what} {str(path)!r}"
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]!r})")
        raise DataError(
            f"{where}: tensors do not match architecture {architecture!r}: {', '.join(parts)}"
        )
    for name, reference in expected.items():
        tensor = tensors[name]
        if tuple(tensor.shape) != tuple(reference.shape):
            raise DataError(
                f"{where}: tensor {name!r} has shape {tuple(tensor.shape)}, architecture "
                f"{architecture!r} expects {tuple(reference.shape)}"
            )
        if not tensor.is_floating_point():
            raise DataError(f"{where}: tensor {name!r} has dtype {tensor.dtype}, expected float")
