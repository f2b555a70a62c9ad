"""Seeded stand-ins for the perceptual metrics' weight files and images, for the golden tests.

Both sides run this module: ``scripts/make_perceptual_golden.py`` (in a scratch environment
with the reference packages) and ``tests/test_perceptual_golden.py`` (in the project's own).
It needs only NumPy, torch and Pillow, plus ``benchmark.perceptual``'s module definitions for
the tensor names and shapes (the reference side loads the files strictly, so a wrong name or
shape fails there).

The weight files have the real names, key names, shapes and the legacy (pre-zip) ``torch.save``
format of the published files; their values are drawn from ``numpy.random.default_rng`` with a
fixed seed per file. The unused ``classifier.*`` tensors are zero tensors broadcast from one
element (stride 0), so the files stay small.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmark.perceptual.backbones import NETS, Trunk
from benchmark.perceptual.inception import FIDInceptionV3

SEED = 20240601
#: torchvision classifier shapes, kept in the files for their key names (never used)
CLASSIFIERS = {
    "alex": {
        "classifier.1": (4096, 9216),
        "classifier.4": (4096, 4096),
        "classifier.6": (1000, 4096),
    },
    "vgg": {
        "classifier.0": (4096, 25088),
        "classifier.3": (4096, 4096),
        "classifier.6": (1000, 4096),
    },
    "squeeze": {"classifier.1": (1000, 512, 1, 1)},
}
#: images: (count, height, width) of each set
LPIPS_SHAPE = (3, 64, 48)
MS_SSIM_SHAPE = (2, 180, 200)
FID_SHAPE = (8, 40, 40)


def _random_tensor(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """A plausible value for parameter ``name``: He-scaled convolutions, BN near identity."""
    if name.endswith("running_var") or (name.endswith("weight") and len(shape) == 1):
        values = rng.uniform(0.8, 1.2, shape)
    elif name.endswith(("running_mean", "bias")):
        values = rng.normal(0.0, 0.1, shape)
    else:  # a convolution weight
        fan_in = int(np.prod(shape[1:]))
        values = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    return torch.from_numpy(values.astype(np.float32))


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


def trunk_state(net: str) -> dict[str, torch.Tensor]:
    """Seeded tensors of a torchvision trunk file (``features.*`` plus a stride-0 classifier)."""
    rng = np.random.default_rng([SEED, 1, list(NETS).index(net)])
    state = {
        f"features.{k}": _random_tensor(rng, k, tuple(v.shape))
        for k, v in Trunk(net).features.state_dict().items()
    }
    for prefix, shape in CLASSIFIERS[net].items():
        state[f"{prefix}.weight"] = torch.zeros(1).expand(*shape)
        state[f"{prefix}.bias"] = torch.zeros(1).expand(shape[0])
    return state


def head_state(net: str) -> dict[str, torch.Tensor]:
    """Seeded non-negative LPIPS heads, ``lin{i}.model.1.weight`` of shape (1, C, 1, 1)."""
    rng = np.random.default_rng([SEED, 2, list(NETS).index(net)])
    return {
        f"lin{i}.model.1.weight": torch.from_numpy(
            rng.uniform(0.0, 0.1, (1, c, 1, 1)).astype(np.float32)
        )
        for i, c in enumerate(NETS[net][4])
    }


def inception_state() -> dict[str, torch.Tensor]:
    """Seeded tensors of ``pt_inception-2015-12-05-6726825d.pth`` (with its 1008-way ``fc``)."""
    rng = np.random.default_rng([SEED, 3])
    state = {
        k: v if k.endswith("num_batches_tracked") else _random_tensor(rng, k, tuple(v.shape))
        for k, v in FIDInceptionV3().state_dict().items()
    }
    state["fc.weight"] = torch.from_numpy(rng.normal(0, 0.02, (1008, 2048)).astype(np.float32))
    state["fc.bias"] = torch.zeros(1008)
    return state


def write_weights(folder: Path) -> dict[str, Path]:
    """Write every weight file under its reference name into ``folder``; name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for net, (_, trunk_file, head_file, _, _) in NETS.items():
        paths[trunk_file] = _save(trunk_state(net), folder / trunk_file)
        paths[head_file] = _save(head_state(net), folder / head_file)
    name = "pt_inception-2015-12-05-6726825d.pth"
    paths[name] = _save(inception_state(), folder / name)
    return paths


def _smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A photo-like uint8 RGB image: low-frequency colour fields plus a little grain."""
    coarse = rng.uniform(0, 255, (max(2, height // 8), max(2, width // 8), 3)).astype(np.uint8)
    image = np.asarray(
        Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.float64
    )
    image += rng.normal(0, 8, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _degrade(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """An 'inpainted' version of ``image``: a box refilled with a blurred, shifted patch."""
    height, width = image.shape[:2]
    out = image.astype(np.float64)
    top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
    box = out[top : top + height // 2, left : left + width // 2]
    box[:] = box.mean((0, 1)) * 0.7 + 0.3 * box + rng.normal(0, 12, box.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def write_images(folder: Path) -> dict[str, list[Path]]:
    """Seeded PNG sets: ``{set name: sorted files}`` for the LPIPS, MS-SSIM and FID tests.

    Sets ``lpips_a``/``lpips_b``, ``msssim_a``/``msssim_b`` and ``fid_real``/``fid_fake`` are
    paired by file name (``b``/``fake`` is the degraded ``a``/``real``).
    """
    rng = np.random.default_rng([SEED, 4])
    sets: dict[str, list[Path]] = {}
    for prefix, (count, height, width) in (
        ("lpips", LPIPS_SHAPE),
        ("msssim", MS_SSIM_SHAPE),
        ("fid", FID_SHAPE),
    ):
        first, second = ("real", "fake") if prefix == "fid" else ("a", "b")
        for name in (first, second):
            (folder / f"{prefix}_{name}").mkdir(parents=True, exist_ok=True)
        sets[f"{prefix}_{first}"], sets[f"{prefix}_{second}"] = [], []
        for i in range(count):
            image = _smooth_image(rng, height, width)
            for name, pixels in ((first, image), (second, _degrade(rng, image))):
                path = folder / f"{prefix}_{name}" / f"{i:03d}.png"
                Image.fromarray(pixels).save(path)
                sets[f"{prefix}_{name}"].append(path)
    return sets


def read_images(paths: list[Path]) -> torch.Tensor:
    """PNG files as an ``(N, 3, H, W)`` float32 tensor in ``[0, 1]`` (``ToTensor``'s values)."""
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(255)


def ids_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Paired float32 feature sets for P-IDS/U-IDS: ``separable`` and ``mixed``."""
    rng = np.random.default_rng([SEED, 5])
    real = rng.normal(0, 1, (60, 8)).astype(np.float32)
    separable = (real + np.float32(4.0)).astype(np.float32)
    real_mixed = rng.normal(0, 1, (300, 8)).astype(np.float32)
    mixed = (real_mixed + rng.normal(0.15, 0.8, real_mixed.shape)).astype(np.float32)
    return {"separable": (real, separable), "mixed": (real_mixed, mixed)}
