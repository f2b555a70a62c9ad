"""The LPIPS trunks in plain torch: AlexNet, VGG16 and SqueezeNet 1.1 ``features``.

Each module has the layer indices of torchvision's ``features`` Sequential, so the torchvision
weight files (``alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth``,
``squeezenet1_1-b8a52dc0.pth``) load by their own key names (``features.0.weight``, ...); their
``classifier.*`` tensors are not used. ``forward`` returns the activations LPIPS compares: the
outputs of the layers before each index in ``taps`` (lpips' ``slice`` boundaries).
"""

from __future__ import annotations

import torch
from torch import nn


class Fire(nn.Module):
    """SqueezeNet's fire module, with torchvision's attribute names."""

    def __init__(self, inplanes: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [
                self.expand1x1_activation(self.expand1x1(x)),
                self.expand3x3_activation(self.expand3x3(x)),
            ],
            1,
        )


def _alexnet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


def _vgg16() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for width in (
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        "M",
    ):
        if width == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [
                nn.Conv2d(channels, int(width), kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
            ]
            channels = int(width)
    return nn.Sequential(*layers)


def _squeezenet1_1() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=3, stride=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(64, 16, 64, 64),
        Fire(128, 16, 64, 64),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(128, 32, 128, 128),
        Fire(256, 32, 128, 128),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(256, 48, 192, 192),
        Fire(384, 48, 192, 192),
        Fire(384, 64, 256, 256),
        Fire(512, 64, 256, 256),
    )


#: net name -> (builder, torchvision file, lpips head file, tap ends, channels per tap)
NETS = {
    "alex": (
        _alexnet,
        "alexnet-owt-7be5be79.pth",
        "alex.pth",
        (2, 5, 8, 10, 12),
        (64, 192, 384, 256, 256),
    ),
    "vgg": (_vgg16, "vgg16-397923af.pth", "vgg.pth", (4, 9, 16, 23, 30), (64, 128, 256, 512, 512)),
    "squeeze": (
        _squeezenet1_1,
        "squeezenet1_1-b8a52dc0.pth",
        "squeeze.pth",
        (2, 5, 8, 10, 11, 12, 13),
        (64, 128, 256, 384, 384, 512, 512),
    ),
}


class Trunk(nn.Module):
    """A torchvision ``features`` stack that returns the activation at the end of each tap."""

    def __init__(self, net: str) -> None:
        super().__init__()
        builder, _, _, taps, channels = NETS[net]
        self.features = builder()
        self.taps = taps
        self.channels = channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        start = 0
        for end in self.taps:
            for index in range(start, end):
                x = self.features[index](x)
            outputs.append(x)
            start = end
        return outputs
