"""Built-in data sets: importing this module registers them in ``DATASETS``."""

from benchmark.datasets import cifar10, folder, skimage_patches  # noqa: F401
