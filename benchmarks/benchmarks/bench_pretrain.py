"""Pretraining throughput on the CPU: two-view images per second of ``inv_kernels``' trainer (its defaults, and the
float32 contiguous-memory step it took before bf16 autocast and channels-last applied on the CPU) against the official
MoCo v2 recipe's loop (``_moco_baseline``: torchvision DataLoader with PIL two-crop views and an eager float32 step),
on the built-in generated scenes, same batch, queue and key momentum. Steady state: the steps after the warm-up ones,
by the host clock (track_*, images/s)."""

import json
import shutil
import tempfile
from pathlib import Path

from inv_kernels.data import generated_dataset
from inv_kernels.train import PretrainConfig, Trainer

from ._common import cases
from ._moco_baseline import baseline_step_times

LOOPS = ("trainer", "trainer-fp32-contiguous", "moco-baseline")
IMAGE_SIZES = cases([32, 64], [32])
BATCH = {32: cases(128, 8), 64: cases(64, 8)}
WARMUP, TIMED = cases(3, 1), cases(10, 2)
IMAGES_PER_CLASS = cases(None, 4)  # None: the built-in set's 300 per class; quick: 28 images
QUEUE, KEY_MOMENTUM, BASE_LR, BN_SPLITS, WORKERS = 4096, 0.99, 0.06, 8, 2


def trainer_step_times(root: str, image_size: int, batch_size: int, steps: int, **settings) -> list[float]:
    """Runs the trainer for ``steps`` steps on the folder ``root`` (train/ and test/ class folders) and returns the
    host clock of each step's log record, from the first one (seconds)."""
    out = Path(tempfile.mkdtemp(prefix="bench_pretrain_"))
    try:
        config = PretrainConfig(
            data=root,
            out=str(out / "run"),
            image_size=image_size,
            batch_size=batch_size,
            queue_size=QUEUE,
            moco_momentum=KEY_MOMENTUM,
            base_lr=BASE_LR,
            cosine=False,
            bn_splits=BN_SPLITS,
            workers=WORKERS,
            epochs=1000,
            max_steps=steps,
            log_every_steps=1,
            knn_every=-1,
            **settings,
        )
        Trainer(config, progress=False).run()
        records = [json.loads(line) for line in (out / "run" / "log.jsonl").read_text().splitlines()]
        times = [r["time"] for r in records if r.get("event") == "step"]
        return [t - times[0] for t in times]
    finally:
        shutil.rmtree(out, ignore_errors=True)


def images_per_second(times: list[float], batch_size: int, warmup: int) -> float:
    """Images per second over the steps after ``warmup`` ones: ``times`` are the host clock after each step."""
    timed = len(times) - warmup
    return batch_size * timed / (times[-1] - times[warmup - 1])


class PretrainCPU:
    params = (list(LOOPS), IMAGE_SIZES)
    param_names = ["loop", "image_size"]
    timeout = 1800
    number, repeat = 1, 1

    def setup_cache(self):
        return {
            size: str(generated_dataset("classification", size=size, count=IMAGES_PER_CLASS, progress=False))
            for size in IMAGE_SIZES
        }

    def track_images_per_second(self, roots, loop, image_size):
        root, batch, steps = roots[image_size], BATCH[image_size], WARMUP + TIMED
        if loop == "moco-baseline":
            times = baseline_step_times(
                Path(root) / "train",
                image_size=image_size,
                batch_size=batch,
                steps=steps,
                workers=WORKERS,
                queue_size=QUEUE,
                momentum=KEY_MOMENTUM,
                lr=BASE_LR,
                bn_splits=BN_SPLITS,
            )
        else:
            before = {"precision": "fp32", "channels_last": False} if loop == "trainer-fp32-contiguous" else {}
            times = trainer_step_times(root, image_size, batch, steps, **before)
        return images_per_second(times, batch, WARMUP)

    track_images_per_second.unit = "images/s"
