"""Choosing the torch device from ``--device auto|cpu|cuda``, and the cores this process may use."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from benchmark.errors import UsageError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def available_cores() -> int:
    """Cores this process may use (its CPU affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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


#: ``--precision`` of ``train``: ``auto`` is ``mixed`` on CUDA and ``fp32`` on the CPU.
PRECISION_CHOICES = ("auto", "fp32", "mixed")


def autocast(device: torch.device, precision: str = "auto"):
    """Mixed precision: fp16 on CUDA (unless ``precision="fp32"``), bfloat16 on the CPU only
    when ``precision="mixed"``; a no-op context otherwise.

    bfloat16 needs no loss scaling; on CPUs with AMX or AVX-512 BF16 its convolutions run about
    1.5-2x faster than float32 (oneDNN), elsewhere torch emulates it slowly.
    """
    import torch

    if precision not in PRECISION_CHOICES:
        raise UsageError(f"unknown precision {precision!r}; valid: {', '.join(PRECISION_CHOICES)}")
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16, enabled=precision != "fp32")
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "mixed")


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on the CPU (its convolutions are faster so), contiguous elsewhere."""
    import torch

    return torch.channels_last if device.type == "cpu" else torch.contiguous_format
