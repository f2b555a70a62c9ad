"""The training loop: :class:`Trainer` (one run) and :func:`train`; see :mod:`benchmark.train`."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import torch
from tqdm.auto import tqdm

from benchmark.device import autocast, available_cores, memory_format
from benchmark.errors import UsageError
from benchmark.train.checkpoint import load_checkpoint, save_checkpoint
from benchmark.train.data import TrainData, make_loader
from benchmark.train.distributed import setup
from benchmark.train.interrupt import CtrlC, Stop
from benchmark.train.loss import per_image_loss
from benchmark.train.options import TrainConfig, config_from_args, validate_config
from benchmark.train.report import epoch_line, quiet, say, summary
from benchmark.train.schedule import advance, build_scheduler
from benchmark.train.state import EpochSums, TrainResult, TrainState

#: Training images handed to the model's ``warm_start`` with ``--init``.
INIT_SAMPLE = 256


class Trainer:
    """One training run: data, model, optimiser, scheduler and the run state."""

    def __init__(self, config: TrainConfig) -> None:
        from benchmark.device import resolve_device
        from benchmark.trainable import get_trainable

        validate_config(config)
        self.trainable = get_trainable(config.architecture)
        if config.data_dir is not None:
            config.data_dir = str(config.data_dir)
        self.config = config
        self.group, self.device = setup(resolve_device(config.device))
        self.say = say if self.group.main else quiet
        self.cuda = self.device.type == "cuda"
        if self.device.type == "cpu":  # the ranks on one machine share its cores
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", self.group.world))
            torch.set_num_threads(max(1, available_cores() // local_world))
        self.out, self.checkpoint = config.out_path(), config.checkpoint_path()
        if config.workers is None:
            config.workers = min(4, max(1, available_cores() - 1)) if self.cuda else 1
        self.data = TrainData.build(config)
        self.batches = self.data.batches

        torch.manual_seed(config.seed)
        self.model = self.trainable.build_model()
        if config.init is not None and not config.resume and self.group.main:
            # rank 0 only: DDP hands rank 0's weights to the other ranks
            how = self.trainable.warm_start(self.model, config.init, self.init_sample())
            self.say(f"initialised {config.architecture} from {how}")
        self.model = self.model.to(self.device)
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=memory_format(self.device))
        # fused: one kernel per step on CUDA instead of several per parameter tensor
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, fused=self.cuda)
        # fp16 needs loss scaling; bfloat16 (the CPU's mixed precision) does not
        scaled = self.cuda and config.precision != "fp32"
        self.scaler = torch.amp.GradScaler("cuda", enabled=scaled)
        self.state = TrainState(
            config=asdict(config) | {"resume": False, "out": None, "progress": True}
        )
        self.sums = torch.zeros(2, device=self.device)  # loss, SSIM not yet in state.partial
        self.best: dict[str, torch.Tensor] | None = None  # best epoch's weights, fp16, CPU
        self.rank_digests: list[str] | None = None  # each rank's weights, under torchrun
        if config.resume:
            self.resume()
        per_epoch = self.batches.per_epoch
        self.scheduler = build_scheduler(
            self.optimizer,
            config.lr,
            config.lr_schedule,
            config.epochs * per_epoch,
            self.state.steps_done(per_epoch),
        )
        self.ddp: torch.nn.Module = self.model
        if self.group.active:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.cuda else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)

    def resume(self) -> None:
        """Continue from the checkpoint: model, optimiser, RNG, run state, best weights."""
        if not self.checkpoint.exists():
            raise UsageError(f"--resume: no checkpoint at {str(self.checkpoint)!r}")
        meta = load_checkpoint(
            self.checkpoint, self.config, self.model, self.optimizer, self.scaler
        )
        self.state.restore(meta)
        if self.state.best_epoch is not None:
            if not self.out.exists():  # else the next save would mislabel current weights
                raise UsageError(f"--resume: the best-epoch weights {str(self.out)!r} are missing")
            best, _ = self.trainable.load_weights(self.out)  # fp16 values, exactly
            self.best = {k: v.to(torch.float16) for k, v in best.state_dict().items()}
        where = f"epoch {self.state.epoch + 1}, after batch {self.state.batch}"
        self.say(f"resumed from {self.checkpoint}: {where}")

    def init_sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The first training batches (at least :data:`INIT_SAMPLE` images) for ``--init``."""
        images, masks = [], []
        for number in range(math.ceil(INIT_SAMPLE / self.config.batch_size)):
            batch_images, batch_masks = self.batches[number % self.batches.per_epoch]
            images.append(batch_images)
            masks.append(batch_masks)
        return torch.cat(images), torch.cat(masks)

    # -- files ------------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """Metadata of the weights file: the run's options and its best epoch's metrics."""
        state, config = self.state, self.config
        best = state.best_record()
        seconds = state.train_seconds
        return {
            "dataset": self.data.dataset.name,
            "split": "train",
            "masks": self.data.mask_names,
            "epochs": state.epoch,
            "best_epoch": state.best_epoch,
            "seed": config.seed,
            "batch_size": config.batch_size,
            "lr": config.lr,
            "lr_schedule": config.lr_schedule,
            "precision": config.precision,
            "loss": config.loss,
            "augment": config.augment,
            "train_images": len(self.data.train_idx),
            "val_images": len(self.data.val_idx),
            "validation": best.get("val") if best else None,
            "train_loss": best.get("loss") if best else None,
            "train_ssim": best.get("ssim") if best else None,
            "train_seconds": round(seconds, 1),
            "images_per_second": round(state.train_images / seconds, 1) if seconds else None,
            "data_wait_fraction": round(state.wait_seconds / seconds, 4) if seconds else None,
            "init": config.init,
            "ranks": self.group.world,
            "rank_weight_sha256": self.rank_digests,
            "device": str(self.device),
            "torch": torch.__version__,
        }

    def compare_ranks(self) -> None:
        """Under torchrun: every rank's weight digest, kept for the weights file's metadata.

        DDP keeps the ranks' weights equal; a difference is reported, never silently kept.
        """
        if not self.group.active:
            return
        from benchmark.weights import tensor_digest

        digests = self.group.gather_text(tensor_digest(self.model.state_dict()))
        self.rank_digests = digests
        if len(set(digests)) > 1:
            self.say(f"warning: the ranks' weights differ: {', '.join(d[:12] for d in digests)}")

    def save(self, improved: bool) -> None:
        """Write the checkpoint and the weights file (the best epoch's weights, fp16).

        Before the first epoch ends (Ctrl-C), the current weights stand in for the best.
        """
        from benchmark.weights import save_tensors

        if improved or self.best is None:
            self.best = {
                k: v.detach().to("cpu", torch.float16, copy=True)
                for k, v in self.model.state_dict().items()
            }
        save_checkpoint(self.checkpoint, self.model, self.optimizer, self.scaler, self.state)
        meta = {**self.metadata(), "architecture": self.trainable.architecture}
        save_tensors(self.out, self.best, meta)

    # -- training ---------------------------------------------------------------------------------
    def flush(self) -> None:
        """Add the on-device loss/SSIM sums (of all ranks) to the epoch's running sums.

        Syncs a GPU; under torchrun every rank calls it at the same steps (a collective).
        """
        loss_total, ssim_total = self.group.sum_(self.sums).tolist()
        self.state.partial.loss += loss_total
        self.state.partial.ssim += ssim_total
        self.sums.zero_()

    def step(self, images: torch.Tensor, masks: torch.Tensor) -> None:
        """One optimisation step on a batch already on the device, then the next step's rate.

        Under torchrun this rank takes its slice of the batch; its loss is its images' share
        of the whole batch's mean (times the rank count, as DDP averages the gradients).
        """
        from benchmark.metrics import ssim

        count = len(images)
        shard = self.group.shard(count)
        images, masks = images[shard], masks[shard]
        masked = images.masked_fill(masks, 0)
        x = self.trainable.model_input(masked, masks)
        with autocast(self.device, self.config.precision):
            pred = self.ddp(x.contiguous(memory_format=memory_format(self.device)))
        losses = per_image_loss(self.config.loss, pred.float(), images)
        loss = losses.mean() if not self.group.active else losses.sum() * self.group.world / count
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        advance(self.scheduler)
        with torch.no_grad():
            self.sums[0] += losses.detach().sum()
            if len(images):
                self.sums[1] += ssim(pred.detach().float(), images).sum()

    def epoch(self, epoch: int, batches: Iterator, ctrl_c: CtrlC) -> None:
        """Train the rest of ``epoch`` (from the saved batch position), validate, save.

        ``batches`` yields the run's batches in order; this takes the epoch's remaining ones.
        """
        config, state = self.config, self.state
        self.model.train()
        if state.batch == 0:
            state.partial = EpochSums()
        partial = state.partial
        bar = tqdm(
            total=self.batches.per_epoch,
            initial=state.batch,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            unit="batch",
            disable=not config.progress or not self.group.main,
            mininterval=1.0 if sys.stderr.isatty() else 30.0,
            dynamic_ncols=True,
        )
        while state.batch < self.batches.per_epoch:
            ctrl_c.check(self.group, self.device)
            start = time.perf_counter()
            images, masks = next(batches)
            images = images.to(self.device, non_blocking=True)
            masks = masks.to(self.device, non_blocking=True)
            waited = time.perf_counter() - start
            self.step(images, masks)
            partial.images += len(images)
            state.batch += 1
            bar.update()
            if not self.cuda or state.batch % 20 == 0:  # .item() syncs a GPU: not every step
                self.flush()
                seen = partial.images
                postfix = {"loss": f"{partial.loss / seen:.5g}"}
                bar.set_postfix(postfix, ssim=f"{partial.ssim / seen:.4f}", refresh=False)
            partial.wait += waited
            partial.seconds += time.perf_counter() - start
        self.flush()
        bar.close()
        record = state.finish_epoch(epoch)
        self.compare_ranks()
        if not self.group.main:  # rank 0 validates, chooses the best epoch and writes
            state.history.append(record)
            self.group.barrier()
            return
        if self.data.validation:
            start = time.perf_counter()
            record["val"] = self.data.validation.evaluate(
                self.model, self.trainable, self.device, config.loss
            )
            record["val_seconds"] = round(time.perf_counter() - start, 2)
        improved = state.record_epoch(record)
        self.save(improved)
        self.group.barrier()
        self.say(epoch_line(record, improved))

    def run(self) -> TrainResult:
        """Train the remaining epochs; Ctrl-C saves an exact checkpoint and returns early."""
        config, state = self.config, self.state
        ranks = f"; {self.group.world} ranks (DDP)" if self.group.active else ""
        self.say(
            f"training {config.architecture} on {self.data.dataset.name} (train split): "
            f"{len(self.data.train_idx)} images, {len(self.data.val_idx)} validation; masks "
            f"{', '.join(self.data.mask_names)}; {config.epochs} epochs of "
            f"{self.batches.per_epoch} batches of {config.batch_size}; device {self.device}"
            + (f" ({torch.get_num_threads()} threads)" if self.device.type == "cpu" else "")
            + ranks
        )
        interrupted = False
        try:
            with CtrlC(also_sigterm=self.group.active) as ctrl_c:
                per_epoch = self.batches.per_epoch
                first = state.steps_done(per_epoch)
                loader = make_loader(
                    self.batches, first, config.epochs * per_epoch, config.workers, self.cuda
                )
                batches = iter(loader)
                for epoch in range(state.epoch, config.epochs):
                    self.epoch(epoch, batches, ctrl_c)
        except Stop:
            interrupted = True
            self.flush()
            self.compare_ranks()
            if self.group.main:
                self.save(improved=False)
            self.group.barrier()
            self.say(
                f"interrupted in epoch {state.epoch + 1} after batch {state.batch}: "
                f"checkpoint saved to {self.checkpoint}; continue with --resume"
            )
        except KeyboardInterrupt:  # a second Ctrl-C: leave the last epoch's checkpoint alone
            interrupted = True
            self.say(f"stopped at once; the checkpoint {self.checkpoint} of the last epoch is kept")
        seconds = state.train_seconds
        result = TrainResult(
            out=self.out,
            checkpoint=self.checkpoint,
            epochs_done=state.epoch,
            best_epoch=state.best_epoch,
            history=state.history,
            images_per_second=state.train_images / seconds if seconds else 0.0,
            data_wait_fraction=state.wait_seconds / seconds if seconds else 0.0,
            train_seconds=seconds,
            interrupted=interrupted,
        )
        if not interrupted:
            self.say(summary(result, config))
        self.group.close()
        return result


def train(config: TrainConfig) -> TrainResult:
    """Train ``config.architecture`` as described in :mod:`benchmark.train`.

    The first Ctrl-C stops at the next step boundary and saves the checkpoint with the exact
    batch position (``interrupted=True`` in the result); ``--resume`` then continues exactly.
    """
    return Trainer(config).run()


def run(args: argparse.Namespace) -> int:
    """Run the ``train`` command; 0 when done, 130 when interrupted (checkpoint saved)."""
    result = train(config_from_args(args))
    return 130 if result.interrupted else 0
