"""Mask generators: the protocol, the registry and the per-image random stream.

A generator maps ``(index, height, width)`` plus its own parameters and a global ``seed`` to one
``bool (H, W)`` mask (``True`` = hole). The mask of image ``i`` depends only on the generator's
name, parameters, seed and ``i``: never on batch size, workers, ``--limit`` or evaluation order.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

from benchmark.errors import BenchmarkError, DataError, UsageError
from benchmark.fingerprint import parameters_hash, public_state, source_hash
from benchmark.lazy import lazy_module
from benchmark.registry import Registry

if TYPE_CHECKING:
    import numpy as np
    import torch
else:  # imported on first use: ``list`` and ``--help`` never need them
    np = lazy_module("numpy")
    torch = lazy_module("torch")

#: Offset added to the seed stream used for training masks, so they never repeat evaluation masks.
TRAINING_STREAM = 1_000_003
#: Draws tried per image before a hole-ratio range is declared out of a family's reach.
MAX_RATIO_ATTEMPTS = 1000

RatioRange = tuple[float, float]


class MaskError(DataError):
    """A mask generator failed or broke the mask contract (one line naming the generator)."""


def parse_ratio_range(text: str) -> RatioRange:
    """``"LOW-HIGH"`` -> ``(low, high)``, both in [0, 1] and ``low <= high``.

    >>> parse_ratio_range("0.1-0.2")
    (0.1, 0.2)
    """
    low_text, sep, high_text = str(text).strip().partition("-")
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        low = high = float("nan")
    if not sep or not (0 <= low <= 1 and 0 <= high <= 1):
        raise UsageError(
            f"--mask-ratio: expected LOW-HIGH with fractions in [0, 1] (e.g. 0.1-0.2), got {text!r}"
        )
    if low > high:
        raise UsageError(f"--mask-ratio: LOW must not exceed HIGH, got {text!r}")
    return low, high


class MaskGenerator(ABC):
    """Base class of mask generators; subclasses implement :meth:`draw`."""

    #: Registered name, set by the registry decorator's caller through ``MASKS.build``.
    name: str = ""
    #: False for families that give every image the same mask (``center``): the contract tests
    #: then check that masks do *not* change with the seed or the index.
    varies: bool = True

    @abstractmethod
    def draw(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """Draw one ``bool (height, width)`` mask from ``rng``; ``True`` marks the hole."""

    def rng(self, seed: int, index: int) -> np.random.Generator:
        """The private random stream of image ``index`` for this generator and ``seed``."""
        generator_id = zlib.crc32(self.name.encode())
        return np.random.default_rng([seed, generator_id, index])

    def fingerprint(self) -> str:
        """Code hash plus every resolved parameter (defaults included): stored with records."""
        return f"code {source_hash(self)}; params {parameters_hash(public_state(self))}"

    def attempt_rng(self, seed: int, index: int, attempt: int) -> np.random.Generator:
        """Stream of draw ``attempt`` of image ``index``: attempt 0 is :meth:`rng`."""
        if attempt == 0:
            return self.rng(seed, index)
        generator_id = zlib.crc32(self.name.encode())
        return np.random.default_rng([seed, generator_id, index, attempt])

    def mask(
        self, index: int, height: int, width: int, seed: int = 0, ratio: RatioRange | None = None
    ) -> np.ndarray:
        """The mask of image ``index``: at least one hole pixel and one known pixel.

        With ``ratio = (low, high)`` the first draw (attempt 0, 1, ...) whose hole ratio lies in
        ``[low, high]`` is kept (deterministic rejection sampling); after
        :data:`MAX_RATIO_ATTEMPTS` draws a :class:`UsageError` says the range is out of reach.
        """
        if ratio is None:
            return self._attempt(index, height, width, seed, 0)
        low, high = ratio
        for attempt in range(MAX_RATIO_ATTEMPTS):
            drawn = self._attempt(index, height, width, seed, attempt)
            if low <= drawn.mean() <= high:
                return drawn
        raise UsageError(
            f"mask {self.name!r} cannot reach hole ratio {low:g}-{high:g} at {height}x{width}: "
            f"no draw in range for image {index} after {MAX_RATIO_ATTEMPTS} attempts "
            "(widen --mask-ratio or choose another mask family)"
        )

    def _attempt(self, index: int, height: int, width: int, seed: int, attempt: int) -> np.ndarray:
        rng = self.attempt_rng(seed, index, attempt)
        try:
            drawn = self.draw(rng, height, width)
        except BenchmarkError:
            raise  # already one clear line (a bad file, an unreachable parameter)
        except Exception as exc:  # a plug-in's bug must name the plug-in, not dump a traceback
            raise MaskError(
                f"mask generator {self.name!r} failed on image {index} at {height}x{width}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        shape, dtype = getattr(drawn, "shape", None), getattr(drawn, "dtype", None)
        if not isinstance(drawn, np.ndarray) or dtype != np.bool_ or shape != (height, width):
            raise MaskError(
                f"mask generator {self.name!r} drew {type(drawn).__name__} of shape {shape} and "
                f"dtype {dtype}, expected a numpy bool array of shape {(height, width)}"
            )
        drawn = drawn.copy()  # the fixes below must not write into a generator's cached array
        if not drawn.any():  # degenerate draw: make the centre pixel a hole
            drawn[height // 2, width // 2] = True
        if drawn.all():  # keep one known pixel so the image is not wholly unknown
            drawn[0, 0] = False
        return drawn

    def batch(
        self,
        indices: Sequence[int],
        height: int,
        width: int,
        seed: int = 0,
        ratio: RatioRange | None = None,
    ) -> torch.Tensor:
        """Masks of several images as a ``bool (N, 1, H, W)`` tensor."""
        masks = np.stack([self.mask(int(i), height, width, seed, ratio) for i in indices])
        return torch.from_numpy(masks).unsqueeze(1)


MASKS: Registry[MaskGenerator] = Registry(
    "mask", group="benchmark.masks", builtin_modules=["masks"]
)


def build_mask(spec) -> MaskGenerator:
    """Build the generator of ``spec`` (text or Spec); its random stream is keyed by its name."""
    from benchmark.registry import parse_spec

    spec = parse_spec(spec) if isinstance(spec, str) else spec
    generator = MASKS.build(spec)
    generator.name = MASKS.canonical(spec.name)
    return generator
