"""LPIPS v0.1 (Zhang et al. 2018) on AlexNet, VGG16 or SqueezeNet 1.1: ``lpips-alex``,
``lpips-vgg``, ``lpips-squeeze`` (lower is better), equal to the ``lpips`` 0.1.4 package.

For images ``x, y`` in ``[0, 1]``: scale to ``[-1, 1]`` (``2x - 1``, lpips' ``normalize=True``),
apply lpips' ScalingLayer ``(v - shift) / scale`` with ``shift = (-.030, -.088, -.188)`` and
``scale = (.458, .448, .450)``, take the trunk's activations ``f_l`` at each tap, unit-normalise
them over channels (``f / (||f|| + 1e-10)``), and sum over taps the spatial mean of the linear
head applied to the squared difference::

    LPIPS(x, y) = sum_l mean_hw( w_l . (f_l(x)/|f_l(x)| - f_l(y)/|f_l(y)|)^2 )

The trunk weights are torchvision's ImageNet files, the heads lpips' ``weights/v0.1`` files
(:mod:`benchmark.perceptual.weights`).
"""

from __future__ import annotations

import os
import threading

import torch
from torch import nn

from benchmark.errors import DataError
from benchmark.perceptual import weights
from benchmark.perceptual.backbones import NETS, Trunk

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10  # lpips.normalize_tensor


class LPIPS(nn.Module):
    """The LPIPS network of one trunk; ``forward(x, y)`` gives one value per image, ``(N,)``."""

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in NETS:
            raise ValueError(f"LPIPS net must be one of {sorted(NETS)}, got {net!r}")
        self.net = net
        self.trunk = Trunk(net)
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in self.trunk.channels)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_files(
        cls, net: str, trunk_path: str | os.PathLike, head_path: str | os.PathLike
    ) -> LPIPS:
        """Build from a torchvision trunk file and an lpips head file (their own key names)."""
        model = cls(net)
        trunk = weights.read_state_dict(trunk_path)
        unknown = sorted(k for k in trunk if not k.startswith(("features.", "classifier.")))
        if unknown:
            raise DataError(
                f"weights file {str(trunk_path)!r}: unexpected tensor {unknown[0]!r} for a "
                f"torchvision {net} trunk"
            )
        weights.take(trunk, model.trunk.features, str(trunk_path), prefix="features.")
        heads = weights.read_state_dict(head_path)
        for index, head in enumerate(model.heads):
            weights.take(heads, head, str(head_path), prefix=f"lin{index}.model.1.")
        extra = sorted(set(heads) - {f"lin{i}.model.1.weight" for i in range(len(model.heads))})
        if extra:
            raise DataError(
                f"weights file {str(head_path)!r}: unexpected tensor {extra[0]!r} for "
                f"LPIPS-{net} heads"
            )
        return model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """LPIPS of each pair of ``(N, 3, H, W)`` images in ``[0, 1]``."""
        n = x.shape[0]
        both = torch.cat([x, y]).to(self.shift.dtype)
        both = ((2 * both - 1 - self.shift) / self.scale).contiguous(
            memory_format=torch.channels_last
        )
        total = torch.zeros(n, device=x.device, dtype=both.dtype)
        for feature, head in zip(self.trunk(both), self.heads):
            unit = feature / (feature.square().sum(1, keepdim=True).sqrt() + EPS)
            diff = (unit[:n] - unit[n:]).square()
            total = total + head(diff).mean((2, 3)).flatten()
        return total


_CACHE: dict[tuple, LPIPS] = {}
_LOCK = threading.Lock()


def model(
    net: str = "alex",
    weights_dir: str | os.PathLike | None = None,
    allow_unverified: bool = False,
    download: bool = True,
    device: torch.device | str = "cpu",
) -> LPIPS:
    """The LPIPS model of ``net`` with its reference weights, built once per process and device.

    Its weights are kept channels-last, like the inputs ``forward`` makes (about 1.2x faster on
    the CPU than contiguous tensors, same values within 1e-7).
    """
    if net not in NETS:
        raise ValueError(f"LPIPS net must be one of {sorted(NETS)}, got {net!r}")
    _, trunk_file, head_file, _, _ = NETS[net]
    trunk = weights.resolve(trunk_file, weights_dir, allow_unverified, download)
    head = weights.resolve(head_file, weights_dir, allow_unverified, download)
    key = (net, str(trunk), str(head), str(torch.device(device)))
    with _LOCK:
        if key not in _CACHE:
            network = LPIPS.from_files(net, trunk, head)
            _CACHE[key] = network.to(device, memory_format=torch.channels_last)
        return _CACHE[key]


@torch.inference_mode()
def lpips(
    result: torch.Tensor,
    target: torch.Tensor,
    net: str = "alex",
    weights_dir: str | os.PathLike | None = None,
    allow_unverified: bool = False,
    download: bool = True,
) -> torch.Tensor:
    """LPIPS v0.1 per image, ``(N,)`` float32, of ``(N, 3, H, W)`` images in ``[0, 1]``.

    Computed on the images' device. ``net`` is ``alex`` (``lpips-alex``), ``vgg`` or ``squeeze``.
    """
    if result.shape != target.shape or result.ndim != 4 or result.shape[1] != 3:
        raise ValueError(
            f"lpips: expected two (N, 3, H, W) tensors of one shape, got {tuple(result.shape)} "
            f"and {tuple(target.shape)}"
        )
    network = model(net, weights_dir, allow_unverified, download, result.device)
    return network(result, target).float()
