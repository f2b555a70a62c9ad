"""pytorch-fid's FID InceptionV3 in plain torch, and its 2048-d pool3 features.

The network is torchvision's ``Inception3`` layout with pytorch-fid's patched blocks
(``FIDInceptionA/C/E_1/E_2``: average pools that ignore the zero padding, a max pool in the last
block), the TF "2015-12-05" graph that every FID implementation uses. It loads
``pt_inception-2015-12-05-6726825d.pth`` by its own key names (``Conv2d_1a_3x3.conv.weight``,
``Mixed_5b.branch1x1.bn.running_mean``, ...); the ``fc.*`` classifier is not used.

Two input pipelines (``mode``), both from ``(N, 3, H, W)`` images in ``[0, 1]``:

* ``"pytorch-fid"``: bilinear resize to 299x299 (``F.interpolate``, ``align_corners=False``, no
  antialias), then ``2x - 1``: pytorch-fid 0.3.0's ``InceptionV3`` (the ``fid`` metric);
* ``"clean"``: the values times 255, each channel resized to 299x299 by PIL's bicubic filter in
  float mode and clipped to ``[0, 255]``, then ``(x - 128) / 128``: clean-fid 0.1.35's
  ``mode="clean"`` (the ``fid-clean`` metric).
"""

from __future__ import annotations

import os
import threading

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from benchmark.errors import DataError
from benchmark.perceptual import weights

WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
SIZE = 299
FEATURES = 2048
MODES = ("pytorch-fid", "clean")


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 0.001) and ReLU, as torchvision names them."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0) -> None:  # noqa: ANN001
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    """TF's 3x3 average pool: the zero padding is not counted."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """``max_pool=False``: FIDInceptionE_1 (Mixed_7b); ``True``: FIDInceptionE_2 (Mixed_7c)."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """pytorch-fid's InceptionV3 up to pool3: normalised 299x299 input to ``(N, 2048)``."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> FIDInceptionV3:
        """Build from ``pt_inception-2015-12-05-6726825d.pth`` (or a file of its layout)."""
        model = cls()
        state = weights.read_state_dict(path)
        unknown = sorted(set(state) - set(model.state_dict()) - {"fc.weight", "fc.bias"})
        if unknown:
            raise DataError(
                f"weights file {str(path)!r}: unexpected tensor {unknown[0]!r} for the FID "
                "Inception"
            )
        weights.take(state, model, str(path))
        return model

    def fuse(self) -> FIDInceptionV3:
        """Fold each batch norm into its convolution, for inference (features move ~1e-6)."""
        for module in self.modules():
            if isinstance(module, BasicConv2d) and isinstance(module.bn, nn.BatchNorm2d):
                module.conv = fuse_conv_bn_eval(module.conv, module.bn)
                module.bn = nn.Identity()
        return self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean((2, 3))


def preprocess(images: torch.Tensor, mode: str) -> torch.Tensor:
    """The network input of ``images`` (``(N, 3, H, W)`` in ``[0, 1]``) for ``mode``."""
    if mode == "pytorch-fid":
        resized = F.interpolate(
            images.float(), size=(SIZE, SIZE), mode="bilinear", align_corners=False
        )
        return 2 * resized - 1
    if mode == "clean":
        return (clean_resize(images).to(images.device) - 128) / 128
    raise ValueError(f"Inception mode must be one of {MODES}, got {mode!r}")


def clean_resize(images: torch.Tensor) -> torch.Tensor:
    """clean-fid's resize: each channel of ``255 x``, PIL bicubic (mode ``F``) to 299, clipped."""
    values = (images.detach().to("cpu", torch.float64) * 255).to(torch.float32).numpy()
    out = np.empty((values.shape[0], 3, SIZE, SIZE), dtype=np.float32)
    for i, image in enumerate(values):
        for c, plane in enumerate(image):
            resized = Image.fromarray(np.ascontiguousarray(plane)).resize(
                (SIZE, SIZE), Image.BICUBIC
            )
            out[i, c] = np.asarray(resized).clip(0, 255)
    return torch.from_numpy(out)


_CACHE: dict[tuple, FIDInceptionV3] = {}
_LOCK = threading.Lock()


def model(
    weights_dir: str | os.PathLike | None = None,
    allow_unverified: bool = False,
    download: bool = True,
    device: torch.device | str = "cpu",
) -> FIDInceptionV3:
    """The FID Inception with the reference weights, built once per process and device.

    Batch norms are folded into the convolutions and the weights kept channels-last (about
    1.5x faster on the CPU; the features move by ~1e-6 relative).
    """
    path = weights.resolve(WEIGHTS, weights_dir, allow_unverified, download)
    key = (str(path), str(torch.device(device)))
    with _LOCK:
        if key not in _CACHE:
            network = FIDInceptionV3.from_file(path).fuse()
            _CACHE[key] = network.to(device, memory_format=torch.channels_last)
        return _CACHE[key]


@torch.inference_mode()
def features(
    images: torch.Tensor,
    mode: str = "pytorch-fid",
    batch_size: int = 50,
    weights_dir: str | os.PathLike | None = None,
    allow_unverified: bool = False,
    download: bool = True,
    network: FIDInceptionV3 | None = None,
) -> torch.Tensor:
    """Pool3 features, ``(N, 2048)`` float32 on the CPU, of ``(N, 3, H, W)`` images in ``[0, 1]``.

    Run on the images' device in batches of ``batch_size``. ``network`` overrides the weight
    lookup (a model built with :meth:`FIDInceptionV3.from_file`).
    """
    if mode not in MODES:
        raise ValueError(f"Inception mode must be one of {MODES}, got {mode!r}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"inception features: expected (N, 3, H, W) images, got {tuple(images.shape)}"
        )
    if network is None:
        network = model(weights_dir, allow_unverified, download, images.device)
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        batch = preprocess(images[start : start + batch_size], mode)
        chunks.append(network(batch.contiguous(memory_format=torch.channels_last)).float().cpu())
    return torch.cat(chunks) if chunks else torch.empty(0, FEATURES)
