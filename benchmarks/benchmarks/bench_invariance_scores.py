"""invariance_scores and group_invariance: every backend against the torch reference, CPU timings with asv's timers,
GPU timings as track_* values from CUDA events with the achieved TFLOP/s beside them, and the baseline the project
replaces: the reference code's per-pair loop (scipy's float64 mahalanobis and a torch cosine per pair), timed per pair
on a small slice so that each backend's per-pair speed-up is a ratio.

The whitening product dominates: 2 n (k + 1) D^2 flops (2.16 TFLOP for n=1000, k=256, D=2048; _workloads)."""

import time

import numpy as np
import torch

from inv_kernels.ops.group_invariance import group_invariance
from inv_kernels.ops.invariance_scores import invariance_scores

from ._common import DTYPES, CudaTimer, cases, require_backend
from ._workloads import GROUP_INVARIANCE_GPU, INVARIANCE_SCORES_GPU, dims, invariance_scores_flops

CPU_SHAPES = cases(["64x64x512", "32x256x2048"], ["64x64x512"])  # n x k x D
BASELINE_PAIRS = 200


def _statistics(d: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A mean and a well-conditioned whitening matrix (its values do not change the cost)."""
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(d, generator=gen, dtype=torch.float64)
    a = torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5 + torch.eye(d, dtype=torch.float64)
    return mean.to(device), a.to(device)


def _inputs(shape: str, dtype: torch.dtype, device: torch.device):
    n, k, d = dims(shape)
    clean = torch.randn(n, d, device=device).to(dtype)
    views = (clean[:, None, :].float() + 0.5 * torch.randn(n, k, d, device=device)).to(dtype)
    return clean, views


def scipy_seconds_per_pair(d: int, pairs: int = BASELINE_PAIRS) -> float:
    """The reference code's inner loop (eval_synthetic_invariance.py L313-316), per pair: a torch cosine of the
    whitened features (float32 L) and scipy.spatial.distance.mahalanobis with the float64 precision matrix."""
    import scipy.spatial.distance

    rng = np.random.default_rng(0)
    mean = rng.standard_normal(d)
    a = rng.standard_normal((d, d)) / d**0.5 + np.eye(d)
    precision = a @ a.T
    l32 = torch.from_numpy(np.linalg.cholesky(precision)).float()
    mu32 = torch.from_numpy(mean).float()
    clean = rng.standard_normal(d)
    views = clean + 0.5 * rng.standard_normal((pairs, d))
    w_clean = (mu32 - torch.from_numpy(clean).float()) @ l32
    start = time.perf_counter()
    for view in views:
        w_view = (mu32 - torch.from_numpy(view).float()) @ l32
        torch.nn.functional.cosine_similarity(w_clean, w_view, dim=0)
        scipy.spatial.distance.mahalanobis(clean, view, precision)
    return (time.perf_counter() - start) / pairs


# ----------------------------------------------------------------------------------------------------------------
# invariance_scores
# ----------------------------------------------------------------------------------------------------------------
class InvarianceScoresCPU:
    params = (["reference", "cpu"], ["float32", "bfloat16"], CPU_SHAPES)
    param_names = ["backend", "dtype", "shape"]
    timeout = 300

    def setup(self, backend, dtype, shape):
        device = require_backend(backend, "cpu")
        self.clean, self.views = _inputs(shape, DTYPES[dtype], device)
        self.mean, self.whitening = _statistics(self.clean.shape[1], device)

    def _run(self, backend):
        invariance_scores(
            self.clean,
            self.views,
            mean=self.mean,
            whitening=self.whitening,
            backend=backend,
            check_finite_inputs=False,
        )

    def time_scores(self, backend, dtype, shape):
        self._run(backend)

    def peakmem_scores(self, backend, dtype, shape):
        self._run(backend)

    def track_speedup_vs_scipy_per_pair(self, backend, dtype, shape):
        n, k, d = dims(shape)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            self._run(backend)
            times.append(time.perf_counter() - start)
        return scipy_seconds_per_pair(d) / (min(times) / (n * k))

    track_speedup_vs_scipy_per_pair.unit = "x"


class InvarianceScoresGPU:
    params = (["reference", "triton", "cuda"], ["float32", "bfloat16"], list(INVARIANCE_SCORES_GPU))
    param_names = ["backend", "dtype", "shape"]
    timeout = 600

    def setup(self, backend, dtype, shape):
        device = require_backend(backend, "cuda")
        self.clean, self.views = _inputs(shape, DTYPES[dtype], device)
        self.mean, self.whitening = _statistics(self.clean.shape[1], device)
        self.timer = CudaTimer(device)

    def _scores(self):
        invariance_scores(
            self.clean,
            self.views,
            mean=self.mean,
            whitening=self.whitening,
            backend=self.backend,
            check_finite_inputs=False,
        )

    def _ms(self, backend):
        self.backend = backend
        return self.timer.median_ms(self._scores, warmup=3, repeats=10)

    def track_scores_ms(self, backend, dtype, shape):
        return self._ms(backend)

    track_scores_ms.unit = "ms"

    def track_scores_tflops(self, backend, dtype, shape):
        return invariance_scores_flops(*dims(shape)) / (self._ms(backend) * 1e-3) / 1e12

    track_scores_tflops.unit = "TFLOP/s"

    def track_speedup_vs_scipy_per_pair(self, backend, dtype, shape):
        n, k, d = dims(shape)
        per_pair = self._ms(backend) * 1e-3 / (n * k)
        return scipy_seconds_per_pair(d) / per_pair

    track_speedup_vs_scipy_per_pair.unit = "x"


class ScipyPairBaseline:
    """The reference code's per-pair loop on a slice of BASELINE_PAIRS pairs."""

    params = cases([512, 2048], [512])
    param_names = ["D"]
    timeout = 300

    def track_seconds_per_pair_us(self, d):
        return scipy_seconds_per_pair(d) * 1e6

    track_seconds_per_pair_us.unit = "us"


# ----------------------------------------------------------------------------------------------------------------
# group_invariance
# ----------------------------------------------------------------------------------------------------------------
def _group_inputs(shape: str, device: torch.device):
    """G groups of k images ("G x k x D"), ids shuffled."""
    g, k, d = dims(shape)
    features = torch.randn(g * k, d, device=device)
    ids = torch.arange(g, device=device).repeat_interleave(k)
    perm = torch.randperm(g * k, device=device)
    return features[perm], ids[perm]


class GroupInvarianceCPU:
    params = (["reference", "cpu"], cases(["100x16x512", "100x72x2048"], ["100x16x512"]))
    param_names = ["backend", "shape"]
    timeout = 300

    def setup(self, backend, shape):
        device = require_backend(backend, "cpu")
        self.features, self.ids = _group_inputs(shape, device)
        self.mean, self.whitening = _statistics(self.features.shape[1], device)

    def time_groups(self, backend, shape):
        group_invariance(
            self.features,
            self.ids,
            mean=self.mean,
            whitening=self.whitening,
            backend=backend,
            check_finite_inputs=False,
        )


class GroupInvarianceGPU:
    params = (["reference", "triton", "cuda"], list(GROUP_INVARIANCE_GPU))
    param_names = ["backend", "shape"]
    timeout = 600

    def setup(self, backend, shape):
        device = require_backend(backend, "cuda")
        self.features, self.ids = _group_inputs(shape, device)
        self.mean, self.whitening = _statistics(self.features.shape[1], device)
        self.timer = CudaTimer(device)

    def track_groups_ms(self, backend, shape):
        def run():
            group_invariance(
                self.features,
                self.ids,
                mean=self.mean,
                whitening=self.whitening,
                backend=backend,
                check_finite_inputs=False,
            )

        return self.timer.median_ms(run, warmup=2, repeats=10)

    track_groups_ms.unit = "ms"
