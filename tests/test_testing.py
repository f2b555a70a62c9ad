"""benchmark.testing: contract checks pass on sound entries and catch each kind of broken one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.datasets import TensorDataset
from benchmark.errors import UnknownNameError
from benchmark.masking import MaskGenerator
from benchmark.method import Method
from benchmark.testing import assert_contract, check, check_dataset, check_mask, check_method
from methods.floors import MeanFill


def failed(results) -> dict[str, str]:
    """``{check: reason}`` of the failed checks."""
    return {r.check: r.detail for r in results if not r.passed}


# -- methods --------------------------------------------------------------------------------------
class Noisy(MeanFill):
    def inpaint(self, masked, mask):
        return (super().inpaint(masked, mask) + torch.rand(masked.shape) * 0.01).clamp(0, 1)


class ReadsHoles(Method):
    def inpaint(self, masked, mask):
        return masked.clone()  # whatever the hole pixels hold leaks into the output


class BatchMean(Method):
    def inpaint(self, masked, mask):
        return torch.full_like(masked, float(masked.mean()))  # the mean of the whole batch


class OutOfRange(MeanFill):
    def inpaint(self, masked, mask):
        return super().inpaint(masked, mask) * 2 + 0.5


class EditsInputs(MeanFill):
    def inpaint(self, masked, mask):
        masked[:, :, 0, 0] = 0.5
        return super().inpaint(masked, mask)


class EvenSizesOnly(MeanFill):
    def inpaint(self, masked, mask):
        if masked.shape[-1] % 2:
            raise RuntimeError("width must be even")
        return super().inpaint(masked, mask)


class NeedsManyKnownPixels(MeanFill):
    def inpaint(self, masked, mask):
        if (~mask).flatten(1).sum(1).min() < 10:
            raise ValueError("not enough context")
        return super().inpaint(masked, mask)


def test_a_sound_method_passes_every_check(temp_method):
    name = temp_method("test-testing-mean", MeanFill)
    results = check_method(name)
    assert failed(results) == {}
    checks = [r.check for r in results]
    for mask in ("lines", "square"):
        for words in ("in [0, 1]", "composite", "deterministic", "not read", "in a batch"):
            assert any(c.startswith(mask) and words in c for c in checks), (mask, words)
    assert any("odd sizes" in c for c in checks) and any("near-full" in c for c in checks)


@pytest.mark.parametrize(
    ("cls", "check_words", "reason_words"),
    [
        (Noisy, "deterministic", "differ"),
        (ReadsHoles, "hole pixels are not read", "depends on hole pixels"),
        (BatchMean, "alone equals it in a batch", "differs from the batch"),
        (OutOfRange, "in [0, 1]", "[0, 1]"),
        (EditsInputs, "inputs unchanged", "modified its inputs"),
        (EvenSizesOnly, "odd sizes", "width must be even"),
        (NeedsManyKnownPixels, "near-full masks", "not enough context"),
    ],
)
def test_each_broken_method_fails_its_check(temp_method, cls, check_words, reason_words):
    name = temp_method(f"test-testing-{cls.__name__.lower()}", cls)
    failures = failed(check_method(name, masks=["square"]))
    matching = [c for c in failures if check_words in c]
    assert matching, failures
    assert reason_words in failures[matching[0]]


def test_a_method_that_cannot_be_built_fails_the_first_check_only(temp_method):
    class Abstract(Method):
        pass

    name = temp_method("test-testing-abstract", Abstract)
    results = check_method(name)
    assert len(results) == 1 and not results[0].passed
    assert "abstract" in results[0].detail


# -- masks ----------------------------------------------------------------------------------------
class GlobalRandom(MaskGenerator):
    def draw(self, rng, height, width):
        return np.random.random((height, width)) < 0.3  # ignores its stream: not reproducible


class Counter(MaskGenerator):
    """Each call draws the next square: depends on what was drawn before."""

    def __init__(self) -> None:
        self.calls = 0

    def draw(self, rng, height, width):
        self.calls += 1
        mask = np.zeros((height, width), bool)
        mask[: 1 + self.calls % (height - 1), :4] = True
        return mask


class FloatMasks(MaskGenerator):
    def draw(self, rng, height, width):
        return rng.random((height, width)) < 0.3

    def mask(self, index, height, width, seed=0, ratio=None):
        return super().mask(index, height, width, seed, ratio).astype(np.float32)


def test_a_sound_mask_passes_every_check():
    results = check_mask("square")
    assert failed(results) == {}
    assert {r.check.split(":")[0] for r in results[1:]} == {"32x32", "256x256"}


@pytest.mark.parametrize(
    ("cls", "check_words"),
    [
        (GlobalRandom, "the same mask per (seed, index)"),
        (Counter, "independent of batch size and order"),
        (FloatMasks, "bool (H, W)"),
    ],
)
def test_each_broken_mask_fails_its_check(temp_mask, cls, check_words):
    name = temp_mask(f"test-testing-{cls.__name__.lower()}", cls)
    failures = failed(check_mask(name, count=8))
    assert any(check_words in c for c in failures), failures


# -- data sets ------------------------------------------------------------------------------------
def _pixels(seed: int, count: int = 12) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 16, 16, 3), dtype=np.uint8)


def sound(*, split="test", size=None, data_dir=None):
    return TensorDataset(_pixels(0 if split == "test" else 1), split)


def leaky(*, split="test", size=None, data_dir=None):
    pixels = _pixels(0) if split == "test" else np.concatenate([_pixels(1), _pixels(0)[:3]])
    return TensorDataset(pixels, split)


def one_split(*, split="test", size=None, data_dir=None):
    return TensorDataset(_pixels(0), split)


class Unstable(TensorDataset):
    def images(self, indices):
        return super().images(indices).roll(int(torch.randint(1, 5, ())), dims=-1)


def unstable(*, split="test", size=None, data_dir=None):
    return Unstable(_pixels(0 if split == "test" else 1), split)


class OffLevels(TensorDataset):
    def images(self, indices):
        return super().images(indices) * 0.999


def off_levels(*, split="test", size=None, data_dir=None):
    return OffLevels(_pixels(0 if split == "test" else 1), split)


def test_sound_data_sets_pass_including_one_declared_single_split(temp_dataset):
    assert failed(check_dataset(temp_dataset("test-testing-sound", sound))) == {}
    assert failed(check_dataset(temp_dataset("test-testing-one-split", one_split))) == {}


@pytest.mark.parametrize(
    ("factory", "check_words"),
    [
        (leaky, "share no image"),
        (unstable, "stable index"),
        (off_levels, "8-bit levels"),
    ],
)
def test_each_broken_data_set_fails_its_check(temp_dataset, factory, check_words):
    name = temp_dataset(f"test-testing-{factory.__name__.replace('_', '-')}", factory)
    failures = failed(check_dataset(name))
    assert any(check_words in c for c in failures), failures


# -- selection by name ----------------------------------------------------------------------------
def test_check_selects_by_exact_name_and_adds_named_masks_to_method_checks(temp_method):
    name = temp_method("test-testing-by-name", MeanFill)
    results = check([name, "square:min_size=0.3,max_size=0.4"])
    kinds = {(r.kind, r.name) for r in results}
    assert kinds == {("method", name), ("mask", "square:min_size=0.3,max_size=0.4")}
    assert any(r.kind == "method" and r.check.startswith("square:min_size=0.3") for r in results), (
        "the method was not checked with the mask named beside it"
    )
    with pytest.raises(UnknownNameError, match="did you mean 'square'"):
        check(["squar"])
    with pytest.raises(UnknownNameError):
        check(["sq*"])  # no wildcards: exact names only
    with pytest.raises(UnknownNameError, match="not a registered method"):
        check(["square"], kind="method")


def test_a_name_of_two_kinds_is_checked_as_each_unless_one_is_chosen(temp_method):
    name = temp_method("square", MeanFill)  # a method named like the built-in mask family
    assert {r.kind for r in check([name])} == {"method", "mask"}
    assert {r.kind for r in check([name], kind="mask")} == {"mask"}


def test_assert_contract_lists_every_failed_check(temp_method):
    name = temp_method("test-testing-assert", ReadsHoles)
    with pytest.raises(AssertionError) as info:
        assert_contract(name)
    lines = str(info.value).splitlines()[1:]
    assert lines and all(line.startswith(f"FAIL  method {name}: ") for line in lines)
    assert_contract("mean")  # a sound one raises nothing
