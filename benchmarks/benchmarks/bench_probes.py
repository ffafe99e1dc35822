"""Probes: the paper's full 45 x 5 CV protocols (docs/METHOD.md section 6), ours against sklearn's on the same CPU.

- Logistic: 5,000 x 512 features, 10 classes, 45 values of C, 5 folds, refit. Ours (batched, preconditioned L-BFGS
  along the C path) against sklearn's paper protocol (LogisticRegression lbfgs, warm_start=True, max_iter=100,
  looped over folds and C). The sklearn loop is slow (one measurement on a contended 2-core machine: ~6.4 s per fit,
  i.e. ~24 min for 225 fits), hence ``timeout = 1800`` and ``number = repeat = 1``.
- Ridge: 20,000 x 2,048 features, 28 outputs, 45 alphas, 5 folds, refit (ours only).
- On a GPU: the logistic protocol as a ``track_*`` wall time (synchronised).
"""

import time

import numpy as np
import torch

from inv_kernels.probes import fit_logistic_cv, fit_ridge_cv, kfold_indices, logistic_Cs, ridge_alphas

from ._common import QUICK
from ._workloads import LOGISTIC_CV

# Under INV_KERNELS_BENCH_QUICK=1 (CI) the same protocols run on small data and every 9th grid value.
LOGISTIC_SIZE = dict(n=500, d=64) if QUICK else dict(n=LOGISTIC_CV["n"], d=LOGISTIC_CV["d"])
RIDGE_SIZE = dict(n=2000, d=256) if QUICK else dict(n=20000, d=2048)
GRID_STEP = 9 if QUICK else 1


def _classification(n=LOGISTIC_CV["n"], d=LOGISTIC_CV["d"], k=LOGISTIC_CV["classes"], seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g) * 0.15
    y = torch.randint(0, k, (n,), generator=g)
    X = torch.relu(centers[y] + torch.randn(n, d, generator=g))  # non-negative, like avg-pooled ReLU features
    return X.double(), y


def _regression(n=20000, d=2048, t=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.relu(torch.randn(n, d, generator=g, dtype=torch.float64))
    Y = X[:, :64] @ torch.randn(64, t, generator=g, dtype=torch.float64) + torch.randn(
        n, t, generator=g, dtype=torch.float64
    )
    return X, Y


class LogisticCV:
    params = (["ours", "sklearn"],)
    param_names = ["impl"]
    timeout = 1800
    number = 1
    repeat = 1

    def setup(self, impl):
        self.X, self.y = _classification(**LOGISTIC_SIZE)
        self.folds = kfold_indices(len(self.y), 5, seed=0)
        self.Cs = logistic_Cs()[::GRID_STEP]

    def time_protocol(self, impl):
        if impl == "ours":
            fit_logistic_cv(self.X, self.y, self.Cs, self.folds)
            return
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        X, y = self.X.numpy(), self.y.numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            scores = np.zeros((len(self.folds), len(self.Cs)))
            for f, (tr, va) in enumerate(self.folds):
                model = LogisticRegression(warm_start=True)  # the paper's settings: lbfgs, max_iter=100
                for j, C in enumerate(self.Cs):
                    model.set_params(C=C)
                    scores[f, j] = model.fit(X[tr], y[tr]).score(X[va], y[va])
            best = int(np.argmax(scores.mean(0)))
            LogisticRegression(C=self.Cs[best]).fit(X, y)


class RidgeCV:
    timeout = 600
    number = 1
    repeat = 3

    def setup(self):
        self.X, self.Y = _regression(**RIDGE_SIZE)
        self.folds = kfold_indices(self.X.shape[0], 5, seed=0)

    def time_protocol(self):
        fit_ridge_cv(self.X, self.Y, ridge_alphas()[::GRID_STEP], self.folds)


class LogisticCVGPU:
    timeout = 600

    def setup(self):
        if not torch.cuda.is_available():
            raise NotImplementedError("no CUDA GPU")
        X, y = _classification()
        self.X, self.y = X.float().cuda(), y.cuda()
        self.folds = kfold_indices(len(y), 5, seed=0)

    def _run(self, path_chunk):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fit_logistic_cv(self.X, self.y, logistic_Cs(), self.folds, path_chunk=path_chunk)
        torch.cuda.synchronize()
        return time.perf_counter() - start

    def track_protocol_s(self):
        self._run(1)  # warm-up (kernels, cuSOLVER handles)
        return self._run(1)

    track_protocol_s.unit = "s"

    def track_protocol_chunk45_s(self):
        self._run(45)
        return self._run(45)

    track_protocol_chunk45_s.unit = "s"
