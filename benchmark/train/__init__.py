"""Training learned methods: ``python -m benchmark train NAME ...``.

``NAME`` is any registered method that implements :class:`benchmark.trainable.Trainable`
(``unet``, ``unet-fill``, ``pconv`` and plug-ins alike): it supplies the network, its input
and its weights files; everything below is shared.

Like the seed: Adam, MSE between the predicted full image and the original, SSIM tracked per
step (with :func:`benchmark.metrics.ssim`, the leaderboard's code), batch 32, 10 epochs, lr 1e-3.
Three options go beyond the seed and are off by default: ``--augment`` (random flips, turns,
channel orders and inversions of the training images), ``--loss psnr`` (the negative
per-image PSNR, which the leaderboard averages, instead of MSE, which lets easy images slide)
and ``--lr-schedule cosine`` (the rate decays from ``--lr`` to 0 over the run).
The network input is the method's ``model_input(masked, mask)`` (the masked image with hole
pixels 0, plus the mask for ``unet-fill`` and ``pconv``); the output is a full image, and
validation scores the harness composite (prediction in the hole, original elsewhere), as the
leaderboard does. ``--init PATH`` starts from a weights file (the method's ``warm_start``
decides what it accepts) instead of a fresh model.

Data: the ``train`` split of the data set, shuffled once with ``--seed``; the first
``--val-fraction`` of that order is the validation slice (never the test split), the rest
(at most ``--limit`` images) is trained on. Each epoch reshuffles the training images with
``(seed, epoch)``. Masks are drawn fresh for every image from the seed stream
``seed + TRAINING_STREAM`` with a running image counter as index, so they never repeat the
evaluation masks; with several ``--masks`` the images of a batch alternate between them.
Validation masks are fixed (stream ``seed + 2 * TRAINING_STREAM``): every validation image is
scored once with each mask family. Batches are a pure function of ``(seed, epoch, batch)``, so
the worker count never changes the result and a resumed run continues exactly.

Files: ``--out`` (weights: the best epoch by validation loss, fp16, rewritten atomically when an
epoch improves on it) and beside it ``<name>.checkpoint.safetensors`` (fp32 model, Adam state,
epoch and batch position, RNG state, history; rewritten atomically after every epoch and on
Ctrl-C). ``--resume`` continues from the checkpoint.

Data-parallel: ``python -m torch.distributed.run --nproc_per_node N -m benchmark train ...``
runs N ranks with DDP (NCCL on GPUs, gloo on CPUs). Every rank builds the same global batch and
trains on its contiguous slice of it, with the loss scaled so that the averaged gradient is the
whole batch's; results depend on N only through floating-point summation order. Rank 0 alone
validates, picks the best epoch and writes files while the others wait at a barrier; a Ctrl-C
(SIGINT, or the SIGTERM torchrun passes on) is agreed on by all ranks at the next step, and
rank 0 saves the checkpoint. The weights file records each rank's weight digest.

Modules: :mod:`~benchmark.train.options` (the command's options), :mod:`~benchmark.train.data`
(split, batches, loader), :mod:`~benchmark.train.validation`, :mod:`~benchmark.train.loss`,
:mod:`~benchmark.train.schedule` (torch's ``LambdaLR``), :mod:`~benchmark.train.state` (the run
state), :mod:`~benchmark.train.checkpoint`, :mod:`~benchmark.train.loop` (the trainer),
:mod:`~benchmark.train.distributed` (torchrun), :mod:`~benchmark.train.interrupt` (Ctrl-C) and
:mod:`~benchmark.train.report` (what it prints).
"""

from benchmark.train.data import TrainBatches, augment, split_indices
from benchmark.train.loop import Trainer, run, train
from benchmark.train.loss import LOSSES, per_image_loss
from benchmark.train.options import EXAMPLES, TrainConfig, add_arguments, config_from_args
from benchmark.train.schedule import LR_SCHEDULES, build_scheduler, lr_factor
from benchmark.train.state import TrainResult, TrainState

__all__ = [
    "EXAMPLES",
    "LOSSES",
    "LR_SCHEDULES",
    "TrainBatches",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "Trainer",
    "add_arguments",
    "augment",
    "build_scheduler",
    "config_from_args",
    "lr_factor",
    "per_image_loss",
    "run",
    "split_indices",
    "train",
]
