"""Pretraining with ``--loader dali`` on tiny generated JPEGs on the CPU: a one-epoch CLI run, and exact resume
mid-epoch (the DALI loader starts an epoch at the saved step)."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from inv_kernels.data import write_dataset
from inv_kernels.models.checkpoint import LAST, read_checkpoint
from inv_kernels.train import PretrainConfig, Trainer
from pipelines import pretrain as pretrain_cli

pytestmark = pytest.mark.dali

TINY = [
    "--image-size",
    "16",
    "--batch-size",
    "8",
    "--bn-splits",
    "2",
    "--queue-size",
    "64",
    "--moco-dim",
    "16",
    "--workers",
    "1",
    "--log-every-steps",
    "1",
    "--knn-every",
    "-1",
]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """Generated scenes at 32 px: train/<shape>/*.jpg (21 images: 2 batches of 8) and test/."""
    return write_dataset("classification", tmp_path_factory.mktemp("data") / "scenes", size=32, count=3, progress=False)


def test_one_epoch_with_the_dali_loader_from_the_cli(tiny_data, tmp_path, capsys):
    assert pretrain_cli.build_parser().parse_args([]).loader == "auto"  # dali here, where DALI is installed
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    some_class = sorted((data / "train").iterdir())[0]
    (some_class / "zz_truncated.jpg").write_bytes(next(some_class.glob("*.jpg")).read_bytes()[:200])
    out = tmp_path / "run"
    args = ["--data", str(data), *TINY, "--epochs", "1", "--out", str(out)]
    assert pretrain_cli.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["loader"] == "dali" and summary["epochs_done"] == 1 and summary["steps"] == 2
    assert summary["skipped_images"] == 1
    losses = [r["loss"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if r["event"] == "step"]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
    assert "skipped images" in capsys.readouterr().out


def test_unknown_loader_is_refused(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="unknown loader 'ffcv'"):
        Trainer(PretrainConfig(data=str(tiny_data), out=str(tmp_path), loader="ffcv"), progress=False)
    with pytest.raises(SystemExit):
        pretrain_cli.build_parser().parse_args(["--loader", "ffcv"])


def test_resume_mid_epoch_matches_an_uninterrupted_run(tiny_data, tmp_path):
    def config(out, **kw):
        return PretrainConfig(
            data=str(tiny_data),
            out=str(out),
            image_size=16,
            batch_size=8,
            bn_splits=2,
            queue_size=64,
            moco_dim=16,
            workers=1,
            epochs=1,
            knn_every=-1,
            loader="dali",
            **kw,
        )

    straight = Trainer(config(tmp_path / "a"), progress=False).run()
    stopped = Trainer(config(tmp_path / "b", max_steps=1), progress=False).run()  # after step 1 of 2
    assert stopped["steps"] == 1 and read_checkpoint(tmp_path / "b" / LAST)["inv_kernels"]["step_in_epoch"] == 1
    resumed = Trainer(config(tmp_path / "b", resume="auto"), progress=False).run()  # reads only the second batch
    assert straight["steps"] == resumed["steps"] == 2
    a, b = read_checkpoint(tmp_path / "a" / LAST), read_checkpoint(tmp_path / "b" / LAST)
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), f"{key} differs after resume"
