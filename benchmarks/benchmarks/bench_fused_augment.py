"""fused_augment: two views of each of B uint8 sources (the MoCo v2 "default" recipe) by every backend, against the
baseline a torchvision user writes: transforms.v2 composed per image on tensors, one call per view. CPU timings with
asv's timers; GPU timings as track_* values from CUDA events with views/s and the achieved GB/s (crop boxes read once,
views written once) beside them. Backends whose launcher is missing from this build are skipped in setup."""

from inv_kernels.ops.fused_augment import fused_augment

from ._augment import BASELINE, require_fused_backend, run_torchvision, torchvision_transform, two_view_inputs
from ._common import DTYPES, CudaTimer, cases
from ._workloads import FUSED_AUGMENT_GPU_BATCH, FUSED_AUGMENT_OUT_SIZES, FUSED_AUGMENT_SOURCE_SIDE, fused_augment_bytes

RECIPE = "default"
CPU_BATCH = cases(64, 8)  # source images (two views each)
CPU_OUT_SIZES = cases(list(FUSED_AUGMENT_OUT_SIZES), [64])
GPU_OUT_SIZES = cases(list(FUSED_AUGMENT_OUT_SIZES), [224])


class _FusedAugment:
    param_names = ["backend", "dtype", "out_size"]
    timeout = 300

    def _setup(self, backend, dtype, out_size, device, batch):
        self.device = require_fused_backend(backend, device)
        if backend == BASELINE and dtype != "float32":
            raise NotImplementedError("the torchvision baseline is timed in float32 only")
        self.images, self.params, self.index = two_view_inputs(batch, FUSED_AUGMENT_SOURCE_SIDE, RECIPE, self.device)
        self.dtype = DTYPES[dtype]
        self.backend = backend
        if backend == BASELINE:
            self.transform = torchvision_transform(RECIPE, out_size, self.dtype)
        self.out_size = out_size

    def _views(self):
        if self.backend == BASELINE:
            return run_torchvision(self.transform, self.images, self.index)
        return fused_augment(
            self.images, self.params, self.out_size, out_dtype=self.dtype, source_index=self.index, backend=self.backend
        )


class FusedAugmentCPU(_FusedAugment):
    params = (["reference", "cpu", BASELINE], ["float32", "bfloat16"], CPU_OUT_SIZES)

    def setup(self, backend, dtype, out_size):
        self._setup(backend, dtype, out_size, "cpu", CPU_BATCH)

    def time_two_views(self, backend, dtype, out_size):
        self._views()


class FusedAugmentGPU(_FusedAugment):
    params = (["reference", "triton", "cuda", BASELINE], ["float32", "bfloat16"], GPU_OUT_SIZES)

    def setup(self, backend, dtype, out_size):
        self._setup(backend, dtype, out_size, "cuda", FUSED_AUGMENT_GPU_BATCH)
        self.timer = CudaTimer(self.device)

    def _ms(self):
        return self.timer.median_ms(self._views, warmup=2, repeats=10)

    def track_two_views_ms(self, backend, dtype, out_size):
        return self._ms()

    track_two_views_ms.unit = "ms"

    def track_views_per_second(self, backend, dtype, out_size):
        return len(self.params) / (self._ms() * 1e-3)

    track_views_per_second.unit = "views/s"

    def track_gbps(self, backend, dtype, out_size):
        return fused_augment_bytes(self.params, out_size, self.dtype) / (self._ms() * 1e-3) / 1e9

    track_gbps.unit = "GB/s"
