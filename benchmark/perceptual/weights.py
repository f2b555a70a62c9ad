"""The weight files of the perceptual metrics: where they are looked up, checked and loaded.

Each file keeps the name its reference package gives it, so a folder of files fetched for
torchvision, lpips or pytorch-fid serves as it is. Lookup order of :func:`resolve`:

1. ``weights_dir``: a flat folder holding files under those names;
2. the torch hub cache, ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch``), where
   torchvision and pytorch-fid put them; for the LPIPS heads also the copies that the
   ``lpips`` and ``torchmetrics`` packages ship, when installed (found without importing them);
3. a download into the hub cache, with a progress bar, when ``download`` is true.

Every file's SHA-256 is compared with the published value (:data:`WEIGHT_FILES`); a mismatch is
refused unless ``allow_unverified=True``. Files are read with ``torch.load(weights_only=True)``
onto the CPU (the lpips heads were saved from CUDA tensors).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmark.errors import DataError, UsageError

_TORCHVISION = "https://download.pytorch.org/models/"
_LPIPS = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/"
_PYTORCH_FID = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"


@dataclass(frozen=True)
class WeightFile:
    """One reference weight file: its name, published SHA-256, size in bytes and source."""

    name: str
    sha256: str
    size: int
    url: str
    source: str  # which package publishes it, and where the checksum comes from


#: The files, by their reference names. ``sha256`` of the torchvision and pytorch-fid files: the
#: values these packages' users publish for them (the file names carry their first 8 hex
#: digits, as torch.hub's ``check_hash`` expects); of the lpips heads: the files shipped in the
#: lpips 0.1.4 wheel (identical in torchmetrics 1.9.0).
WEIGHT_FILES: dict[str, WeightFile] = {
    f.name: f
    for f in (
        WeightFile(
            "alexnet-owt-7be5be79.pth",
            "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
            244_408_911,
            _TORCHVISION + "alexnet-owt-7be5be79.pth",
            "torchvision AlexNet_Weights.IMAGENET1K_V1",
        ),
        WeightFile(
            "vgg16-397923af.pth",
            "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
            553_433_881,
            _TORCHVISION + "vgg16-397923af.pth",
            "torchvision VGG16_Weights.IMAGENET1K_V1",
        ),
        WeightFile(
            "squeezenet1_1-b8a52dc0.pth",
            "b8a52dc049b60e4b6ab68ad0df457362afab8b6304b2febdc1650a5dab4d7e7b",
            4_958_839,
            _TORCHVISION + "squeezenet1_1-b8a52dc0.pth",
            "torchvision SqueezeNet1_1_Weights.IMAGENET1K_V1",
        ),
        WeightFile(
            "alex.pth",
            "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
            6_009,
            _LPIPS + "alex.pth",
            "lpips 0.1.4 weights/v0.1/alex.pth (LPIPS heads on AlexNet)",
        ),
        WeightFile(
            "vgg.pth",
            "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
            7_289,
            _LPIPS + "vgg.pth",
            "lpips 0.1.4 weights/v0.1/vgg.pth (LPIPS heads on VGG16)",
        ),
        WeightFile(
            "squeeze.pth",
            "4a5350f23600cb79923ce65bb07cbf57dca461329894153e05a1346bd531cf76",
            10_811,
            _LPIPS + "squeeze.pth",
            "lpips 0.1.4 weights/v0.1/squeeze.pth (LPIPS heads on SqueezeNet 1.1)",
        ),
        WeightFile(
            "pt_inception-2015-12-05-6726825d.pth",
            "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
            95_628_359,
            _PYTORCH_FID + "pt_inception-2015-12-05-6726825d.pth",
            "pytorch-fid 0.3.0 FID Inception (the same bytes as torch-fidelity's "
            "weights-inception-2015-12-05-6726825d.pth)",
        ),
    )
}


def hub_checkpoints() -> Path:
    """The torch hub cache folder of checkpoints: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _package_folders(name: str) -> list[Path]:
    """Folders of installed packages that ship the lpips head ``name`` (none are imported)."""
    if name not in ("alex.pth", "vgg.pth", "squeeze.pth"):
        return []
    folders = []
    for package, sub in (
        ("lpips", "weights/v0.1"),
        ("torchmetrics", "functional/image/lpips_models"),
    ):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        for location in (spec.submodule_search_locations or []) if spec else []:
            folders.append(Path(location) / sub)
    return folders


def search_folders(name: str, weights_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for ``name``, in order (the download target is the hub cache)."""
    folders = [Path(weights_dir)] if weights_dir is not None else []
    return folders + [hub_checkpoints()] + _package_folders(name)


def sha256_of(path: Path) -> str:
    """SHA-256 of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: path -> (size, mtime_ns, sha256) of the files hashed in this process
_DIGESTS: dict[Path, tuple[int, int, str]] = {}
_WARNED: set[Path] = set()


class UnverifiedWeightsWarning(UserWarning):
    """A weight file whose checksum is not the published one was used (``allow_unverified``)."""


def _digest(path: Path) -> str:
    """SHA-256 of ``path``, hashed once per process while its size and mtime stay the same."""
    stat = path.stat()
    known = _DIGESTS.get(path.resolve())
    if known and known[:2] == (stat.st_size, stat.st_mtime_ns):
        return known[2]
    digest = sha256_of(path)
    _DIGESTS[path.resolve()] = (stat.st_size, stat.st_mtime_ns, digest)
    return digest


def verify(path: Path, name: str, allow_unverified: bool = False) -> str:
    """The file's SHA-256; :class:`DataError` if it is not the published one (unless allowed).

    A file is hashed once per process (again if its size or modification time changes).
    """
    digest = _digest(path)
    expected = WEIGHT_FILES[name].sha256
    if digest != expected and allow_unverified:
        if path.resolve() not in _WARNED:
            _WARNED.add(path.resolve())
            warnings.warn(
                f"weights file {str(path)!r} is not the published {name} (sha256 "
                f"{digest[:16]}...); used because unverified weights are allowed",
                UnverifiedWeightsWarning,
                stacklevel=2,
            )
    elif digest != expected:
        raise DataError(
            f"weights file {str(path)!r}: sha256 {digest[:16]}... is not the published "
            f"{expected[:16]}... of {name} (pass allow_unverified / --allow-unverified-weights "
            "to use it anyway)"
        )
    return digest


def _download(entry: WeightFile, target: Path) -> None:
    """Download ``entry`` to ``target`` (through a temporary file) with a progress bar."""
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(entry.url, str(target), hash_prefix=None, progress=True)


def resolve(
    name: str,
    weights_dir: str | os.PathLike | None = None,
    allow_unverified: bool = False,
    download: bool = True,
) -> Path:
    """Path of the verified weight file ``name`` (see the module docstring for the order).

    Raises :class:`UsageError` (one line naming the file and the folders searched) when the file
    is nowhere and cannot be downloaded, and :class:`DataError` when its checksum is wrong.
    """
    if name not in WEIGHT_FILES:
        raise UsageError(f"unknown weight file {name!r}; known: {', '.join(sorted(WEIGHT_FILES))}")
    folders = search_folders(name, weights_dir)
    if weights_dir is not None and not Path(weights_dir).is_dir():
        raise UsageError(f"--weights-dir {str(weights_dir)!r} is not a folder")
    for folder in folders:
        path = folder / name
        if path.is_file():
            verify(path, name, allow_unverified)
            return path
    target = hub_checkpoints() / name
    searched = ", ".join(str(folder) for folder in folders)
    if not download:
        raise UsageError(f"weights file {name} not found (searched {searched}); downloads are off")
    try:
        _download(WEIGHT_FILES[name], target)
    except (OSError, ValueError, RuntimeError) as exc:  # URLError is an OSError
        reason = " ".join(str(getattr(exc, "reason", exc)).split())[:160]
        raise UsageError(
            f"weights file {name} not found (searched {searched}) and its download failed "
            f"({reason}); put it in one of these folders or pass --weights-dir"
        ) from None
    try:
        verify(target, name, allow_unverified)
    except DataError:
        target.unlink(missing_ok=True)  # a corrupt download must not shadow the next one
        raise
    return target


def load(
    name: str,
    weights_dir: str | os.PathLike | None = None,
    allow_unverified: bool = False,
    download: bool = True,
) -> dict[str, torch.Tensor]:
    """The tensors of weight file ``name``: resolved, verified and read with ``weights_only``."""
    path = resolve(name, weights_dir, allow_unverified, download)
    return read_state_dict(path)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.pth`` state dict (zip or legacy format) onto the CPU with ``weights_only``."""
    where = f"weights file {str(path)!r}"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{where}: not found") from None
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise DataError(
            f"{where}: cannot be read as a weights-only state dict ({detail})"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise DataError(f"{where}: not a state dict of named tensors")
    return dict(state)


def take(
    state: dict[str, torch.Tensor], module: torch.nn.Module, path: str, prefix: str = ""
) -> None:
    """Load the ``prefix``-ed tensors of ``state`` into ``module``, checking names and shapes.

    Other keys (a classifier the metric does not use) and missing ``num_batches_tracked``
    counters are ignored. A missing or mis-shaped tensor raises :class:`DataError`.
    """
    wanted = module.state_dict()
    picked = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    for key, reference in wanted.items():
        if key not in picked:
            if key.endswith("num_batches_tracked"):
                picked[key] = reference
                continue
            raise DataError(f"weights file {path!r}: tensor {prefix + key!r} is missing")
        if tuple(picked[key].shape) != tuple(reference.shape):
            raise DataError(
                f"weights file {path!r}: tensor {prefix + key!r} has shape "
                f"{tuple(picked[key].shape)}, expected {tuple(reference.shape)}"
            )
    module.load_state_dict({k: picked[k] for k in wanted}, strict=True)
