"""Feature statistics (inv_kernels.stats) against the reference code's numpy path: streaming float64 moments against
np.cov on the whole matrix, the whitening factor (a Cholesky factor of Sigma and a triangular solve) against
chol(inv(Sigma)) (np.linalg.inv, then np.linalg.cholesky), and whitening against (mu - f) L. CPU timings with asv's
timers and peak memory (np.cov needs the whole centred matrix, the stream one chunk); GPU timings as track_* values."""

import numpy as np
import torch

from inv_kernels.stats import FeatureStats, RunningMoments

from ._common import DTYPES, CudaTimer, cases
from ._workloads import STATS_GPU, dims, stats_moments_bytes

SHAPES = cases(["20000x512", "50000x2048"], ["4096x256"])  # N x D
CHUNK = 4096  # rows per streaming update, as a feature pass delivers them


def _features(shape: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    n, d = dims(shape)
    gen = torch.Generator().manual_seed(0)
    mixing = torch.randn(d, d, generator=gen) / d**0.5 + torch.eye(d)  # a non-trivial, well-conditioned covariance
    return torch.relu(torch.randn(n, d, generator=gen) @ mixing).to(device, dtype)


def stream_moments(features: torch.Tensor) -> RunningMoments:
    """Moments of ``features`` accumulated CHUNK rows at a time."""
    moments = RunningMoments()
    for start in range(0, features.shape[0], CHUNK):
        moments.update(features[start : start + CHUNK])
    return moments


def numpy_whitening(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference code's statistics: mean, np.cov, then L = chol(inv(Sigma)) (float64)."""
    mean = features.mean(axis=0)
    cov = np.cov(features, rowvar=False)
    return mean, np.linalg.cholesky(np.linalg.inv(cov))


class StatsCPU:
    params = (["ours", "numpy"], ["float32", "float64"], SHAPES)
    param_names = ["impl", "dtype", "shape"]
    timeout = 600

    def setup(self, impl, dtype, shape):
        self.features = _features(shape, DTYPES[dtype], torch.device("cpu"))
        self.array = self.features.numpy()
        if impl == "ours":
            self.stats = FeatureStats.from_moments(stream_moments(self.features))
        else:
            self.mean, self.chol_precision = numpy_whitening(self.array)

    def time_moments(self, impl, dtype, shape):
        if impl == "ours":
            stream_moments(self.features).covariance()
        else:
            np.cov(self.array, rowvar=False)

    def peakmem_moments(self, impl, dtype, shape):
        self.time_moments(impl, dtype, shape)

    def time_whitening_factor(self, impl, dtype, shape):
        if impl == "ours":
            FeatureStats.from_moments(stream_moments(self.features)).whitening_matrix()
        else:
            numpy_whitening(self.array)

    def time_whiten(self, impl, dtype, shape):
        if impl == "ours":
            self.stats.whiten(self.features)
        else:
            (self.mean - self.array) @ self.chol_precision


class StatsGPU:
    """Ours on the GPU against the same computation in eager torch (torch.cov, then inv and cholesky)."""

    params = (["ours", "torch"], ["float32"], cases(list(STATS_GPU), list(STATS_GPU[:1])))
    param_names = ["impl", "dtype", "shape"]
    timeout = 600

    def setup(self, impl, dtype, shape):
        if not torch.cuda.is_available():
            raise NotImplementedError("no CUDA GPU")
        self.device = torch.device("cuda")
        self.features = _features(shape, DTYPES[dtype], self.device)
        self.timer = CudaTimer(self.device)
        self.impl = impl

    def _moments(self):
        if self.impl == "ours":
            stream_moments(self.features).covariance()
        else:
            torch.cov(self.features.double().T)

    def track_moments_ms(self, impl, dtype, shape):
        return self.timer.median_ms(self._moments, warmup=2, repeats=10)

    track_moments_ms.unit = "ms"

    def track_moments_gbps(self, impl, dtype, shape):
        seconds = self.timer.median_ms(self._moments, warmup=2, repeats=10) * 1e-3
        return stats_moments_bytes(*self.features.shape) / seconds / 1e9

    track_moments_gbps.unit = "GB/s"
