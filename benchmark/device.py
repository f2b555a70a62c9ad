"""Choosing the torch device from ``--device auto|cpu|cuda``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchmark.errors import UsageError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cuda`` without a GPU is an error."""
    import torch  # here, not at module level: the CLI's option parsing should not load torch

    if name not in DEVICE_CHOICES:
        raise UsageError(f"unknown device {name!r}; valid devices: {', '.join(DEVICE_CHOICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA device")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_description(device: torch.device) -> str:
    """Human-readable device name for run.json (GPU model, or CPU with its thread count)."""
    import torch

    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} torch threads)"


def autocast(device: torch.device):
    """Mixed precision (fp16) on CUDA; a no-op context elsewhere."""
    import torch

    return torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda")


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on the CPU (its convolutions are faster so), contiguous elsewhere."""
    import torch

    return torch.channels_last if device.type == "cpu" else torch.contiguous_format
