"""Logistic probe against sklearn's LogisticRegression (lbfgs, multinomial) on the same folds: the CV curve, the chosen
C and the test score; the batched solver against sklearn's optimum; error paths; real image features."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from inv_kernels.probes import fit_logistic_cv, kfold_indices, logistic_Cs


def _blobs(rng, n, d=32, k=5, spread=0.45):
    centers = rng.normal(size=(k, d)) * spread  # overlapping classes
    y = rng.integers(0, k, size=n)
    return centers, y


def _sample(rng, centers, y):
    return centers[y] + rng.normal(size=(len(y), centers.shape[1]))


def _sklearn_curve(X, y, Cs, folds, metric=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return np.array(
            [
                [LogisticRegression(C=C, max_iter=3000).fit(X[tr], y[tr]).score(X[va], y[va]) for C in Cs]
                for tr, va in folds
            ]
        ).mean(0)


def _check_parity(res, X, y, Xt, yt, Cs, folds):
    """Chosen C equal to sklearn's, or adjacent with sklearn's CV scores within 1e-3; test accuracy within 0.3 points."""
    sk = _sklearn_curve(X, y, Cs, folds)
    best = int(np.argmax(sk))
    ours = res.best_index
    assert ours == best or (abs(ours - best) == 1 and abs(sk[ours] - sk[best]) <= 1e-3), (ours, best, sk, res.cv_scores)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = LogisticRegression(C=Cs[best], max_iter=3000).fit(X, y)
    assert abs(res.test_metrics["accuracy"] - ref.score(Xt, yt)) <= 0.003 + 1e-12
    # the whole CV curve where sklearn's fits are well conditioned (C <= 10)
    well = Cs <= 10
    np.testing.assert_allclose(res.cv_scores[well], sk[well], atol=0.01)
    return ref


def test_logistic_parity_synthetic():
    rng = np.random.default_rng(np.random.randint(2**31))
    centers, y = _blobs(rng, 600)
    X = _sample(rng, centers, y)
    yt = rng.integers(0, 5, size=2000)  # 0.3 points is 6 test images: one borderline image is not a failure
    Xt = _sample(rng, centers, yt)
    Cs = logistic_Cs()[::4]
    folds = kfold_indices(600, 5, seed=11)
    res = fit_logistic_cv(torch.as_tensor(X), torch.as_tensor(y), Cs, folds, X_test=Xt, y_test=yt)
    ref = _check_parity(res, X, y, Xt, yt, Cs, folds)
    assert res.best_params["C"] == pytest.approx(Cs[res.best_index])
    # the refit solves sklearn's problem: same coefficients at the chosen C (up to the gradient tolerance)
    if res.best_index == int(
        np.argmax(_sklearn_curve(X, y, Cs[res.best_index : res.best_index + 1], folds[:0] or folds))
    ):
        pass
    ours = res.extra["coef"].numpy().T
    if Cs[res.best_index] == ref.C:
        np.testing.assert_allclose(ours, ref.coef_, atol=5e-3 * max(1.0, np.abs(ref.coef_).max()))
    mpca = res.test_metrics["mean_per_class_accuracy"]
    per_class = [np.mean(ref.predict(Xt)[yt == c] == c) for c in range(5)]
    assert abs(mpca - np.mean(per_class)) <= 0.01


def test_refit_matches_sklearn_optimum():
    rng = np.random.default_rng(np.random.randint(2**31))
    centers, y = _blobs(rng, 300, d=10, k=4)
    X = _sample(rng, centers, y)
    y = y * 3 + 2  # arbitrary integer labels
    for C in (1e-3, 0.1, 10.0):
        res = fit_logistic_cv(X, y, [C], folds=3, tol=1e-8)
        ref = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(X, y)
        np.testing.assert_allclose(res.extra["coef"].numpy().T, ref.coef_, atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(res.extra["intercept"].numpy(), ref.intercept_, atol=1e-5, rtol=1e-4)
        assert res.extra["classes"].tolist() == [2, 5, 8, 11]


@pytest.mark.parametrize("path_chunk", [3, 100])
def test_path_chunks_agree(path_chunk):
    rng = np.random.default_rng(np.random.randint(2**31))
    centers, y = _blobs(rng, 250, d=12, k=3)
    X = torch.as_tensor(_sample(rng, centers, y))
    Cs = logistic_Cs()[::5]
    a = fit_logistic_cv(X, y, Cs, folds=4, seed=3, path_chunk=1)
    b = fit_logistic_cv(X, y, Cs, folds=4, seed=3, path_chunk=path_chunk)
    well = Cs <= 10
    np.testing.assert_allclose(a.cv_scores[well], b.cv_scores[well], atol=0.01)


def test_mean_per_class_metric_and_result_dict():
    rng = np.random.default_rng(np.random.randint(2**31))
    centers, y = _blobs(rng, 200, d=8, k=3)
    y[:120] = 0  # imbalanced
    X = _sample(rng, centers, y)
    res = fit_logistic_cv(X, y, logistic_Cs()[::9], folds=5, stratify=True, metric="mean_per_class_accuracy")
    assert res.metric == "mean_per_class_accuracy"
    np.testing.assert_allclose(res.fold_scores, res.extra["fold_mean_per_class_accuracy"])
    d = res.to_dict()
    assert d["probe"] == "logistic" and len(d["cv_scores"]) == 5 and d["fit_time_s"] > 0


def test_logistic_errors():
    X = torch.randn(40, 6, dtype=torch.float64)
    y = torch.arange(40) % 4
    with pytest.raises(ValueError, match=r"y \(from cifar_feats\.pt\) has 39 labels but X has 40 rows"):
        fit_logistic_cv(X, y[:39], source="cifar_feats.pt")
    y_small = y.clone()
    y_small[:3] = 9  # class 9 has 3 samples < 5 folds
    with pytest.raises(ValueError, match=r"class 9 has 3"):
        fit_logistic_cv(X, y_small)
    bad = X.clone()
    bad[21, 4] = float("nan")
    with pytest.raises(ValueError, match=r"X \(from feats\.npy\) contains NaN or Inf in row 21 \(column 4"):
        fit_logistic_cv(bad, y, source="feats.npy")
    with pytest.raises(ValueError, match=r"X must be 2-D"):
        fit_logistic_cv(X[None], y)
    with pytest.raises(ValueError, match=r"y must be 1-D"):
        fit_logistic_cv(X, y[:, None])
    with pytest.raises(TypeError, match=r"y must have a dtype"):
        fit_logistic_cv(X, y.double())
    with pytest.raises(ValueError, match=r"at least 2 classes"):
        fit_logistic_cv(X, torch.zeros(40, dtype=torch.long))
    with pytest.raises(ValueError, match=r"metric must be one of"):
        fit_logistic_cv(X, y, metric="f1")
    with pytest.raises(ValueError, match=r"X_test and y_test must be given together"):
        fit_logistic_cv(X, y, X_test=X)
    with pytest.raises(ValueError, match=r"y_test has 3 labels but X_test has 40 rows"):
        fit_logistic_cv(X, y, X_test=X, y_test=y[:3])


# --- real image features -------------------------------------------------------------------------------------------


def _load_cifar(root: Path, split: str, per_class: int):
    from PIL import Image

    images, labels = [], []
    for label, cls in enumerate(sorted(p.name for p in (root / "cifar10" / split).iterdir() if p.is_dir())):
        files = sorted((root / "cifar10" / split / cls).glob("*.jpg"))[:per_class]
        for path in files:
            with Image.open(path) as im:
                images.append(np.asarray(im.convert("RGB").resize((32, 32)), dtype=np.float32) / 255.0)
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)  # (N, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return (x - mean) / std, torch.tensor(labels)


@pytest.fixture(scope="module")
def cifar_features(real_data_cache):
    """Random-init resnet18 (seeded, eval, fc = Identity) features of 500 CIFAR-10 train and 500 test images."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    model.fc = torch.nn.Identity()
    model.eval()
    out = []
    for split, per_class in (("train", 50), ("test", 50)):  # 500 test images: one image is 0.2 points
        x, y = _load_cifar(real_data_cache, split, per_class)
        with torch.no_grad():
            feats = torch.cat([model(chunk) for chunk in x.split(250)])  # (N, 512)
        out += [feats.double(), y]
    return out


@pytest.mark.realdata
def test_logistic_parity_real_features(cifar_features):
    X, y, Xt, yt = cifar_features
    Cs = logistic_Cs()[::8]  # 6 of the 45 values keep sklearn's side of the comparison short
    folds = kfold_indices(len(y), 5, seed=0)
    res = fit_logistic_cv(X, y, Cs, folds, X_test=Xt, y_test=yt)
    _check_parity(res, X.numpy(), y.numpy(), Xt.numpy(), yt.numpy(), Cs, folds)
    assert res.test_metrics["accuracy"] > 0.15  # better than chance (0.1) even with random weights
