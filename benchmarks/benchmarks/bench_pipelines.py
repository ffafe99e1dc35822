"""Pipelines end to end: one MoCo v2 pretraining step (the trainer's step: forward of both encoders, InfoNCE against
the queue, backward, SGD) and the measurement of one synthetic transform family on a random network (views, features,
whitened scores), each with the contrastive or scoring backend as a parameter. CPU: a resnet18 at small image size,
asv's timers; GPU: the paper's resnet50 at 224 px as track_* values from CUDA events. The two-view loaders (DALI and
its torchvision baseline) are in bench_two_view.py."""

import os

import torch

from inv_kernels.backend import ENV_VAR
from inv_kernels.measure.model import load_extractor
from inv_kernels.measure.synthetic import measure_family
from inv_kernels.models.moco import MoCo
from inv_kernels.stats import FeatureStats
from inv_kernels.transforms import get_family

from ._common import CudaTimer, cases, require_backend


class _BackendEnv:
    """Routes the ops a pipeline calls with backend="auto" to the benchmarked backend (INV_KERNELS_BACKEND)."""

    def _route(self, backend: str) -> None:
        self._saved = os.environ.get(ENV_VAR)
        os.environ[ENV_VAR] = backend

    def teardown(self, *params):
        if getattr(self, "_saved", None) is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = self._saved


# ----------------------------------------------------------------------------------------------------------------
# One pretraining step
# ----------------------------------------------------------------------------------------------------------------
class _PretrainStep(_BackendEnv):
    param_names = ["backend", "dtype", "image_size"]
    timeout = 600

    def _build(self, backend, dtype, image_size, *, device, arch, batch, queue):
        """The model, optimizer and a batch as Trainer builds them (inv_kernels/train/trainer.py)."""
        self.device = require_backend(backend, device)
        self._route(backend)
        torch.manual_seed(0)
        self.model = MoCo(arch, cifar_stem=image_size <= 32, queue_size=queue, bn_splits=8).to(self.device)
        self.amp = dtype == "bfloat16"
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=0.03 * batch / 256, momentum=0.9, weight_decay=1e-4
        )
        views = torch.randn(batch, 2, 3, image_size, image_size, device=self.device)  # (B, 2, 3, S, S)
        fmt = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        self.im_q = views[:, 0].contiguous(memory_format=fmt)
        self.im_k = views[:, 1].contiguous(memory_format=fmt)
        self.step()  # warm-up: allocator, cuDNN / oneDNN algorithm choice

    def step(self):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.model(self.im_q, self.im_k)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        self.optimizer.step()


class PretrainStepCPU(_PretrainStep):
    params = (["reference", "cpu"], ["float32"], cases([64], [32]))

    def setup(self, backend, dtype, image_size):
        self._build(backend, dtype, image_size, device="cpu", arch="resnet18", batch=cases(32, 16), queue=4096)

    def time_step(self, backend, dtype, image_size):
        self.step()

    def peakmem_step(self, backend, dtype, image_size):
        self.step()


class PretrainStepGPU(_PretrainStep):
    params = (["reference", "triton", "cuda"], ["bfloat16", "float32"], [224])

    def setup(self, backend, dtype, image_size):
        self._build(backend, dtype, image_size, device="cuda", arch="resnet50", batch=256, queue=65536)
        self.timer = CudaTimer(self.device)

    def track_step_ms(self, backend, dtype, image_size):
        return self.timer.median_ms(self.step, warmup=3, repeats=10)

    track_step_ms.unit = "ms"

    def track_images_per_second(self, backend, dtype, image_size):
        return self.im_q.shape[0] / (self.timer.median_ms(self.step, warmup=3, repeats=10) * 1e-3)

    track_images_per_second.unit = "images/s"


# ----------------------------------------------------------------------------------------------------------------
# Measuring one transform family
# ----------------------------------------------------------------------------------------------------------------
class _MeasureFamily:
    param_names = ["backend", "family"]
    timeout = 600

    def _build(self, backend, *, device, arch, images, out_size, resize_size):
        self.device = require_backend(backend, device)
        self.extractor = load_extractor(f"random:{arch}", device=self.device, amp=self.device.type == "cuda")
        gen = torch.Generator().manual_seed(0)
        side = resize_size + resize_size // 4  # raw images larger than the eval resize, as real photographs
        self.images = list(torch.randint(0, 256, (images, 3, side, side + 8), generator=gen, dtype=torch.uint8))
        dim = self.extractor.info.feature_dim
        self.stats = FeatureStats.from_features(torch.randn(2 * dim, dim, generator=gen, dtype=torch.float64))
        self.stats = self.stats.to(self.device)
        views = torch.rand(images, 3, out_size, out_size, generator=gen)
        self.clean = self.extractor(views)  # (n, D); its values do not change the cost
        self.kwargs = dict(out_size=out_size, resize_size=resize_size, backend=backend, progress=False)

    def measure(self, family):
        return measure_family(self.extractor, self.images, self.clean, self.stats, family, **self.kwargs)


class MeasureFamilyCPU(_MeasureFamily):
    params = (["reference", "cpu"], cases(["rotation", "brightness"], ["h_flip"]))

    def setup(self, backend, family):
        self._build(backend, device="cpu", arch="resnet18", images=cases(4, 2), out_size=64, resize_size=73)

    def time_family(self, backend, family):
        self.measure(family)


class MeasureFamilyGPU(_MeasureFamily):
    params = (["reference", "triton", "cuda"], ["rotation", "brightness"])

    def setup(self, backend, family):
        self._build(backend, device="cuda", arch="resnet50", images=64, out_size=224, resize_size=256)
        self.timer = CudaTimer(self.device)

    def track_views_per_second(self, backend, family):
        ms = self.timer.median_ms(lambda: self.measure(family), warmup=1, repeats=3)
        return len(self.images) * get_family(family).k / (ms * 1e-3)

    track_views_per_second.unit = "views/s"
