"""Invariance measurement on the CPU end to end (``inv_kernels.measure.measure``): one seeded random ResNet-18, the
statistics pass, the clean views and every view of the synthetic transform families, scored, on the built-in
classification scenes (no real-world group sets, no feature cache). The configuration is the parameter: "before"
(float32, contiguous memory, BatchNorm unfolded, batch 256: the defaults before bf16 autocast, channels_last and
BatchNorm folding applied on the CPU) and "after" (today's defaults). Full: 16 images x the 18 families at 64 px; quick: 2 images x 2 families at 32 px."""

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from inv_kernels.data import generated_dataset
from inv_kernels.measure import MeasureConfig, measure

from ._common import cases

BEFORE = {"precision": "fp32", "channels_last": False, "fold_batchnorm": False, "batch_size": 256}
CONFIGS = {"before": BEFORE, "after": {}}
IMAGE_SIZE = cases(64, 32)
NUM_IMAGES = cases(16, 2)
TRANSFORMS = cases(("all",), ("h_flip", "posterize"))
STATS_IMAGES = cases(64, 8)
IMAGES_PER_CLASS = cases(8, 2)


class MeasureCPU:
    params = [list(CONFIGS)]
    param_names = ["config"]
    timeout = 3600
    number, repeat, warmup_time = 1, 1, 0

    def setup_cache(self):
        return str(generated_dataset("classification", size=IMAGE_SIZE, count=IMAGES_PER_CLASS, progress=False))

    def setup(self, root, config):
        self.out, self.runs = Path(tempfile.mkdtemp(prefix="bench_measure_")), 0
        self.config = MeasureConfig(
            model="random:resnet18",
            data=root,
            out_size=IMAGE_SIZE,
            num_images=NUM_IMAGES,
            stats_images=STATS_IMAGES,
            transforms=TRANSFORMS,
            device="cpu",
            use_cache=False,
            progress=False,
            shrinkage="ledoit_wolf",  # fewer statistics images than features
            **CONFIGS[config],
        )

    def teardown(self, root, config):
        shutil.rmtree(self.out, ignore_errors=True)

    def time_measure(self, root, config):
        self.runs += 1  # a fresh output folder each run
        measure(replace(self.config, out=str(self.out / f"run{self.runs}")))
