"""Mask generators: the protocol, the registry and the per-image random stream.

A generator maps ``(index, height, width)`` plus its own parameters and a global ``seed`` to one
``bool (H, W)`` mask (``True`` = hole). The mask of image ``i`` depends only on the generator's
name, parameters, seed and ``i``: never on batch size, workers, ``--limit`` or evaluation order.

**Degenerate masks are skipped, never patched.** A draw with no hole pixel (nothing to
inpaint) or no known pixel (nothing to inpaint from) is not scored: the next draw of the same
image's stream is taken instead (attempt 1, 2, ... as for a hole-ratio range), and file masks
(``masks/folder.py``) take the next file of their order. Skips are counted and said on one
warning line per generator and process; a generator that draws only degenerate masks for an
image is a one-line error.
"""

from __future__ import annotations

import sys
import zlib
from abc import ABC, abstractmethod
from collections import Counter
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

        The first draw (attempt 0, 1, ...) that has both, and with ``ratio = (low, high)`` a
        hole ratio in ``[low, high]``, is kept (deterministic rejection sampling); degenerate
        draws are counted (:meth:`skip`). After :data:`MAX_RATIO_ATTEMPTS` draws a
        :class:`UsageError` (out-of-reach range) or :class:`MaskError` (only degenerate draws)
        says so.
        """
        degenerate = 0
        for attempt in range(MAX_RATIO_ATTEMPTS):
            drawn = self._attempt(index, height, width, seed, attempt)
            problem = degenerate_reason(drawn)
            if problem is not None:
                self.skip(problem)
                degenerate += 1
                continue
            if ratio is None or ratio[0] <= drawn.mean() <= ratio[1]:
                return drawn
        if degenerate == MAX_RATIO_ATTEMPTS:
            raise MaskError(
                f"mask generator {self.name!r} drew only masks with no hole or no known pixel "
                f"for image {index} at {height}x{width} ({MAX_RATIO_ATTEMPTS} draws)"
            )
        low, high = ratio if ratio is not None else (0.0, 1.0)
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
        return drawn.copy()  # callers may keep it: never a generator's cached array

    # -- degenerate masks -----------------------------------------------------------------------
    def skip(self, reason: str) -> None:
        """Count one skipped degenerate mask (``reason``: ``"no hole"`` or ``"no known"``)."""
        skipped = self.__dict__.setdefault("_skipped", Counter())
        skipped[reason] += 1

    @property
    def skipped(self) -> Counter[str]:
        """Degenerate masks skipped by this generator in this process, by reason."""
        return Counter(self.__dict__.get("_skipped", Counter()))

    def _warn_skipped(self, before: Counter[str], indices: Sequence[int], size: str) -> None:
        """One warning line, the first time this process skips masks of this generator."""
        new = self.skipped - before
        if not new or self.__dict__.get("_warned_skips"):
            return
        self.__dict__["_warned_skips"] = True
        counts = " and ".join(f"{n} with {reason} pixel" for reason, n in sorted(new.items()))
        print(
            f"warning: {self.title}: skipped {sum(new.values())} degenerate masks "
            f"({counts}) at {size} among images {min(indices)}-{max(indices)}; "
            f"{self.skip_rule} (further skips are counted, not repeated)",
            file=sys.stderr,
        )

    #: What replaces a skipped mask, for the warning line.
    skip_rule = "each image takes its next draw instead"

    @property
    def title(self) -> str:
        """How messages name this generator."""
        return f"mask {self.name!r}"

    def batch(
        self,
        indices: Sequence[int],
        height: int,
        width: int,
        seed: int = 0,
        ratio: RatioRange | None = None,
    ) -> torch.Tensor:
        """Masks of several images as a ``bool (N, 1, H, W)`` tensor."""
        before = self.skipped
        masks = np.stack([self.mask(int(i), height, width, seed, ratio) for i in indices])
        if len(indices):
            self._warn_skipped(before, indices, f"{width}x{height}")
        return torch.from_numpy(masks).unsqueeze(1)


def degenerate_reason(mask: np.ndarray) -> str | None:
    """``"no hole"`` or ``"no known"`` for a mask with no hole or no known pixel, else None."""
    if not mask.any():
        return "no hole"
    if mask.all():
        return "no known"
    return None


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
