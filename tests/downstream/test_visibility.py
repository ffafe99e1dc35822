"""Keypoints that are not visible (LSP's flags) in transfer evaluation: corrected mode fits and scores the visible
targets only, paper mode keeps the reference code's use of every coordinate."""

import numpy as np
import pytest
import torch
from fixtures import published_layouts as published

from inv_kernels.downstream import DownstreamTask, TaskItem, task_features
from inv_kernels.measure.model import load_extractor
from inv_kernels.probes import fit_ridge_cv
from inv_kernels.transfer import TransferConfig, evaluate_transfer

N_TRAINVAL, N_TEST, T = 18, 8, 4


def _task(root, mode: str, placeholder: float) -> DownstreamTask:
    """Keypoint targets that follow the image's number; hidden ones hold ``placeholder`` (LSP-extended leaves (0, 0)
    where a joint is not visible). The images are written once per root."""
    names = [f"im{k:05d}.jpg" for k in range(1, N_TRAINVAL + N_TEST + 1)]
    if not root.exists():
        published.write_files(root, names)
    rng = np.random.RandomState(0)
    visible = rng.uniform(size=(len(names), T)) > 0.25
    visible[:, 0] = True
    items = []
    for k, name in enumerate(names):
        target = np.full(T, 1.0 + 0.1 * (k % 7))
        target[~visible[k]] = placeholder
        vis = tuple(bool(v) for v in visible[k]) if mode == "corrected" else None
        items.append(TaskItem(str(root / name), tuple(float(v) for v in target), None, vis))
    return DownstreamTask(
        "keypoints", "regression", "r2", tuple(items[:N_TRAINVAL]), tuple(items[N_TRAINVAL:]), str(root), mode, 16, 16
    )


def _transfer(task: DownstreamTask) -> dict:
    config = TransferConfig(
        models={"random": "random:resnet18"},
        tasks=[task],
        combos="none",
        mode=task.mode,
        folds=3,
        device="cpu",
        progress=False,
    )
    (row,) = evaluate_transfer(config)["results"]
    return row


def test_transfer_fits_and_scores_visible_keypoints_only_in_corrected_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("INV_KERNELS_CACHE", str(tmp_path / "cache"))
    extractor = load_extractor("random:resnet18", device=torch.device("cpu"), seed=0)
    images = tmp_path / "images"
    task = _task(images, "corrected", 0.0)
    row = _transfer(task)
    assert row["test_score"] == pytest.approx(_transfer(_task(images, "corrected", -300.0))["test_score"], abs=1e-9)
    feats = task_features(extractor, task, progress=False)
    mask = task.visibility("trainval")[feats.kept_trainval.numpy()]
    mask_test = task.visibility("test")[feats.kept_test.numpy()]
    ref = fit_ridge_cv(
        feats.X_trainval.double(),
        feats.y_trainval,
        row["chosen"]["alpha"] * np.ones(1),
        3,
        X_test=feats.X_test.double(),
        Y_test=feats.y_test,
        mask=mask,
        mask_test=mask_test,
    )
    assert row["test_score"] == pytest.approx(ref.test_metrics["r2"], abs=1e-9)
    # paper mode, as the reference code, fits and scores the placeholders too
    paper = [_transfer(_task(images, "paper", p))["test_score"] for p in (0.0, -300.0)]
    assert paper[0] != pytest.approx(paper[1], abs=1e-3)
