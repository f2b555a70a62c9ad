"""``pconv``: a partial-convolution U-Net (Liu et al. 2018, "Image Inpainting for Irregular
Holes Using Partial Convolutions"), at the seed U-Net's depth and width.

Every 3x3 convolution is partial: it sees ``x * m`` (``m`` = 1 on valid pixels), its output is
scaled by ``sum(1) / sum(m)`` over the window (counted over all input channels) where
``sum(m) > 0`` and is 0 elsewhere, then the bias is added; the mask passed on is 1 wherever the
window held any valid pixel. Hole pixels therefore never reach the output, and holes shrink
layer by layer until the features are valid everywhere. The layout is ``unet``'s: encoder
32/64/128/256 (two partial convolutions each, 2x2 max-pooling of features and mask), bottleneck
512, decoder mirrored with 2x2 stride-2 transposed convolutions (no window overlap, so an
upsampled pixel is valid exactly when its source is: the mask is upsampled by nearest neighbour
and invalid outputs are zeroed) concatenated with the skip features, whose partial convolutions
count the valid pixels of both halves. The zero padding at the image border counts as valid, so
away from holes each layer is exactly an ordinary convolution. Sizes that are not multiples of
16 are padded by replication (image and mask alike) and cropped back.

Output: as in ``unet-fill``, the holes are first filled by the push-pull pyramid
(:func:`methods.unet.push_pull_fill`, known pixels only) and the last partial convolution
(3 filters) adds a correction to that fill's logit, ``sigmoid(logit(fill) + head)``; known
pixels are copied through, so the loss is spent on the holes. The network's own input is the
masked image with the mask (the paper's input; the fill enters only at the output).

The shipped weights (``methods/weights/pconv.safetensors``, fp16) were trained from scratch on
the 2-core CPU with ``python -m benchmark train pconv --precision mixed --batch-size 256
--epochs 100 --augment --lr-schedule cosine`` (MSE, Adam 1e-3, bfloat16 autocast); the file's
metadata records the epochs and options. ``--init`` can instead start from ``unet-fill``'s
weights (:meth:`PConvMethod.warm_start`). Good at: thin and medium irregular holes (lines);
large squares still blur, like the other U-Nets. Cost: about the price of ``unet-fill`` plus a
box filter of the mask per layer.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import DataError
from benchmark.method import METHODS
from benchmark.trainable import WeightsMethod
from benchmark.weights import load_tensors
from methods.unet import EPS, MULTIPLE, WEIGHTS_DIR, push_pull_fill


def valid_count(mask: torch.Tensor, channels: int, kernel: int) -> torch.Tensor:
    """Valid input positions in each ``kernel`` x ``kernel`` window over ``channels`` channels.

    ``mask`` ``(N, 1 or channels, H, W)``, 1 = valid; returns ``(N, 1, H, W)``. The zero
    padding outside the image counts as valid.
    """
    holes = channels - mask.sum(1, keepdim=True) * (channels // mask.shape[1])
    box = torch.ones(1, 1, kernel, kernel, dtype=holes.dtype, device=holes.device)
    return channels * kernel * kernel - F.conv2d(holes, box, padding=kernel // 2)


class PartialConv2d(nn.Conv2d):
    """A partial convolution (stride 1, odd square kernel, "same" zero padding).

    ``forward(x, mask)``: ``x`` ``(N, C, H, W)``, ``mask`` ``(N, 1, H, W)`` (one mask for every
    channel) or ``(N, C, H, W)``, float, 1 = valid. Returns ``(y, new_mask)`` with ``new_mask``
    ``(N, 1, H, W)``. Hand-written: neither torch nor kornia ships a partial convolution.
    """

    def __init__(self, cin: int, cout: int, kernel_size: int = 3) -> None:
        super().__init__(cin, cout, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.kernel_size[0]
        window = self.in_channels * k * k
        with torch.no_grad():
            valid = valid_count(mask, self.in_channels, k)
            new_mask = (valid > 0.5).to(x.dtype)
            scale = window / valid.clamp_min(1.0) * new_mask
        raw = F.conv2d(x * mask, self.weight, None, padding=self.padding)
        # (raw * scale + bias) * new_mask: scale is 0 where new_mask is, and this order keeps
        # every elementwise step in raw's memory layout (channels_last on the CPU)
        bias = self.bias.view(1, -1, 1, 1).to(raw.dtype)
        return (raw * scale.to(raw.dtype) + bias) * new_mask.to(raw.dtype), new_mask


class PartialDoubleConv(nn.Module):
    """Two partial 3x3 convolutions, each followed by ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = PartialConv2d(cin, cout)
        self.conv2 = PartialConv2d(cout, cout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, mask = self.conv1(x, mask)
        x, mask = self.conv2(F.relu(x), mask)
        return F.relu(x), mask


class PConvUNet(nn.Module):
    """Partial-convolution U-Net: ``(N, 4, H, W)`` (masked RGB, hole) -> ``(N, 3, H, W)``.

    Channel 4 is the mask (1 = hole); hole pixels of the RGB channels are never read. Output in
    [0, 1]; known pixels are copied from the input. Any ``H, W``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = PartialDoubleConv(3, 32)
        self.enc2 = PartialDoubleConv(32, 64)
        self.enc3 = PartialDoubleConv(64, 128)
        self.enc4 = PartialDoubleConv(128, 256)
        self.bottleneck = PartialDoubleConv(256, 512)
        self.up4, self.dec4 = nn.ConvTranspose2d(512, 256, 2, 2), PartialDoubleConv(512, 256)
        self.up3, self.dec3 = nn.ConvTranspose2d(256, 128, 2, 2), PartialDoubleConv(256, 128)
        self.up2, self.dec2 = nn.ConvTranspose2d(128, 64, 2, 2), PartialDoubleConv(128, 64)
        self.up1, self.dec1 = nn.ConvTranspose2d(64, 32, 2, 2), PartialDoubleConv(64, 32)
        self.head = PartialConv2d(32, 3)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.zeros_(self.head.weight)  # training starts at the push-pull fill

    @staticmethod
    def _up(up: nn.ConvTranspose2d, x: torch.Tensor, mask: torch.Tensor):
        mask = F.interpolate(mask, scale_factor=2.0, mode="nearest")
        return F.relu(up(x)) * mask, mask

    def _merge(self, dec: PartialDoubleConv, up, skip):
        (x, m_up), (s, m_skip) = up, skip
        c_up, c_skip = x.shape[1], s.shape[1]
        mask = torch.cat([m_up.expand(-1, c_up, -1, -1), m_skip.expand(-1, c_skip, -1, -1)], 1)
        return dec(torch.cat([x, s], 1), mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        masked, hole = x[:, :3].float(), x[:, 3:4].float()
        known = 1 - hole
        masked = masked * known
        fill = push_pull_fill(masked, known)
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % MULTIPLE, -width % MULTIPLE
        y, m = masked.to(x.dtype), known.to(x.dtype)
        if pad_h or pad_w:
            top, left = pad_h // 2, pad_w // 2
            pad = (left, pad_w - left, top, pad_h - top)
            y, m = F.pad(y, pad, mode="replicate"), F.pad(m, pad, mode="replicate")
        e1 = self.enc1(y, m)
        e2 = self.enc2(*(F.max_pool2d(t, 2) for t in e1))
        e3 = self.enc3(*(F.max_pool2d(t, 2) for t in e2))
        e4 = self.enc4(*(F.max_pool2d(t, 2) for t in e3))
        d = self.bottleneck(*(F.max_pool2d(t, 2) for t in e4))
        d = self._merge(self.dec4, self._up(self.up4, *d), e4)
        d = self._merge(self.dec3, self._up(self.up3, *d), e3)
        d = self._merge(self.dec2, self._up(self.up2, *d), e2)
        d = self._merge(self.dec1, self._up(self.up1, *d), e1)
        out, _ = self.head(*d)
        if pad_h or pad_w:
            out = out[..., top : top + height, left : left + width]
        out = torch.sigmoid(torch.logit(fill.clamp(EPS, 1 - EPS)) + out.float())
        return torch.where(hole > 0.5, out, masked)


def unet_key(key: str) -> str:
    """The ``unet-fill`` state-dict key of a ``pconv`` key (``enc1.conv2.weight`` ->
    ``enc1.2.weight``; ``up4.weight`` -> ``up4.0.weight``)."""
    parts = key.split(".")
    if len(parts) == 3 and parts[1] in ("conv1", "conv2"):
        return f"{parts[0]}.{0 if parts[1] == 'conv1' else 2}.{parts[2]}"
    if parts[0].startswith("up"):
        return f"{parts[0]}.0.{parts[1]}"
    return key


#: Ridge weight of :func:`fit_layers`, relative to the mean diagonal of the normal equations.
RIDGE = 1e-3
#: Pixels sampled per layer by :func:`fit_layers`.
FIT_SAMPLES = 32768


@torch.no_grad()
def fit_layers(
    model: PConvUNet, teacher: nn.Module, images: torch.Tensor, masks: torch.Tensor
) -> None:
    """Refit each partial convolution of ``model`` to ``teacher``'s (``unet-fill``) layer.

    Layer by layer, in forward order: the layer's weights and bias are the ridge regression
    (pulled towards their current values) of ``teacher``'s pre-activation output on the
    partial convolution's renormalised input windows, at valid output pixels, with the
    earlier layers already refitted. Partial convolutions renormalise where an ordinary
    convolution saw ``unet-fill``'s push-pull fill, so copied weights alone drift badly near
    holes; this closed-form fit removes most of that before fine-tuning. Hand-written: it is a
    few lines of least squares, not a library's job.
    """
    masked = images.masked_fill(masks, 0)
    hole = masks.to(images.dtype)
    targets: dict[str, torch.Tensor] = {}
    hooks = [
        module.register_forward_hook(
            # a copy: unet-fill's in-place ReLU would overwrite the pre-activation output
            lambda _m, _i, out, name=name: targets.__setitem__(name, out.detach().clone())
        )
        for name, module in teacher.named_modules()
        if type(module) is nn.Conv2d
    ]
    teacher.eval()(torch.cat([masked, hole], 1))
    for hook in hooks:
        hook.remove()
    generator = torch.Generator().manual_seed(0)
    model.eval()
    for name, layer in [(n, m) for n, m in model.named_modules() if isinstance(m, PartialConv2d)]:
        seen: dict[str, torch.Tensor] = {}

        def keep(_m, inputs, _out, seen=seen):
            seen["x"], seen["mask"] = inputs

        hook = layer.register_forward_hook(keep)
        model(PConvMethod.model_input(masked, masks))
        hook.remove()
        x, mask = seen["x"], seen["mask"]
        target = targets[unet_key(name + ".weight").rsplit(".", 1)[0]]
        k, cin = layer.kernel_size[0], layer.in_channels
        valid = valid_count(mask, cin, k).flatten(1)  # (N, L)
        patches = F.unfold(x * mask, k, padding=k // 2)  # (N, cin*k*k, L)
        rows = (valid > 0.5).nonzero()
        rows = rows[torch.randperm(len(rows), generator=generator)[:FIT_SAMPLES]]
        n, pos = rows[:, 0], rows[:, 1]
        scale = (cin * k * k / valid[n, pos])[:, None]
        design = torch.cat([patches[n, :, pos] * scale, torch.ones(len(n), 1)], 1).double()
        wanted = target.flatten(2)[n, :, pos].double()
        start = torch.cat([layer.weight.flatten(1), layer.bias[:, None]], 1).T.double()
        gram = design.T @ design
        ridge = RIDGE * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
        factor = torch.linalg.cholesky(gram + ridge)  # symmetric positive definite
        solution = torch.cholesky_solve(design.T @ wanted + ridge @ start, factor)
        layer.weight.copy_(solution[:-1].T.reshape(layer.weight.shape))
        layer.bias.copy_(solution[-1])


@METHODS.register("pconv")
class PConvMethod(WeightsMethod):
    """Partial-convolution U-Net (Liu et al. 2018) refining a push-pull fill (or weights=PATH)."""

    architecture = "pconv"
    weights_dir = WEIGHTS_DIR
    slow_note = "1-2 images/s at 256x256 on 2 CPU cores: use --device cuda, or telea/ns"

    @classmethod
    def build_model(cls) -> PConvUNet:
        return PConvUNet()

    @classmethod
    def model_input(cls, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.cat([masked, mask.to(masked.dtype)], 1)

    @classmethod
    def warm_start(
        cls, model: nn.Module, path: str | Path, sample: tuple[torch.Tensor, torch.Tensor]
    ) -> str:
        """Start ``model`` from a ``pconv`` file, or fit it to a ``unet-fill`` file's layers.

        From ``unet-fill``: every layer starts at the matching ``unet-fill`` layer (the first
        keeps the RGB part of its 4-channel kernel), then each partial convolution is refitted
        in order by :func:`fit_layers` on ``sample`` (training images and masks). (Zeroing the
        head instead, to start at the push-pull fill, leaves the body without gradient at
        first; Adam then drifts it and the last decoder layer's ReLUs died in a trial run.)
        """
        _, metadata, digest = load_tensors(path)
        if metadata.get("architecture") == cls.architecture:
            return super().warm_start(model, path, sample)
        if metadata.get("architecture") != "unet-fill":
            raise DataError(
                f"weights file {str(path)!r}: pconv starts from 'pconv' or 'unet-fill' weights, "
                f"not {metadata.get('architecture')!r}"
            )
        from methods.unet import UNetFillMethod

        teacher, _ = UNetFillMethod.load_weights(path)
        state = model.state_dict()
        for key, value in state.items():
            source = teacher.state_dict()[unet_key(key)].to(value.dtype)
            state[key] = source[:, :3] if key == "enc1.conv1.weight" else source
        model.load_state_dict(state)
        fit_layers(model, teacher, *sample)
        return (
            f"unet-fill weights from {path} ({digest[:12]}), partial convolutions refitted "
            f"layer by layer on {len(sample[0])} training images"
        )
