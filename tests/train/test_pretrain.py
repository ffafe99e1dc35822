"""MoCo v2 pretraining end to end on tiny generated data: the CLI, exact resume after SIGKILL, recipes, bad input,
corrupt images, export, kNN, and two processes under torchrun (gloo)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inv_kernels.augment.params import AugmentParams
from inv_kernels.models.checkpoint import LAST, load_backbone, read_checkpoint
from inv_kernels.train import PretrainConfig, Trainer, knn_top1
from pipelines import pretrain as pretrain_cli
from tests.fixtures.pretrain import tiny_pretrain_config

ROOT = Path(__file__).resolve().parents[2]
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
    "0",
    "--knn-max-images",
    "40",
    "--log-every-steps",
    "1",
]


def _tiny_config(data: Path, out: Path, **overrides) -> PretrainConfig:
    return tiny_pretrain_config(data, out, **{**dict(knn_max_images=40, epochs=2, log_every_steps=1), **overrides})


def _run_cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.pretrain", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


# python -c: pipelines.pretrain, which stops itself (SIGSTOP) once it has logged step argv[1], so that the test can
# kill it there; the rest of argv are the CLI's arguments.
_STOP_AFTER_STEP = """
import os, signal, sys
from inv_kernels.train.trainer import Trainer
from pipelines import pretrain

stop_at, log = int(sys.argv[1]), Trainer._log

def log_then_stop(self, record):
    log(self, record)
    if record.get("event") == "step" and record["step"] == stop_at:
        os.kill(os.getpid(), signal.SIGSTOP)

Trainer._log = log_then_stop
sys.exit(pretrain.main(sys.argv[2:]))
"""


def _kill_after_step(args: list[str], step: int, stderr: Path) -> int:
    """Runs the pretraining CLI until it has logged ``step`` and SIGKILLs it there, from this process; returns its
    exit status (-9)."""
    with open(stderr, "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", _STOP_AFTER_STEP, str(step), *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err
        )
        try:
            _, status = os.waitpid(process.pid, os.WUNTRACED)  # returns when the run stops itself after the step
            assert os.WIFSTOPPED(status), f"the run ended before step {step}: {stderr.read_text()[-2000:]}"
            os.kill(process.pid, signal.SIGKILL)
            return process.wait(timeout=60)
        finally:
            if process.returncode is None:
                process.kill()


def _assert_same_state(a: dict, b: dict) -> None:
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), f"{key} differs after resume"
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert a["inv_kernels"]["global_step"] == b["inv_kernels"]["global_step"]


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tiny_data, tmp_path):
    common = ["--data", str(tiny_data), *TINY, "--epochs", "2", "--save-every-steps", "2", "--knn-every", "-1"]
    straight = _run_cli([*common, "--out", str(tmp_path / "a")])
    assert straight.returncode == 0, straight.stderr[-2000:]
    killed = _kill_after_step([*common, "--out", str(tmp_path / "b")], 7, tmp_path / "killed.err")
    assert killed == -signal.SIGKILL  # killed after step 7; the last checkpoint is at step 6
    assert not (tmp_path / "b" / "summary.json").exists()
    mid = read_checkpoint(tmp_path / "b" / LAST)["inv_kernels"]
    steps_per_epoch = json.loads((tmp_path / "a" / "log.jsonl").read_text().splitlines()[0])["steps_per_epoch"]
    assert mid["global_step"] == 6 and 0 < mid["step_in_epoch"] < steps_per_epoch  # really mid-epoch
    resumed = _run_cli([*common, "--out", str(tmp_path / "b"), "--resume", "auto"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_same_state(read_checkpoint(tmp_path / "a" / LAST), read_checkpoint(tmp_path / "b" / LAST))
    logged = [
        [
            json.loads(line)["step"]
            for line in (tmp_path / run / "log.jsonl").read_text().splitlines()
            if json.loads(line)["event"] == "step"
        ]
        for run in ("a", "b")
    ]
    assert logged[1] == logged[0]  # step 7, logged before the kill, is logged once


def test_cli_run_writes_checkpoint_logs_summary_and_exports(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    code = pretrain_cli.main(["--data", str(tiny_data), *TINY, "--epochs", "1", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "final kNN top-1" in printed and "checkpoint" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_done"] == 1 and summary["final_knn_top1"] is not None
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert {"start", "step", "epoch"} <= {r["event"] for r in records}
    assert all(r["loss"] > 0 for r in records if r["event"] == "step")
    from pipelines import export

    assert export.main([str(out / LAST), str(tmp_path / "backbone.pth")]) == 0
    backbone = load_backbone(tmp_path / "backbone.pth")
    assert backbone.module(torch.randn(2, 3, 16, 16)).shape == (2, 512)


@pytest.mark.parametrize("recipe", ["default", "spatial", "appearance"])
def test_each_recipe_trains_only_its_augmentations(tiny_data, tmp_path, recipe):
    config = _tiny_config(
        tiny_data, tmp_path, recipe=recipe, batch_size=32, loader="torchvision"
    )  # inspects its dataset
    trainer = Trainer(config, progress=False)
    dataset = trainer.train_loader.dataset
    dataset.set_epoch(0)
    items = [dataset[i] for i in range(32)]
    params = AugmentParams.cat([item["params"] for item in items])  # 64 views
    flips, jitter = params.flip.float().mean(), params.jitter_applied.float().mean()
    gray, blur = params.grayscale.float().mean(), params.blur_applied.float().mean()
    if recipe == "spatial":
        assert flips > 0 and jitter == 0 and gray == 0 and blur == 0
    elif recipe == "appearance":
        assert flips == 0 and jitter > 0 and blur > 0
        assert torch.equal(params.crop_height, params.crop_width)  # the centre square, not a random crop
    else:
        assert flips > 0 and jitter > 0 and gray > 0 and blur > 0
    assert set(dataset.recipe.op_names) >= ({"horizontal_flip"} if recipe != "appearance" else {"grayscale"})


def test_bad_input_fails_before_training(tiny_data, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Trainer(_tiny_config(tmp_path / "missing", tmp_path / "o"), progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is empty"):
        Trainer(_tiny_config(tmp_path / "empty", tmp_path / "o"), progress=False)
    with pytest.raises(ValueError, match="unknown"):
        Trainer(_tiny_config(tiny_data, tmp_path / "o", recipe="sepia"), progress=False)
    with pytest.raises(ValueError, match="unknown architecture 'vgg'"):
        Trainer(_tiny_config(tiny_data, tmp_path / "o", arch="vgg"), progress=False)
    with pytest.raises(ValueError, match=r"batch size 4096 x 1 process\(es\) is larger than the dataset"):
        Trainer(_tiny_config(tiny_data, tmp_path / "o", batch_size=4096), progress=False)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError, match="cannot be created: .* is a file"):
        Trainer(_tiny_config(tiny_data, blocker / "out"), progress=False)


def test_resume_from_another_architecture_is_refused(tiny_data, tmp_path):
    Trainer(_tiny_config(tiny_data, tmp_path, max_steps=1, knn_every=-1), progress=False).run()
    with pytest.raises(ValueError, match="arch: saved 'resnet18', given 'resnet34'"):
        Trainer(_tiny_config(tiny_data, tmp_path, arch="resnet34", resume="auto"), progress=False)


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    assert pretrain_cli.main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "pretrain: error:" in capsys.readouterr().err


def test_corrupt_image_mid_epoch_is_skipped_and_counted(tiny_data, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    first_class = sorted((data / "train").iterdir())[0]
    (first_class / "zz_truncated.jpg").write_bytes((next(first_class.glob("*.jpg"))).read_bytes()[:100])
    (first_class / "zz_garbage.jpg").write_bytes(b"\x00not an image at all")
    summary = Trainer(_tiny_config(data, tmp_path / "o", epochs=1, knn_every=-1), progress=False).run()
    assert summary["skipped_images"] >= 1  # drop_last may leave one of them out of the epoch
    assert summary["steps"] > 0


def test_knn_top1_on_separable_and_random_features():
    torch.manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(4, 32), dim=1)
    labels = torch.arange(4).repeat_interleave(50)
    feats = torch.nn.functional.normalize(centres[labels] + 0.05 * torch.randn(200, 32), dim=1)
    assert knn_top1(feats[::2], labels[::2], feats[1::2], labels[1::2], k=20) == 1.0
    shuffled = labels[torch.randperm(200)]
    assert knn_top1(feats[::2], shuffled[::2], feats[1::2], labels[1::2], k=20) < 0.5


@pytest.mark.slow
def test_two_processes_under_torchrun_gloo(tiny_data, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "pipelines.pretrain",
        "--data",
        str(tiny_data),
        *TINY,
        "--epochs",
        "1",
        "--max-steps",
        "3",
        "--knn-every",
        "-1",
        "--out",
        str(tmp_path / "ddp"),
    ]
    result = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    state = read_checkpoint(tmp_path / "ddp" / LAST)
    assert state["inv_kernels"]["world_size"] == 2 and state["inv_kernels"]["global_step"] == 3
    # Both processes enqueue their keys: 3 steps x 8 keys (4 per process).
    assert int(state["state_dict"]["module.queue_ptr"]) == 24


def test_auto_loader_falls_back_to_torchvision_without_dali(tiny_data, tmp_path, monkeypatch):
    import inv_kernels

    monkeypatch.setattr(inv_kernels, "HAS_DALI", False)
    trainer = Trainer(_tiny_config(tiny_data, tmp_path), progress=False)
    assert trainer.loader == trainer.train_loader.kind == "torchvision"


def test_a_non_finite_loss_stops_training_before_any_checkpoint_holds_it(tiny_data, tmp_path, monkeypatch):
    """The loss is read on logged steps only (no device wait every step); a NaN at step 3 is caught at the step-4
    read, and the checkpoint on disk is the last one written before it (here: none)."""
    trainer = Trainer(
        _tiny_config(tiny_data, tmp_path / "run", log_every_steps=2, epochs=3, knn_every=-1), progress=False
    )
    real_step = trainer._train_step

    def step(views):
        loss, accuracy = real_step(views)
        return (loss * float("nan") if trainer.global_step == 2 else loss), accuracy  # the 3rd step (0-based 2)

    monkeypatch.setattr(trainer, "_train_step", step)
    with pytest.raises(FloatingPointError, match=r"loss became nan between steps 3 and 4"):
        trainer.run()
    assert not (tmp_path / "run" / LAST).exists()
    steps = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if r.get("event") == "step"] == [2]
