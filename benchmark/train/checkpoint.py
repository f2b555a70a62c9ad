"""Checkpoints: ``<name>.checkpoint.safetensors`` beside the weights file, for ``--resume``.

Tensors: the fp32 model (``model.*``), Adam's state (``optim.<param>.<name>``) and torch's RNG
state (``rng.torch``); JSON metadata: the :class:`~benchmark.train.state.TrainState` fields, the
optimiser's parameter groups and the GradScaler state. Safetensors and JSON hold no pickled
objects, so reading a checkpoint runs no code (no ``torch.load`` is involved).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from benchmark.errors import DataError, UsageError
from benchmark.train.options import TrainConfig
from benchmark.train.state import TrainState

#: Options a resumed run must share with its checkpoint (the others may change).
RESUME_FIXED = (
    "architecture",
    "dataset",
    "data_dir",
    "masks",
    "batch_size",
    "lr",
    "lr_schedule",
    "loss",
    "limit",
    "val_fraction",
    "seed",
    "size",
    "augment",
)


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    state: TrainState,
) -> None:
    """Write the checkpoint atomically."""
    from benchmark.weights import save_tensors

    tensors = {f"model.{k}": v.float() for k, v in model.state_dict().items()}
    optim = optimizer.state_dict()
    for index, values in optim["state"].items():
        for name, value in values.items():
            tensors[f"optim.{index}.{name}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    scaler_state = {
        k: float(v) if torch.is_tensor(v) else v for k, v in scaler.state_dict().items()
    }
    meta = state.to_meta() | {"param_groups": optim["param_groups"], "scaler": scaler_state}
    save_tensors(path, tensors, meta)


def load_checkpoint(
    path: Path,
    config: TrainConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> dict[str, Any]:
    """Restore model, optimiser, scaler and RNG from ``path``; its metadata (the run state).

    A checkpoint of another run (see :data:`RESUME_FIXED`) is a :class:`UsageError`, one that
    does not fit the model or optimiser a :class:`DataError`.
    """
    from benchmark.weights import check_state, load_tensors

    tensors, meta, _ = load_tensors(path, what="checkpoint")
    check_resumable(meta, config, path)
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    check_state(path, weights, model.state_dict(), config.architecture, what="checkpoint")
    model.load_state_dict(weights)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (KeyError, ValueError) as exc:
        raise DataError(f"checkpoint {str(path)!r}: optimiser state does not fit ({exc})") from exc
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    if meta.get("scaler") and scaler.is_enabled():
        scaler.load_state_dict(meta["scaler"])
    return meta


def check_resumable(meta: dict[str, Any], config: TrainConfig, path: Path) -> None:
    """Raise a :class:`UsageError` unless ``config`` may continue the checkpoint's run."""
    stored = meta.get("config")
    if not isinstance(stored, dict):
        raise DataError(f"checkpoint {str(path)!r}: no run configuration in its metadata")
    for key in RESUME_FIXED:
        if stored.get(key) != getattr(config, key):
            option = "model" if key == "architecture" else "--" + key.replace("_", "-")
            raise UsageError(
                f"--resume: checkpoint {str(path)!r} was trained with {option} "
                f"{stored.get(key)!r}, not {getattr(config, key)!r}"
            )
    if config.lr_schedule == "cosine" and stored.get("epochs") != config.epochs:
        raise UsageError(
            f"--resume: checkpoint {str(path)!r} decays its rate over --epochs "
            f"{stored.get('epochs')!r}; resume with the same --epochs"
        )
