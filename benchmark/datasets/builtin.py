"""Built-in data sets: importing this module registers them in ``DATASETS``."""

from benchmark.datasets import celebahq, cifar10, ffhq, folder, places365, skimage_patches  # noqa: F401
