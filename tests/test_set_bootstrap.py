"""The gate's bootstrap of set metrics: each resample's FID and KID equal the library's on the
drawn images, the draws are seeded by n alone, and P-IDS/U-IDS are refused."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.perceptual.fid import _mmd2_unbiased, fid
from benchmark.perceptual.set_bootstrap import (
    fid_replicates,
    kid_replicates,
    replicates,
    resample_counts,
)


@pytest.fixture(scope="module")
def features() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    real = rng.normal(size=(40, 64)).astype(np.float32)
    fake = (real + 0.5 * rng.normal(size=real.shape) + 0.2).astype(np.float32)
    return real, fake


def test_every_resample_equals_the_library_on_the_drawn_images(features):
    real, fake = features
    counts = resample_counts(len(real), 4)
    assert counts.shape == (4, 40) and (counts.sum(1) == 40).all()
    fids, kids = fid_replicates(real, fake, counts), kid_replicates(real, fake, counts)
    for b, c in enumerate(counts):
        drawn = np.repeat(np.arange(len(real)), c)  # the resample as a multiset of images
        assert fids[b] == pytest.approx(fid(real[drawn], fake[drawn]), rel=1e-7)
        expected = _mmd2_unbiased(fake[drawn].astype(float), real[drawn].astype(float))
        assert kids[b] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert len(set(np.round(fids, 6))) == 4  # the resamples differ


def test_the_gated_value_is_the_tables_and_draws_depend_on_n_only(features):
    real, fake = features
    value, first = replicates("fid", real, fake, resamples=50)
    assert value == fid(real, fake)  # the table's number, to the bit
    _, again = replicates("fid", real, fake, resamples=50)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(resample_counts(40, 5), resample_counts(40, 5))
    assert not np.array_equal(resample_counts(40, 5), resample_counts(41, 5)[:, :40])
    kid_value, _ = replicates("kid", real, fake, resamples=10)
    assert kid_value == pytest.approx(_mmd2_unbiased(fake.astype(float), real.astype(float)))


@pytest.mark.parametrize("name", ["p-ids", "u-ids", "psnr"])
def test_metrics_without_a_bootstrap_are_refused(features, name):
    real, fake = features
    with pytest.raises(ValueError, match="the gate decides on fid, fid-clean, kid"):
        replicates(name, real, fake)


def test_too_few_images_are_refused(features):
    real, fake = features
    with pytest.raises(ValueError, match="at least 3 images"):
        replicates("fid", real[:2], fake[:2])
