"""Validation: fixed images of the train split's validation slice, each with one mask per family."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from benchmark.train.loss import per_image_loss

if TYPE_CHECKING:
    from benchmark.datasets.base import Dataset
    from benchmark.masking import MaskGenerator
    from benchmark.trainable import Trainable


class Validation:
    """Fixed validation images, each with one mask of every family (built once).

    The masks come from the seed stream ``seed + 2 * TRAINING_STREAM``, apart from both the
    training masks and the evaluation masks.
    """

    def __init__(
        self,
        dataset: Dataset,
        indices: np.ndarray,
        generators: Sequence[MaskGenerator],
        mask_names: list[str],
        seed: int,
        size: tuple[int, int],
    ) -> None:
        from benchmark.masking import TRAINING_STREAM

        self.names = mask_names
        self.images = dataset.images(indices.tolist()) if len(indices) else None
        stream = seed + 2 * TRAINING_STREAM
        count = len(indices)
        self.masks = [g.batch(range(count), *size, stream) for g in generators] if count else []

    def __bool__(self) -> bool:
        return self.images is not None

    @torch.inference_mode()
    def evaluate(
        self,
        model: torch.nn.Module,
        trainable: type[Trainable],
        device: torch.device,
        loss: str = "mse",
    ) -> dict[str, Any]:
        """Validation loss (of the raw prediction) and composite PSNR/SSIM, also per mask.

        ``trainable`` is the model's :class:`~benchmark.trainable.Trainable` method class.
        """
        from benchmark.method import composite
        from benchmark.metrics import psnr, ssim

        model.eval()
        result: dict[str, Any] = {}
        losses, psnrs, ssims = [], [], []
        images = self.images.to(device)
        for name, masks in zip(self.names, self.masks):
            mask = masks.to(device)
            pred = trainable.predict(model, images, mask, device)
            filled = composite(images, pred.clamp(0, 1), mask)
            mask_loss, p, s = (
                v.mean().item()
                for v in (
                    per_image_loss(loss, pred, images),
                    psnr(filled, images),
                    ssim(filled, images),
                )
            )
            result[name] = {"loss": mask_loss, "psnr": p, "ssim": s}
            losses.append(mask_loss)
            psnrs.append(p)
            ssims.append(s)
        result.update(
            loss=float(np.mean(losses)), psnr=float(np.mean(psnrs)), ssim=float(np.mean(ssims))
        )
        return result
