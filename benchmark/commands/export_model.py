"""``python -m benchmark export-model``: the shipped U-Nets as ONNX or TorchScript files.

The files follow the I/O convention of the ``onnx:`` and ``torchscript:`` methods: inputs
``image`` float32 (N, 3, H, W) in [0, 1] with holes 0 and ``mask`` float32 (N, 1, H, W) with
1 = hole, output ``(N, 3, H, W)`` in [0, 1]; batch, height and width are dynamic, any size.

Both files are traced, and tracing freezes Python branches on sizes, so the traced module is the
native forward pass rewritten without such branches: the push-pull fill unrolled to a fixed
depth (levels past 1x1 are exact identities) and the pad-to-16 made unconditional (a pad of 0
is a no-op; the size arithmetic itself is recorded). It gives the native results at every size.
"""

from __future__ import annotations

import argparse
import io
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import UsageError
from methods.unet import EPS, MULTIPLE

EXAMPLES = """\
examples:
  python -m benchmark export-model unet-fill --format onnx --out unet-fill.onnx
  python -m benchmark export-model unet --format torchscript --out unet.pt
  python -m benchmark run --methods unet-fill,onnx:unet-fill.onnx --masks lines

The files take image (N,3,H,W) in [0,1] with holes 0 and mask (N,1,H,W) with 1 = hole, and
return (N,3,H,W) in [0,1], at any batch size and image size.
"""

FORMATS = ("onnx", "torchscript")
#: Push-pull levels of the exported fill: enough for sides up to 2**16 pixels.
PUSH_PULL_LEVELS = 16
#: Side of the example input used for tracing (any multiple of 16 works).
TRACE_SIDE = 32
ONNX_OPSET = 17


def push_pull_fixed(masked: torch.Tensor, known: torch.Tensor, levels: int) -> torch.Tensor:
    """:func:`methods.unet.push_pull_fill` unrolled to ``levels`` levels (traceable).

    Once a level is 1x1 its single pixel is known (every mask keeps a known pixel), so the
    further levels return it unchanged and the result equals the recursive fill exactly.
    """
    pyramid = []
    for _ in range(levels):
        weight = F.avg_pool2d(known, 2, ceil_mode=True)
        coarse = F.avg_pool2d(masked * known, 2, ceil_mode=True) / weight.clamp_min(1e-6)
        pyramid.append((masked, known))
        masked, known = coarse, (weight > 0).to(masked.dtype)
    for fine, fine_known in reversed(pyramid):
        up = F.interpolate(masked, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        masked = fine * fine_known + up * (1 - fine_known)
    return masked


class ConventionUNet(nn.Module):
    """A loaded :class:`methods.unet.UNet` behind the ``(image, mask) -> image`` convention."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.refine = bool(model.refine)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = image
        if self.refine:
            fill = push_pull_fixed(image, 1 - mask, PUSH_PULL_LEVELS)
            x = torch.cat([fill, mask], 1)
        # methods.unet.UNet.forward with its padding made unconditional: the tracer records the
        # size arithmetic (so any size works), where an `if` on sizes would be frozen; the
        # network itself is the model's own body()
        height, width = x.shape[-2], x.shape[-1]
        pad_h, pad_w = (
            (MULTIPLE - height % MULTIPLE) % MULTIPLE,
            (MULTIPLE - width % MULTIPLE) % MULTIPLE,
        )
        top, left = pad_h // 2, pad_w // 2
        x = F.pad(x, (left, pad_w - left, top, pad_h - top), mode="replicate")
        y = m.body(x)[:, :, top : top + height, left : left + width]
        if not self.refine:
            return torch.sigmoid(y)
        y = torch.sigmoid(torch.logit(fill.clamp(EPS, 1 - EPS)) + y)
        return torch.where(mask > 0.5, y, image)


def convention_model(architecture: str, weights: str | None = None) -> ConventionUNet:
    """The shipped (or ``weights``) U-Net of ``architecture`` wrapped in the convention."""
    from methods.unet import WEIGHTS_DIR, load_model

    path = Path(weights) if weights else WEIGHTS_DIR / f"{architecture}.safetensors"
    model, _ = load_model(path, architecture)
    return ConventionUNet(model.eval().requires_grad_(False)).eval()


def _example() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    mask = (torch.rand(2, 1, TRACE_SIDE, TRACE_SIDE, generator=generator) < 0.3).float()
    image = torch.rand(2, 3, TRACE_SIDE, TRACE_SIDE, generator=generator) * (1 - mask)
    return image, mask


def export_bytes(module: nn.Module, fmt: str) -> bytes:
    """``module`` (taking ``image, mask``) as ONNX or TorchScript file contents."""
    example = _example()
    with torch.no_grad():
        if fmt == "torchscript":
            traced = torch.jit.trace(module, example, check_trace=False)
            buffer = io.BytesIO()
            torch.jit.save(traced, buffer)
            return buffer.getvalue()
        try:
            import onnx  # noqa: F401  (torch's ONNX writer needs it)
        except ImportError:
            raise UsageError(
                "export-model --format onnx needs the onnx package: "
                'pip install "inpaint-bench[onnx]"'
            ) from None
        axes = {0: "batch", 2: "height", 3: "width"}
        buffer = io.BytesIO()
        # The TorchScript-based exporter: it writes this model in seconds where the
        # torch.export-based one (dynamo=True, which also needs onnxscript) takes over a minute
        # and gives the same outputs; torch marks it deprecated, hence the filter.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                module,
                example,
                buffer,
                input_names=["image", "mask"],
                output_names=["output"],
                dynamic_axes={"image": axes, "mask": axes, "output": axes},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        return buffer.getvalue()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``export-model``."""
    from methods.unet import ARCHITECTURES

    parser.add_argument("architecture", choices=sorted(ARCHITECTURES), help="the U-Net to write")
    parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
    parser.add_argument("--out", required=True, help="the file to write")
    parser.add_argument("--weights", default=None, help="weights file (default: the shipped one)")


def run(args: argparse.Namespace) -> int:
    """``export-model`` subcommand: write the file and say how to benchmark it."""
    from benchmark.records import write_atomic

    data = export_bytes(convention_model(args.architecture, args.weights), args.fmt)
    write_atomic(args.out, data)
    method = "onnx" if args.fmt == "onnx" else "torchscript"
    print(f"wrote {args.out} ({len(data) / 1e6:.1f} MB, {args.architecture} as {args.fmt})")
    print(f"benchmark it with: --methods {args.architecture},{method}:{args.out}")
    return 0
