"""Inpainting methods: the protocol, a helper base for per-image CPU methods, the registry.

A method receives ``masked`` (``float32 (N, 3, H, W)`` in ``[0, 1]``, hole pixels already 0) and
``mask`` (``bool (N, 1, H, W)``, ``True`` = hole) and returns a ``(N, 3, H, W)`` float tensor in
``[0, 1]`` on any device. It never sees the original image; the harness composites
``where(mask, prediction, original)`` and measures that.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from benchmark.images import from_uint8_hwc, to_uint8_hwc
from benchmark.lazy import lazy_module
from benchmark.registry import Registry

if TYPE_CHECKING:
    import numpy as np
    import torch
else:  # imported on first use: ``list`` and ``--help`` never need them
    np = lazy_module("numpy")
    torch = lazy_module("torch")

__all__ = [
    "METHODS",
    "Method",
    "PerImageMethod",
    "composite",
    "from_uint8_hwc",
    "to_uint8_hwc",
]


class Method(ABC):
    """Base class of inpainting methods.

    ``device`` is ``"cpu"`` for CPU-only methods (the harness runs them in parallel over
    ``--workers`` threads, batch chunk by chunk) or ``"auto"`` for torch methods that run on the
    device the harness picks (they receive tensors on that device).
    """

    device: str = "cpu"
    #: One line shown by ``list`` when the method is slow at large sizes (what to use instead);
    #: empty for methods that keep up.
    slow_note: str = ""
    #: Most images per call (None: the whole batch). The harness calls, times (``--timeout``)
    #: and records such a method chunk by chunk, so a slow model shows progress per chunk.
    max_batch: int | None = None

    @abstractmethod
    def inpaint(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Fill the holes of ``masked`` (N, 3, H, W) marked by ``mask`` (N, 1, H, W)."""

    def to(self, device: torch.device) -> Method:
        """Move any state (weights) to ``device``; stateless methods need nothing."""
        return self

    def fingerprint(self) -> str:
        """Text that changes when the method's results would (e.g. a weights hash).

        Stored with every record: a resumed run only reuses rows with the same fingerprint.
        """
        return ""

    def check_run(  # noqa: B027 (an optional hook: most methods serve any run)
        self,
        *,
        config: Any,
        count: int,
        image_size: Sequence[int],
        data_fingerprint: str,
        masks: Mapping[str, str],
    ) -> None:
        """Refuse (raise ``UsageError``) a run this method cannot serve, before any work.

        Called once when the run is planned with its ``RunConfig``, the number of images, their
        ``(height, width)``, the data set's fingerprint and each mask spec's generator
        fingerprint. Most methods serve any run; ``predictions:`` checks that its files were
        made for these settings.
        """


#: Values per chunk of :class:`PerImageMethod`'s conversion to 8 bits (8 MB of float32).
CONVERSION_CHUNK_VALUES = 2**21


class PerImageMethod(Method):
    """A CPU method written for one 8-bit ``(H, W, 3)`` RGB image at a time.

    The batch is converted to ``uint8`` (inputs are exact 8-bit values by the data contract) a
    chunk of about :data:`CONVERSION_CHUNK_VALUES` values at a time, and back once: small images
    are converted many at a time, so the per-image Python overhead is a loop step, and large
    ones a few at a time, so no float32 temporary of the whole batch is made (one is 0.75 GiB
    at 512x512 and batch 256).
    """

    device = "cpu"

    @abstractmethod
    def inpaint_image(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """Fill ``image`` (uint8 (H, W, 3), holes 0) where ``hole`` (uint8 (H, W), 255 = hole)."""

    def inpaint(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # The 8-bit conversion also zeroes the hole pixels (a broadcast multiply instead of a
        # scalar one, so at no extra cost): some libraries (cv2.inpaint) read the hole pixels
        # they are given, and nothing may leak in from there when a caller leaves them set.
        n, _, h, w = masked.shape
        holes = mask[:, 0].to("cpu").numpy().view(np.uint8) * 255
        filled = np.empty((n, h, w, 3), np.uint8)
        step = max(1, CONVERSION_CHUNK_VALUES // max(1, masked[0].numel()))
        for start in range(0, n, step):
            part = slice(start, start + step)
            scale = (~mask[part]).to(masked.dtype).mul_(255)
            scaled = masked[part].detach().mul(scale).round_().clamp_(0, 255)
            images = scaled.to("cpu", torch.uint8).numpy().transpose(0, 2, 3, 1).copy()
            for k, image in enumerate(images, start=start):
                filled[k] = self.inpaint_image(image, holes[k])
        return from_uint8_hwc(filled)


METHODS: Registry[Method] = Registry(
    "method", group="benchmark.methods", builtin_modules=["methods"]
)


def composite(original: torch.Tensor, prediction: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The evaluated image: ``prediction`` inside the hole, ``original`` everywhere else.

    The prediction is first rounded to 8-bit levels (the data sets are 8-bit), so the saved
    PNGs reproduce the measured images exactly.
    """
    quantized = prediction.to(original.device).mul(255).round_().div_(255)
    return torch.where(mask.to(original.device), quantized, original)
