"""The trainable-model protocol: what ``python -m benchmark train NAME`` needs from a method.

A registered method class that also derives from :class:`Trainable` can be trained with the
``train`` command, built-in or plug-in alike, with the same data, masks, checkpoints, weights
format (safetensors with JSON metadata, :mod:`benchmark.weights`) and distributed mode.

Conventions (the same for every trainable model):

- **Input**: :meth:`Trainable.model_input` turns the harness's ``(masked, mask)`` (hole pixels
  0, ``mask`` True = hole) into the network's input tensor; the network is called as
  ``model(model_input(masked, mask))``.
- **Output and loss target**: the network returns the full image ``(N, 3, H, W)`` in
  ``[0, 1]``; the training loss compares it with the original image over every pixel. A model
  that copies the known pixels through (as ``unet-fill`` and ``pconv`` do) therefore spends its
  loss on the holes only. Validation scores the harness composite, like the leaderboard.
- **Weights**: :meth:`Trainable.save_weights` / :meth:`Trainable.load_weights` write and read
  ``benchmark.weights`` files whose ``architecture`` metadata is :attr:`Trainable.architecture`.
- **Warm start** (``train --init PATH``): :meth:`Trainable.warm_start` copies weights from a file
  (by default one of the same architecture) into a fresh model.

Minimal plug-in::

    class TinyModel(Trainable, Method):
        architecture = "tiny"
        device = "auto"

        @classmethod
        def build_model(cls):
            return torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.Sigmoid())

        def __init__(self, weights=None):
            self.model, self.metadata = self.load_weights(weights)

        def inpaint(self, masked, mask):
            return self.predict(self.model, masked, mask)
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from benchmark.device import autocast, memory_format
from benchmark.errors import DataError, UsageError
from benchmark.method import Method
from benchmark.weights import check_state, load_tensors, save_tensors

#: Images per forward pass in :meth:`Trainable.predict` (bounds memory for large batches).
INFERENCE_CHUNK = 512


class Trainable:
    """Mixin for a :class:`~benchmark.method.Method` whose network ``train`` can fit."""

    #: Name stored in weights files (``architecture`` metadata); usually the method's name.
    architecture: ClassVar[str]

    @classmethod
    @abstractmethod
    def build_model(cls) -> nn.Module:
        """A freshly initialised network (seeded by the caller through ``torch.manual_seed``)."""

    @classmethod
    def model_input(cls, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The network input for ``masked`` (N, 3, H, W), holes 0, and ``mask`` (N, 1, H, W).

        Default: the masked image alone.
        """
        return masked

    @classmethod
    def save_weights(
        cls,
        model: nn.Module,
        path: str | Path,
        metadata: Mapping[str, Any],
        dtype: torch.dtype = torch.float16,
    ) -> None:
        """Write ``model``'s state as ``dtype`` (fp16 to ship) with ``metadata``, atomically."""
        tensors = {k: v.detach().to(dtype) for k, v in model.state_dict().items()}
        save_tensors(path, tensors, {**metadata, "architecture": cls.architecture})

    @classmethod
    def load_weights(cls, path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
        """A float32 CPU model with the weights of ``path``: ``(model, metadata)``.

        ``metadata["sha256"]`` is the file's SHA-256. A file of another architecture, with
        other tensor names or shapes, or corrupt, raises :class:`DataError`.
        """
        tensors, metadata, digest = load_tensors(path)
        stored = metadata.get("architecture")
        if stored != cls.architecture:
            raise DataError(
                f"weights file {str(path)!r}: holds architecture {stored!r}, "
                f"expected {cls.architecture!r}"
            )
        model = cls.build_model()
        check_state(path, tensors, model.state_dict(), cls.architecture)
        model.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()})
        return model, {**metadata, "sha256": digest}

    @classmethod
    def warm_start(
        cls, model: nn.Module, path: str | Path, sample: tuple[torch.Tensor, torch.Tensor]
    ) -> str:
        """Copy the weights of ``path`` into ``model`` (``train --init``); a one-line account.

        ``sample`` is ``(images, masks)`` from the training data (the run's first batches), for
        models that adapt another architecture's weights. Default: ``path`` must hold this
        architecture and ``sample`` is not used. Override to map other architectures.
        """
        loaded, metadata = cls.load_weights(path)
        model.load_state_dict(loaded.state_dict())
        return f"all weights from {path} ({metadata['sha256'][:12]})"

    @classmethod
    @torch.inference_mode()
    def predict(
        cls,
        model: nn.Module,
        masked: torch.Tensor,
        mask: torch.Tensor,
        device: torch.device | None = None,
        chunk: int = INFERENCE_CHUNK,
    ) -> torch.Tensor:
        """``model``'s full-image prediction, float32 on ``device``, ``chunk`` images at a time.

        Hole pixels of ``masked`` are zeroed first; fp16 autocast on CUDA, channels_last on
        the CPU. ``model`` must already be on ``device`` (default: ``masked``'s device).
        """
        device = torch.device(device) if device is not None else masked.device
        outputs = []
        with autocast(device):
            for start in range(0, len(masked), chunk):
                hole = mask[start : start + chunk].to(device)
                known_only = masked[start : start + chunk].to(device).masked_fill(hole, 0)
                x = cls.model_input(known_only, hole).float()
                y = model(x.contiguous(memory_format=memory_format(device)))
                outputs.append(y.float().contiguous())
        return torch.cat(outputs) if outputs else masked.new_zeros(masked.shape, device=device)


class WeightsMethod(Trainable, Method):
    """A trainable method run from a weights file: the shipped one, or ``weights=PATH``.

    Subclasses set ``architecture`` and ``weights_dir`` (where ``<architecture>.safetensors``
    ships) and implement :class:`Trainable`'s hooks; loading, moving to a device, the
    fingerprint (the file's SHA-256) and batched inference are shared.
    """

    device = "auto"
    #: Folder of the shipped ``<architecture>.safetensors``.
    weights_dir: ClassVar[Path]

    def __init__(self, weights: str | None = None) -> None:
        self.weights = weights_path(
            weights, self.weights_dir / f"{self.architecture}.safetensors", self.architecture
        )
        self.model, self.metadata = self.load_weights(self.weights)
        self.model.eval().requires_grad_(False)
        self.to(torch.device("cpu"))

    def to(self, device: torch.device | str) -> WeightsMethod:
        self._device = torch.device(device)
        self.model.to(self._device, memory_format=memory_format(self._device))
        return self

    def fingerprint(self) -> str:
        return f"sha256:{self.metadata['sha256'][:16]}"

    def inpaint(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Predict the full image for ``masked`` (N, 3, H, W) and ``mask`` (N, 1, H, W)."""
        return self.predict(self.model, masked, mask, self._device)


def weights_path(weights: object, default: Path, method: str) -> Path:
    """The weights file a ``NAME:weights=...`` parameter names, or ``default`` when not given.

    ``weights`` must be a non-empty path (text); ``weights=`` (empty), ``weights=123`` or
    ``weights=true`` raise :class:`UsageError` instead of silently using the shipped file.
    """
    if weights is None:
        return default
    if not isinstance(weights, (str, Path)) or not str(weights).strip():
        shown = "empty" if weights == "" else f"{weights!r}"
        raise UsageError(
            f"method {method!r}: weights must be the path of a weights file, got {shown}"
        )
    return Path(weights)


def trainable_names() -> list[str]:
    """Registered methods that implement :class:`Trainable`, sorted."""
    from benchmark.method import METHODS

    return [name for name in METHODS.names() if _is_trainable(METHODS.get(name))]


def get_trainable(name: str) -> type[Trainable]:
    """The :class:`Trainable` method class registered as ``name``; else one-line UsageError."""
    from benchmark.errors import UnknownNameError
    from benchmark.method import METHODS

    try:
        factory = METHODS.get(name)
    except UnknownNameError:
        factory = None
    if not _is_trainable(factory):
        raise UsageError(
            f"cannot train {name!r}: not a trainable method; trainable: "
            f"{', '.join(trainable_names())}"
        )
    return factory


def _is_trainable(factory: object) -> bool:
    return isinstance(factory, type) and issubclass(factory, Trainable)
