"""MoCo v2 pretraining: ``Trainer(config).run()`` or ``pretrain(config)``; ``python -m pipelines.pretrain`` wraps it.

Every setting is checked and every input folder scanned before the first step. The state needed to resume exactly
(model with queue, optimizer, epoch and step, RNG states) is checkpointed atomically to ``<out>/checkpoint_last.pth.tar``;
``resume="auto"`` continues from it. Runs on one process, or under ``torchrun`` with DDP (NCCL on GPUs, gloo on CPUs).
``config.loader`` picks the data path (``data.loaders.two_view_loader``): "torchvision" (``TwoViewDataset`` in
DataLoader workers) or "dali" (``data.dali.two_view``; "auto", the default, takes it when NVIDIA DALI is installed);
both take each epoch's batches of files from (seed, epoch, rank) and can start an epoch at any step, so resume is
exact with either.

Resume is strict: the checkpoint is read with ``weights_only`` (``config.trust_checkpoint`` allows full unpickling),
its configuration must equal this run's in every setting but ``RESUME_MAY_CHANGE`` (all differences are named), and
``log.jsonl`` is cut back to the checkpoint's step, so no step is logged twice. Nothing a run produced is lost: an
epoch's checkpoint is written before the kNN monitor runs, whose failure is reported (a warning, a ``log.jsonl``
event, ``knn_monitor_error`` in the history and the summary) while training goes on; and the temporaries of
checkpoint writes that a kill interrupted are removed when a run starts (``io.remove_stale_temporaries``).
"""

import json
import math
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import inv_kernels
from inv_kernels.data.folders import ImageFolderIndex, skipped_record, split_folders
from inv_kernels.data.loaders import two_view_loader
from inv_kernels.distributed import DistContext
from inv_kernels.io import (
    atomic_write_bytes,
    atomic_write_json,
    check_output_dir,
    check_writable_dir,
    remove_stale_temporaries,
)
from inv_kernels.models.checkpoint import (
    LAST,
    read_checkpoint,
    restore_rng_state,
    rng_state,
    save_pretraining_checkpoint,
    strip_module_prefix,
)
from inv_kernels.models.load import file_digest
from inv_kernels.models.moco import MoCo
from inv_kernels.precision import resolve_precision
from inv_kernels.provenance import provenance
from inv_kernels.train.config import RESUME_MAY_CHANGE, PretrainConfig, resume_differences
from inv_kernels.train.factor_monitor import factor_monitor, untrained_backbone
from inv_kernels.train.knn import knn_monitor

TIME_KEYS = ("total", "data_wait", "train_step")  # the summary's time_s, in seconds


@dataclass
class _Progress:
    """The running counters of one ``Trainer.run()``. On a GPU, reading the loss waits for the device, so it is read
    (and checked to be finite) only on logged steps, before a checkpoint and at the end of an epoch; in between, the
    steps' non-finite flags accumulate on the device."""

    per_epoch: int  # steps in an epoch
    total: int  # the step the run stops after
    started: float  # time.time() at the start
    bar: tqdm
    non_finite: torch.Tensor  # 0-dim bool on the device: a loss since the last read was NaN or Inf
    unchecked_since: int  # the first step whose loss has not been read
    data_time: float = 0.0  # seconds spent waiting for batches
    step_time: float = 0.0  # seconds spent in optimizer steps
    images: int = 0  # images trained on, all processes together
    step_result: tuple[torch.Tensor, torch.Tensor] | None = None  # the last batch's (loss, accuracy); None: no step
    loss: float = math.nan  # the last loss and accuracy read from the device
    accuracy: float = math.nan

    def elapsed(self) -> float:
        return time.time() - self.started


class Trainer:
    """Pretrains one model. Construction validates everything (the checkpoint to resume from included) and builds the
    model before it makes the output folder; ``run()`` trains."""

    def __init__(self, config: PretrainConfig, *, progress: bool = True):
        self.config = config.validate()
        self.dist = DistContext.from_environment(config.device)
        self.device = self.dist.device
        self.progress = progress and self.dist.is_main
        self.out = Path(config.out)
        if self.dist.is_main:
            check_output_dir(self.out)  # creates nothing: a run that fails its checks leaves no folder
        self._resolve_data()
        resume = self._read_resume(config.resume) if config.resume else None
        self._build()
        self.removed_temporaries: list[Path] = []
        if self.dist.is_main:
            check_writable_dir(self.out)
            self.removed_temporaries = remove_stale_temporaries(self.out)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.history: list[dict] = []
        # The DALI loader leaves undecodable files out once, up front; the torchvision one counts them as met.
        self.skipped_images = self.train_loader.skipped
        self.knn_skipped: dict[str, dict] = {}  # the kNN folders' unusable images, per folder (skipped_record)
        self.time_before = dict.fromkeys(TIME_KEYS, 0.0)  # seconds of the runs this one resumes, to their checkpoint
        self._progress: _Progress | None = None
        if resume is not None:
            self._resume(*resume)

    # ------------------------------------------------------------------------------------------------ setup
    def _resolve_data(self) -> None:
        cfg = self.config
        if cfg.data is None:
            from inv_kernels.data import generated_dataset

            self.image_size = cfg.image_size or 64
            root = generated_dataset("classification", size=max(self.image_size, 16), progress=self.progress)
        else:
            self.image_size = cfg.image_size or 224
            root = Path(cfg.data)
        train, held_out = split_folders(root)
        knn_train, knn_test = (train, held_out) if held_out is not None else (None, None)
        if cfg.knn_data is not None:
            knn_train, knn_test = split_folders(cfg.knn_data)
            if knn_test is None:
                raise ValueError(f"knn_data {cfg.knn_data} must hold train/ and test/ (or val/) class folders")
        self.train_index = ImageFolderIndex(train)
        self.knn_indexes = (ImageFolderIndex(knn_train), ImageFolderIndex(knn_test)) if knn_train else None
        self.cifar_stem = cfg.cifar_stem if cfg.cifar_stem is not None else self.image_size <= 32

    def _build(self) -> None:
        cfg, world = self.config, self.dist.world_size
        if cfg.batch_size % world:
            raise ValueError(f"batch_size {cfg.batch_size} must be a multiple of the {world} processes")
        self.local_batch = cfg.batch_size // world
        self.bn_splits = cfg.bn_splits if world == 1 else 1
        if self.local_batch % self.bn_splits:
            raise ValueError(f"batch_size {cfg.batch_size} must be a multiple of bn_splits {self.bn_splits}")
        self.loader = cfg.loader if cfg.loader != "auto" else ("dali" if inv_kernels.HAS_DALI else "torchvision")
        self.train_loader = two_view_loader(
            self.loader,
            self.train_index,
            cfg.recipe,
            out_size=self.image_size,
            batch_size=self.local_batch,
            seed=cfg.seed,
            rank=self.dist.rank,
            world_size=world,
            workers=cfg.workers,
            device=self.device,
        )
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)  # the model's initialisation; the key shuffles draw from this generator later
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.model = MoCo(
            cfg.arch,
            cifar_stem=self.cifar_stem,
            dim=cfg.moco_dim,
            queue_size=cfg.queue_size,
            momentum=cfg.moco_momentum,
            temperature=cfg.temperature,
            mlp=cfg.mlp,
            bn_splits=self.bn_splits,
            objective=cfg.objective,
        ).to(self.device)
        self.channels_last = cfg.channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.lr = cfg.base_lr * cfg.batch_size / 256
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=self.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        self.step_model = self.model
        if world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.step_model = DistributedDataParallel(self.model, device_ids=ids)
        if cfg.compile:
            self.step_model = torch.compile(self.step_model)
        self.precision = resolve_precision(cfg.precision, cfg.amp, self.device)
        self.amp = self.precision == "bf16"  # bfloat16 autocast in the training step (and the monitor, on CUDA)

    # ------------------------------------------------------------------------------------------------ state
    def _state(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "history": self.history,
            "skipped_images": self.skipped_images,
            "image_size": self.image_size,
            "cifar_stem": self.cifar_stem,
            "world_size": self.dist.world_size,
            "rng": rng_state(),
            "time_s": self._time_s(),
        }

    def _time_s(self) -> dict[str, float]:
        """Seconds of training up to now, over this run and the runs it resumed: total, data wait, train step."""
        now = self._progress
        this = (now.elapsed(), now.data_time, now.step_time) if now is not None else (0.0, 0.0, 0.0)
        return {key: self.time_before[key] + value for key, value in zip(TIME_KEYS, this)}

    def save(self) -> Path | None:
        """Writes ``<out>/checkpoint_last.pth.tar`` (main process only); returns its path."""
        if not self.dist.is_main:
            return None
        return save_pretraining_checkpoint(
            self.out / LAST, model=self.model, optimizer=self.optimizer, epoch=self.epoch, extra=self._state()
        )

    def _read_resume(self, resume: str) -> tuple[Path, dict] | None:
        """Reads and checks the checkpoint to resume from (None: ``"auto"`` and none there yet: a fresh run).

        Raises:
            FileNotFoundError, ValueError: a missing or unreadable file, one only full unpickling reads while
                ``trust_checkpoint`` is off (``UntrustedCheckpointError``), one without resume state, or settings that
                differ from the checkpoint's beyond ``RESUME_MAY_CHANGE`` (every difference is named).
        """
        path = self.out / LAST if resume == "auto" else Path(resume)
        if resume == "auto" and not path.exists():
            return None
        state = read_checkpoint(path, trust=self.config.trust_checkpoint)
        extra = state.get("inv_kernels")
        if not isinstance(extra, dict) or not isinstance(extra.get("config"), dict):
            raise ValueError(f"{path} is not an inv_kernels pretraining checkpoint (no resume state)")
        differences = resume_differences(extra["config"], self.config)
        if differences:
            raise ValueError(
                f"cannot resume from {path}: this run's settings differ from the checkpoint's: "
                f"{'; '.join(differences)} (a resumed run may change only {', '.join(RESUME_MAY_CHANGE)})"
            )
        if extra.get("cifar_stem") != self.cifar_stem:
            raise ValueError(
                f"cannot resume from {path}: it holds a {state.get('arch')} with cifar_stem="
                f"{extra.get('cifar_stem')}; this run builds one with cifar_stem={self.cifar_stem}"
            )
        return path, state

    def _resume(self, path: Path, state: dict) -> None:
        """Restores what ``_read_resume`` read: model, optimizer, counters, history, RNG states; cuts the log back."""
        extra = state["inv_kernels"]
        self.model.load_state_dict(strip_module_prefix(state["state_dict"]))
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step_in_epoch = extra["epoch"], extra["step_in_epoch"]
        self.global_step, self.history = extra["global_step"], extra["history"]
        self.skipped_images = extra["skipped_images"]
        self.time_before.update(extra.get("time_s") or {})  # absent from checkpoints of older versions: 0
        restore_rng_state(extra["rng"])
        self._trim_log(self.global_step)
        self._log({"event": "resumed", "checkpoint": str(path), "epoch": self.epoch, "step": self.global_step})

    def _trim_log(self, step: int) -> None:
        """Rewrites ``<out>/log.jsonl`` (atomically, main process) without the records of steps after ``step``, which
        a run killed after its last checkpoint logged and the resumed run logs again, and without a last line the
        kill cut short."""
        log = self.out / "log.jsonl"
        if not self.dist.is_main or not log.is_file():
            return
        lines = log.read_bytes().decode(errors="replace").splitlines(keepends=True)
        kept = []
        for number, line in enumerate(lines):
            try:
                record = json.loads(line)
            except ValueError:
                if number == len(lines) - 1 and not line.endswith("\n"):
                    continue  # a write cut short
                record = None
            later = isinstance(record, dict) and isinstance(record.get("step"), (int, float)) and record["step"] > step
            if not later:
                kept.append(line)
        if len(kept) < len(lines):
            atomic_write_bytes("".join(kept).encode(), log)

    # ------------------------------------------------------------------------------------------------ training
    def _lr_at(self, epoch: int, step: int) -> float:
        """The learning rate of global step ``step + 1``, in ``epoch``: the epoch's (cosine or constant), scaled
        linearly from 1 / warmup_steps to 1 over the first ``warmup_steps`` steps."""
        lr = self.lr
        if self.config.cosine:
            lr *= 0.5 * (1.0 + math.cos(math.pi * epoch / self.config.epochs))
        warmup = self.config.warmup_steps
        return lr * min(1.0, (step + 1) / warmup) if warmup else lr

    def _set_lr(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr_at(self.epoch, self.global_step)

    def _log(self, record: dict) -> None:
        if self.dist.is_main:
            with open(self.out / "log.jsonl", "a") as handle:
                handle.write(json.dumps({"time": time.time(), **record}) + "\n")

    def _usable(self, views: torch.Tensor) -> torch.Tensor:
        """Trims a batch shortened by skipped images to a size every process shares and BN splits divide."""
        n = views.shape[0]
        if self.dist.world_size > 1:
            size = torch.tensor([n], device=self.device)
            dist.all_reduce(size, op=dist.ReduceOp.MIN)
            n = int(size)
        n -= n % self.bn_splits
        return views[:n]

    def _train_step(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; returns the loss and the positive-pair accuracy as 0-dim device tensors (reading them
        waits for the device, so the loop reads them only when it logs or checks them)."""
        views = views.to(self.device, non_blocking=True)  # (B, 2, 3, S, S)
        im_q, im_k = views[:, 0], views[:, 1]
        if self.channels_last:
            im_q = im_q.contiguous(memory_format=torch.channels_last)
            im_k = im_k.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.step_model(im_q, im_k)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        self.optimizer.step()
        return out.loss.detach(), out.accuracy.detach()

    def _raise_non_finite(self, loss: float, first_step: int) -> None:
        last = self.global_step
        steps = f"at step {last}" if first_step == last else f"between steps {first_step} and {last}"
        raise FloatingPointError(
            f"loss became {loss} {steps}; the last good checkpoint is {self.out / LAST} "
            "(lower the learning rate, or check the data)"
        )

    def _monitor(self) -> float | None:
        if self.knn_indexes is None or not self.dist.is_main:
            return None
        result = knn_monitor(
            self.model.backbone().to(self.device),
            *self.knn_indexes,
            size=self.image_size,
            device=self.device,
            k=self.config.knn_k,
            max_images=self.config.knn_max_images,
            workers=self.config.workers,
            amp=self.amp,
        )
        self.knn_skipped = {name: skipped_record(files) for name, files in result.skipped.items()}
        return result.top1

    def _score(self, record: dict) -> dict:
        """Sets ``record["knn_top1"]`` (a history entry) to the kNN monitor's score. The monitor draws from its own
        copy of the RNG states, so whether it runs, fails or is killed does not change the training. A failure is
        reported -- a warning, a ``knn_monitor_failed`` log event, ``knn_monitor_error`` in the record -- and the
        score is None; training goes on."""
        devices = [self.device.index] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                record["knn_top1"] = self._monitor()
        except Exception as error:  # the monitor is a report: no failure of it may stop the training
            message = f"{type(error).__name__}: {error}"
            warnings.warn(
                f"kNN monitor failed at epoch {record['epoch']} (step {record['step']}): {message}; training goes on",
                RuntimeWarning,
                stacklevel=2,
            )
            record["knn_top1"], record["knn_monitor_error"] = None, message
            self._log(
                {"event": "knn_monitor_failed", "epoch": record["epoch"], "step": record["step"], "error": message}
            )
        return record

    def _knn_due(self, epoch_done: int) -> bool:
        every = self.config.knn_every
        return every >= 0 and (epoch_done == self.config.epochs or (every > 0 and epoch_done % every == 0))

    def _batches_per_epoch(self) -> int:
        return self.train_loader.batches_per_epoch()

    def _epoch_loader(self):
        """The batches of ``self.epoch`` from ``self.step_in_epoch`` on, as ``collate_two_views`` makes them."""
        self.train_loader.set_epoch(self.epoch, self.step_in_epoch)
        return self.train_loader

    def run(self) -> dict:
        """Trains to ``config.epochs`` (or ``max_steps``); returns the summary also written to ``<out>/summary.json``."""
        progress = self._start()
        while self.epoch < self.config.epochs and self.global_step < progress.total:
            self._run_epoch(progress)
            self._end_epoch(progress)
        progress.bar.close()
        return self._finish(progress)

    def _start(self) -> _Progress:
        """The run's counters; logs the start and, on a fresh run monitored every few epochs, the untrained score."""
        cfg = self.config
        per_epoch = self._batches_per_epoch()
        total = cfg.epochs * per_epoch if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * per_epoch)
        started = time.time()
        bar = tqdm(
            total=total,
            initial=min(self.global_step, total),
            disable=not self.progress,
            unit="step",
            desc=f"pretrain {cfg.recipe}/{cfg.arch}",
        )
        progress = _Progress(
            per_epoch,
            total,
            started,
            bar,
            torch.zeros((), dtype=torch.bool, device=self.device),
            unchecked_since=self.global_step + 1,
        )
        self._progress = progress
        self._log(
            {
                "event": "start",
                "config": cfg.to_dict(),
                "steps_per_epoch": per_epoch,
                "world": self.dist.world_size,
                "removed_stale_temporaries": [path.name for path in self.removed_temporaries],
            }
        )
        if cfg.knn_every > 0 and self.global_step == 0:  # the untrained network's score: the curve's starting point
            initial = self._score({"epoch": 0, "step": 0, "wall_s": 0.0})
            self.history.append(initial)
            self._log({"event": "epoch", **initial})
        return progress

    def _run_epoch(self, progress: _Progress) -> None:
        """Trains ``self.epoch`` from ``self.step_in_epoch`` to its end, or to the run's last step."""
        self._set_lr()
        tick = time.time()
        for batch in self._epoch_loader():
            progress.data_time += time.time() - tick
            self._step(batch, progress)
            self._after_step(progress)
            if self.global_step >= progress.total:
                break
            tick = time.time()

    def _step(self, batch: dict, progress: _Progress) -> None:
        """One optimizer step on the batch (none when skipped images emptied it), and the counters after it."""
        self.skipped_images += batch["skipped"]
        views = self._usable(batch["views"])  # (B, 2, 3, S, S)
        if self.config.warmup_steps and self.global_step <= self.config.warmup_steps:
            self._set_lr()
        tick = time.time()
        progress.step_result = self._train_step(views) if views.shape[0] else None
        if progress.step_result is not None:
            progress.non_finite |= ~torch.isfinite(progress.step_result[0])
        progress.step_time += time.time() - tick
        progress.images += views.shape[0] * self.dist.world_size
        self.global_step += 1
        self.step_in_epoch += 1

    def _after_step(self, progress: _Progress) -> None:
        """Reads the loss on logged and checkpointed steps and at an epoch's or the run's end; logs; checkpoints."""
        cfg = self.config
        elapsed = progress.elapsed()
        progress.bar.update(1)
        logged = self.global_step % max(cfg.log_every_steps, 1) == 0
        saving = bool(cfg.save_every_steps) and self.global_step % cfg.save_every_steps == 0
        last = self.step_in_epoch >= progress.per_epoch or self.global_step >= progress.total
        if logged or saving or last:
            self._read_loss(progress, elapsed)
        if logged:
            self._log(
                {
                    "event": "step",
                    "epoch": self.epoch,
                    "step": self.global_step,
                    "loss": progress.loss,
                    "accuracy": progress.accuracy,
                    "lr": self.optimizer.param_groups[0]["lr"],
                    "images_per_s": progress.images / elapsed,
                }
            )
        if saving:
            self.save()

    def _read_loss(self, progress: _Progress, elapsed: float) -> None:
        """Reads the last step's loss and accuracy from the device; raises FloatingPointError if a loss since the
        last reading was NaN or Inf."""
        if progress.step_result is not None:  # (a batch emptied by skipped images ran no step: the last reading stands)
            progress.loss, progress.accuracy = (float(value) for value in progress.step_result)
        if bool(progress.non_finite):
            loss = progress.loss if not math.isfinite(progress.loss) else float("nan")
            self._raise_non_finite(loss, progress.unchecked_since)
        progress.unchecked_since = self.global_step + 1
        progress.bar.set_postfix(
            epoch=self.epoch,
            loss=f"{progress.loss:.3f}",
            acc=f"{progress.accuracy:.2f}",
            img_s=f"{progress.images / elapsed:.0f}",
        )

    def _end_epoch(self, progress: _Progress) -> None:
        """Closes an epoch, or a run that max_steps stopped mid-epoch: its history record, a checkpoint (before the
        monitor, so that no failure or kill of it loses the epoch), the kNN monitor when due, its log record."""
        event, record = self._closing_record(progress)
        if record is not None:
            self.history.append(record)
        self.save()
        if record is not None:
            self._monitor_if_due(event, record)
            self._log({"event": event, **record})

    def _closing_record(self, progress: _Progress) -> tuple[str | None, dict | None]:
        """("epoch", its history record) after a complete epoch, whose counters then move to the next one;
        ("stopped", a record) when max_steps stopped the run mid-epoch and the monitor is on; else (None, None)."""
        if self.step_in_epoch >= progress.per_epoch:
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
            return "epoch", {
                "epoch": self.epoch,
                "step": self.global_step,
                "wall_s": progress.elapsed(),
                "loss": progress.loss,
            }
        if self.global_step >= progress.total and self.step_in_epoch and self.config.knn_every >= 0:
            return "stopped", {
                "epoch": self.epoch + self.step_in_epoch / progress.per_epoch,
                "step": self.global_step,
                "wall_s": progress.elapsed(),
                "loss": progress.loss,
            }
        return None, None

    def _monitor_if_due(self, event: str, record: dict) -> None:
        """Scores ``record`` with the kNN monitor where the run stopped, or on the epochs ``knn_every`` names, and
        checkpoints the history with the score."""
        if event == "stopped" or self._knn_due(self.epoch):
            self._score(record)
            if self.knn_indexes is not None:
                self.save()

    def _finish(self, progress: _Progress) -> dict:
        """The run's summary, also written to ``<out>/summary.json`` (main process)."""
        wall = progress.elapsed()
        summary = {
            "config": self.config.to_dict(),
            "epochs_done": self.epoch,
            "steps": self.global_step,
            "history": self.history,
            "final_knn_top1": next(
                (h["knn_top1"] for h in reversed(self.history) if h.get("knn_top1") is not None), None
            ),
            "knn_monitor_error": next(
                (
                    f"epoch {h['epoch']}: {h['knn_monitor_error']}"
                    for h in reversed(self.history)
                    if h.get("knn_monitor_error")
                ),
                None,
            ),
            "images_per_s": progress.images / wall if wall > 0 else None,
            "time_s": {**self._time_s(), "this_run": wall},  # totals include the resumed runs' time
            "skipped_images": self.skipped_images,
            "knn_skipped_images": self.knn_skipped,
            "checkpoint": str(self.out / LAST),
            "device": str(self.device),
            "precision": self.precision,
            "world_size": self.dist.world_size,
            "loader": self.loader,
        }
        summary.update(self._factor_monitor())
        if self.dist.is_main:
            checkpoint = self.out / LAST
            model_hash = f"{LAST}@{file_digest(checkpoint)}" if checkpoint.is_file() else None
            summary["provenance"] = provenance(device=self.device, model_hash=model_hash)
            atomic_write_json(summary, self.out / "summary.json")
        return summary

    def _factor_monitor(self) -> dict:
        """``factor_monitor``: what the trained network learned about the built-in scenes, against the network the run
        started from (train.factor_monitor), on the main process after the last checkpoint; None where it is off. A
        failure loses nothing: it is a warning, a ``factor_monitor_failed`` log event and ``factor_monitor_error``."""
        cfg = self.config
        if not self.dist.is_main or not (cfg.data is None if cfg.factor_monitor is None else cfg.factor_monitor):
            return {"factor_monitor": None, "factor_monitor_error": None}
        try:
            with torch.random.fork_rng(devices=[self.device.index] if self.device.type == "cuda" else []):
                result = factor_monitor(
                    self.model.backbone(),
                    untrained_backbone(cfg.arch, cifar_stem=self.cifar_stem, seed=cfg.seed),
                    recipe=cfg.recipe,
                    image_size=self.image_size,
                    device=self.device,
                    amp=self.amp,
                )
            return {"factor_monitor": result, "factor_monitor_error": None}
        except Exception as error:  # the monitor is a report: the trained model is saved already
            message = f"{type(error).__name__}: {error}"
            warnings.warn(
                f"factor monitor failed: {message}; the run and its checkpoint are kept", RuntimeWarning, stacklevel=2
            )
            self._log({"event": "factor_monitor_failed", "step": self.global_step, "error": message})
            return {"factor_monitor": None, "factor_monitor_error": message}


def pretrain(config: PretrainConfig, *, progress: bool = True) -> dict:
    """Builds a Trainer and runs it; returns the run's summary (see Trainer.run)."""
    return Trainer(config, progress=progress).run()
