"""The seed's U-Net autoencoder as inpainting methods ``unet`` and ``unet-fill``.

Layer by layer, against the seed report's description (section 4, "Approach") of its Keras model;
every convolution is 3x3, stride 1, "same" padding, ReLU unless noted:

====================  ===========================================  ==============================
module                seed description                             shape (32x32 input)
====================  ===========================================  ==============================
``enc1`` (conv 1, 2)  encoder layer 1: two convolutions, 32        (N, 32, 32, 32), pool -> 16
``enc2`` (conv 3, 4)  encoder layer 2: two convolutions, 64        (N, 64, 16, 16), pool -> 8
``enc3`` (conv 5, 6)  encoder layer 3: two convolutions, 128       (N, 128, 8, 8), pool -> 4
``enc4`` (conv 7, 8)  encoder layer 4: two convolutions, 256       (N, 256, 4, 4), pool -> 2
                      ... each followed by 2x2 max-pooling
``bottleneck`` (9,10) decoder layer 1: two convolutions, 512       (N, 512, 2, 2)
``up4``               2x2 stride-2 transposed conv, 256, ReLU      (N, 256, 4, 4)
                      concatenated with ``enc4``'s output          (N, 512, 4, 4)
``dec4`` (11, 12)     decoder layer 2: two convolutions, 256       (N, 256, 4, 4)
``up3`` + concat      transposed conv, 128, ReLU; concat ``enc3``  (N, 256, 8, 8)
``dec3`` (13, 14)     decoder layer 3: two convolutions, 128       (N, 128, 8, 8)
``up2`` + concat      transposed conv, 64, ReLU; concat ``enc2``   (N, 128, 16, 16)
``dec2`` (15, 16)     decoder layer 4: two convolutions, 64        (N, 64, 16, 16)
``up1`` + concat      transposed conv, 32 ("ends with 32")         (N, 64, 32, 32)
``dec1`` (17, 18)     two convolutions, 32 (after the last concat) (N, 32, 32, 32)
``head`` (19)         "an additional layer of convolution ...      (N, 3, 32, 32)
                      with three kernels": 3 filters, sigmoid
====================  ===========================================  ==============================

That is the report's "19 convolution layers" (the 4 transposed convolutions are counted apart),
7,760,931 parameters. The seed's text groups the 512-filter pair with the decoder ("starts from
512 ... ends with 64"); we call it the bottleneck. Weights start like Keras' defaults (Glorot
uniform, zero bias). Sizes that are not multiples of 16 are padded (replicate, centred) and the
output is cropped back, so input and output always have the same size.

``unet`` is the seed: it sees the masked RGB image only (hole pixels 0) and predicts the whole
image. ``unet-fill`` is a variant with the same 19-layer body (``enc1`` takes 4 channels: 288
more weights): it also receives the mask, its holes are first filled by a cheap push-pull
pyramid (:func:`push_pull_fill`), the body sees that fill plus the mask, and the zero-initialised
``head`` adds a correction to the fill's logit inside the holes (``sigmoid(logit(fill) + head)``);
known pixels are copied through. It starts training at the push-pull fill and its MSE loss is
spent on the holes only. Either way the harness keeps the known pixels (composite).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import DataError
from benchmark.method import METHODS
from benchmark.trainable import WeightsMethod
from benchmark.weights import check_state, load_tensors, save_tensors

#: Constructor arguments of :class:`UNet` for each architecture name (stored in weights files).
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "unet": {"refine": False},
    "unet-fill": {"refine": True},
}
#: The U-Net halves the size four times: inputs are padded to a multiple of this.
MULTIPLE = 16
#: Where the shipped weights live (``<architecture>.safetensors``).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: Images per forward pass at inference (bounds memory for large batches).
INFERENCE_CHUNK = 512
#: Fill values are clamped to [EPS, 1 - EPS] before the logit (a quarter of an 8-bit level).
EPS = 1e-3


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.ReLU(inplace=True),
    )


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 2, stride=2), nn.ReLU(inplace=True))


def push_pull_fill(masked: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Fill holes from a pyramid of known-pixel averages (push-pull, Gortler et al. 1996).

    ``masked`` ``(N, C, H, W)``, ``known`` ``(N, 1, H, W)`` float (1 = known pixel). Each level
    halves the size, averaging known pixels only; holes take the bilinearly upsampled value of
    the next coarser level. Known pixels are returned unchanged. Any size; differentiable.
    """
    height, width = masked.shape[-2:]
    if height == 1 and width == 1:
        return masked
    weight = F.avg_pool2d(known, 2, ceil_mode=True)
    coarse = F.avg_pool2d(masked * known, 2, ceil_mode=True) / weight.clamp_min(1e-6)
    coarse = push_pull_fill(coarse, (weight > 0).to(masked.dtype))
    up = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return masked * known + up * (1 - known)


class UNet(nn.Module):
    """The seed's U-Net: ``(N, C, H, W)`` in [0, 1] -> ``(N, 3, H, W)`` in [0, 1].

    ``refine=False`` (``unet``, the seed): ``C = 3``, the masked image (holes 0) in, the
    image out. ``refine=True`` (``unet-fill``): ``C = 4``, the masked image and the mask
    (1 = hole); the body sees the push-pull fill of the holes plus the mask, its last layer
    (zero-initialised) adds a correction to the fill's logit, and known pixels are passed
    through, so the MSE loss is spent on the hole only and training starts at the fill.
    Any ``H, W`` works; non-multiples of 16 are padded by replication and cropped back.
    """

    def __init__(self, refine: bool = False) -> None:
        super().__init__()
        self.refine = refine
        self.in_channels = 4 if refine else 3
        self.enc1 = _double_conv(self.in_channels, 32)
        self.enc2 = _double_conv(32, 64)
        self.enc3 = _double_conv(64, 128)
        self.enc4 = _double_conv(128, 256)
        self.bottleneck = _double_conv(256, 512)
        self.up4, self.dec4 = _up(512, 256), _double_conv(512, 256)
        self.up3, self.dec3 = _up(256, 128), _double_conv(256, 128)
        self.up2, self.dec2 = _up(128, 64), _double_conv(128, 64)
        self.up1, self.dec1 = _up(64, 32), _double_conv(64, 32)
        self.head = nn.Conv2d(32, 3, 3, padding=1)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        if refine:
            nn.init.zeros_(self.head.weight)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder, bottleneck, decoder and head on ``x``, whose sides are multiples of 16."""
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        e4 = self.enc4(F.max_pool2d(e3, 2))
        y = self.bottleneck(F.max_pool2d(e4, 2))
        y = self.dec4(torch.cat([self.up4(y), e4], 1))
        y = self.dec3(torch.cat([self.up3(y), e3], 1))
        y = self.dec2(torch.cat([self.up2(y), e2], 1))
        y = self.dec1(torch.cat([self.up1(y), e1], 1))
        return self.head(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.refine:
            masked, hole = x[:, :3].float(), x[:, 3:].float()
            fill = push_pull_fill(masked, 1 - hole)
            x = torch.cat([fill, hole], 1).to(x.dtype)
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % MULTIPLE, -width % MULTIPLE
        if pad_h or pad_w:
            top, left = pad_h // 2, pad_w // 2
            x = F.pad(x, (left, pad_w - left, top, pad_h - top), mode="replicate")
        y = self.body(x)
        if pad_h or pad_w:
            y = y[..., top : top + height, left : left + width]
        if not self.refine:
            return torch.sigmoid(y)
        y = torch.sigmoid(torch.logit(fill.clamp(EPS, 1 - EPS)) + y.float())
        return torch.where(hole > 0.5, y, masked)


def build_model(architecture: str) -> UNet:
    """A freshly initialised model of ``architecture`` (a key of :data:`ARCHITECTURES`)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {architecture!r}; valid: {', '.join(sorted(ARCHITECTURES))}"
        )
    return UNet(**ARCHITECTURES[architecture])


def model_input(masked: torch.Tensor, mask: torch.Tensor, architecture: str) -> torch.Tensor:
    """The network input: ``masked`` (N, 3, H, W), plus ``mask`` as channel 4 for ``unet-fill``."""
    if ARCHITECTURES[architecture]["refine"]:
        return torch.cat([masked, mask.to(masked.dtype)], 1)
    return masked


def conv_layers(model: nn.Module) -> int:
    """Number of (non-transposed) convolution layers: 19 for the seed's U-Net."""
    return sum(type(m) is nn.Conv2d for m in model.modules())


def save_model(
    model: UNet,
    path: str | Path,
    architecture: str,
    metadata: Mapping[str, Any],
    dtype: torch.dtype = torch.float16,
) -> None:
    """Write ``model``'s weights as ``dtype`` (fp16 for shipping) with ``metadata``, atomically."""
    tensors = {k: v.detach().to(dtype) for k, v in model.state_dict().items()}
    save_tensors(path, tensors, {**metadata, "architecture": architecture})


def load_model(path: str | Path, architecture: str | None = None) -> tuple[UNet, dict[str, Any]]:
    """Load a weights file into a float32 model on the CPU: ``(model, metadata)``.

    ``metadata["sha256"]`` is set to the file's SHA-256. ``architecture``, when given, must match
    the file's; a mismatch, like a corrupt or truncated file, raises :class:`DataError`.
    """
    tensors, metadata, digest = load_tensors(path)
    stored = metadata.get("architecture")
    if stored not in ARCHITECTURES:
        raise DataError(f"weights file {str(path)!r}: unknown architecture {stored!r}")
    if architecture is not None and stored != architecture:
        raise DataError(
            f"weights file {str(path)!r}: holds architecture {stored!r}, expected {architecture!r}"
        )
    model = build_model(stored)
    expected = model.state_dict()
    check_state(path, tensors, expected, stored)
    model.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()})
    return model, {**metadata, "sha256": digest}


@METHODS.register("unet")
class UNetMethod(WeightsMethod):
    """The seed's U-Net with the shipped weights (or ``weights=PATH``); runs on any device."""

    architecture = "unet"
    weights_dir = WEIGHTS_DIR
    slow_note = "1-2 images/s at 256x256 on 2 CPU cores: use --device cuda, or telea/ns"

    @classmethod
    def build_model(cls) -> UNet:
        return build_model(cls.architecture)

    @classmethod
    def model_input(cls, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return model_input(masked, mask, cls.architecture)

    @classmethod
    def load_weights(cls, path: str | Path) -> tuple[UNet, dict[str, Any]]:
        return load_model(path, cls.architecture)


@METHODS.register("unet-fill")
class UNetFillMethod(UNetMethod):
    """The seed's U-Net refining a push-pull fill, mask as 4th input (or ``weights=PATH``)."""

    architecture = "unet-fill"
