"""Shared parts of the diffusion-model methods (``repaint:`` and ``diffusers:``).

* The optional libraries (diffusers, transformers) are imported inside the constructors; without
  them, naming a method says in one line which extra to install.
* The model folder is checked before anything is loaded; its files (configs, weights, tokenizer)
  are hashed into the fingerprint together with the seed.
* **Seed rule.** Every image is sampled by its own pipeline call with its own CPU
  ``torch.Generator``, seeded by :func:`image_seed`: SHA-256 of the text
  ``inpaint-bench diffusion seed v1``, the method's ``seed`` (signed 64-bit little-endian), the
  image's height and width (unsigned 32-bit little-endian each), its 8-bit masked pixels
  ``round(255 x)``, holes 0, as ``(3, H, W)`` bytes and its hole mask as ``(1, H, W)`` bytes
  (1 = hole);
  the first 8 bytes of the digest, read little-endian with the top bit cleared. The noise of an
  image therefore depends only on the seed and on what the method sees of that image: never on
  the batch size, the worker count, the executor or resuming.
* The pipeline loads once per process (the constructor) and is reused for every batch; the
  harness's ``to(device)`` moves it, in float16 when ``fp16=true`` and the device is CUDA.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import struct
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import DataError, UsageError
from benchmark.fingerprint import source_hash
from benchmark.method import Method

#: Prefix of the hashed bytes of :func:`image_seed` (changing the rule changes this text).
SEED_DOMAIN = b"inpaint-bench diffusion seed v1"
EXTRA = 'pip install "inpaint-bench[diffusion]"'
#: Per-image failure reasons of a batch: None where the image succeeded.
Problems = list[str | None]


def image_seed(seed: int, masked: torch.Tensor, hole: torch.Tensor) -> int:
    """The generator seed of one image: ``masked`` (3, H, W) in [0, 1], ``hole`` (1, H, W) bool.

    See the module docstring for the rule; it reads only what the method is given.
    """
    height, width = masked.shape[-2:]
    pixels = masked.detach().to("cpu", torch.float32).mul(255).round_().clamp_(0, 255)
    digest = hashlib.sha256(SEED_DOMAIN)
    digest.update(struct.pack("<qII", seed, height, width))
    digest.update(pixels.to(torch.uint8).contiguous().numpy().tobytes())
    digest.update(hole.detach().to("cpu", torch.uint8).contiguous().numpy().tobytes())
    return int.from_bytes(digest.digest()[:8], "little") & (2**63 - 1)


def image_generator(seed: int, masked: torch.Tensor, hole: torch.Tensor) -> torch.Generator:
    """A CPU generator seeded by :func:`image_seed` (the same noise on every device)."""
    return torch.Generator("cpu").manual_seed(image_seed(seed, masked, hole))


def import_extra(kind: str, *modules: str) -> list[Any]:
    """Import the optional ``modules``; a missing one is a one-line :class:`UsageError`."""
    loaded = []
    for name in modules:
        try:
            loaded.append(importlib.import_module(name))
        except ImportError:
            raise UsageError(f"{kind}: needs {name}, part of an optional extra: {EXTRA}") from None
    return loaded


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Errors only, and no progress bars, from diffusers and transformers while loading.

    Their loaders print progress bars and advice (install accelerate, torchvision) on every
    load; the harness reports failures in its own one line. Settings are restored afterwards.
    """
    libraries = []
    for name in ("diffusers.utils.logging", "transformers.utils.logging"):
        try:
            libraries.append(importlib.import_module(name))
        except ImportError:
            continue
    saved = [(lib, lib.get_verbosity(), lib.is_progress_bar_enabled()) for lib in libraries]
    for lib, _, _ in saved:
        lib.set_verbosity_error()
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, verbosity, bars in saved:
            lib.set_verbosity(verbosity)
            if bars:
                lib.enable_progress_bar()


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; unreadable or not an object -> one-line DataError."""
    import json

    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"cannot read {str(path)!r}: {one_line(exc)}") from None
    if not isinstance(value, dict):
        raise DataError(f"{str(path)!r} does not hold a JSON object")
    return value


def files_sha256(root: Path, entries: Iterable[str]) -> str:
    """SHA-256 over the files ``entries`` (files or folders, relative to ``root``).

    Folders count with every file below them, hidden ones (``.cache``, ``.git``) left out;
    each file contributes its relative path and its bytes, in sorted order.
    """
    files: set[Path] = set()
    for entry in entries:
        path = root / entry
        if path.is_file():
            files.add(path)
        elif path.is_dir():
            files.update(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(root).parts)
            )
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, cut to ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def check_float(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


class DiffusersMethod(Method):
    """A diffusers pipeline sampled one image at a time with the per-image seed rule.

    Subclasses load ``self.pipe`` in their constructor (after :meth:`setup`), hash the files they
    load into ``self.folder_sha256``, and implement :meth:`sample`.
    """

    device = "auto"
    #: Built only from a user's folder: ``--methods all`` and parameter-free contract tests skip it.
    requires_path = True
    #: Outputs depend on a seed: the leaderboard marks the method; run several seeds as entries.
    stochastic = True
    #: Each image is a pipeline call of its own: handing the method one image per call gives
    #: progress, records and resume points per image. Results do not depend on the batch size.
    max_batch = 1
    kind = ""

    def setup(self, path: str | None, seed: Any, fp16: Any, download: Any) -> Path | str:
        """Check the shared parameters; the local folder (or, with downloads, a model id)."""
        if not path:
            raise ValueError(f"needs the model folder: {self.kind}:path=DIR")
        self.seed = check_int("seed", seed, 0)
        if not isinstance(fp16, bool) or not isinstance(download, bool):
            raise ValueError("fp16 and download must be true or false")
        if seed >= 2**63:
            raise ValueError(f"seed must be below 2**63, got {seed}")
        self.fp16, self.download = fp16, download
        self.dtype = torch.float32
        folder = Path(str(path)).expanduser()
        if folder.is_dir():
            return folder
        if download:
            return str(path)
        raise UsageError(
            f"{self.kind}: model folder {str(path)!r} does not exist; expected {self.expected} "
            "(downloads are off: add download=true to fetch a model by its id)"
        )

    #: What the folder must hold, for error messages.
    expected = ""

    def fetch(self, model_id: str) -> Path:
        """Download ``model_id`` (download=true) into the library's cache; its local folder."""
        (diffusers,) = import_extra(self.kind, "diffusers")
        try:
            with quiet_libraries():
                return Path(diffusers.DiffusionPipeline.download(model_id))
        except Exception as exc:  # hub and network errors of many types
            raise UsageError(
                f"{self.kind}: cannot download {model_id!r}: {one_line(exc)}"
            ) from None

    def fingerprint(self) -> str:
        import diffusers

        dtype = "fp16" if self.dtype == torch.float16 else "fp32"
        return (
            f"seed {self.seed}; files sha256:{self.folder_sha256[:16]}; "
            f"diffusers {diffusers.__version__}; {dtype}; seed rule {source_hash(DiffusersMethod)}"
        )

    def to(self, device: torch.device | str) -> DiffusersMethod:
        device = torch.device(device)
        self.dtype = torch.float16 if self.fp16 and device.type == "cuda" else torch.float32
        with quiet_libraries():  # casting warns about modules kept in float32, even for none
            self.pipe.to(device, self.dtype)
        return self

    def sample(
        self, masked: torch.Tensor, hole: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, str | None]:
        """One image: ``masked`` (1, 3, H, W), ``hole`` (1, 1, H, W) bool -> (1, 3, H, W) float32
        CPU in [0, 1] and a failure reason (None on success)."""
        raise NotImplementedError

    def fill(self, masked: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, Problems]:
        """Every image of the batch sampled alone with its own generator; per-image reasons.

        Hole pixels are set to 0 first: whatever a caller leaves there reaches neither the seed
        nor the pipeline (which reads them when it encodes the whole image, e.g. strength < 1).
        """
        masked = masked.masked_fill(mask, 0.0)
        outputs, problems = [], []
        for image, hole in zip(masked, mask):
            generator = image_generator(self.seed, image, hole)
            output, problem = self.sample(image[None], hole[None], generator)
            outputs.append(output)
            problems.append(problem)
        if not outputs:
            return masked.new_zeros(masked.shape), []
        return torch.cat(outputs).to(masked.device), problems

    def inpaint(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.fill(masked, mask)[0]

    def inpaint_indexed(
        self, masked: torch.Tensor, mask: torch.Tensor, indices: Sequence[int], mask_name: str
    ) -> tuple[torch.Tensor, Problems]:
        """As :meth:`inpaint`, with a reason for each image the pipeline refused (NaN there).

        ``indices`` and ``mask_name`` are not used: the seed comes from the pixels alone.
        """
        return self.fill(masked, mask)
