"""The training step's arithmetic and memory layout: the precision setting (auto, fp32, bf16 and the older ``amp``),
torch threads, channels-last split-batch BN on the CPU, and resuming checkpoints of versions without these settings."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from inv_kernels import precision as precision_module
from inv_kernels.models.moco import MoCo
from inv_kernels.models.split_bn import SplitBatchNorm2d
from inv_kernels.precision import resolve_precision
from inv_kernels.train import PretrainConfig, Trainer
from inv_kernels.train.config import resume_differences
from pipelines import pretrain as pretrain_cli
from tests.fixtures.pretrain import tiny_pretrain_config

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


def _config(data: Path, out: Path, **overrides) -> PretrainConfig:
    settings = dict(epochs=1, max_steps=2, knn_every=-1, loader="torchvision")
    return tiny_pretrain_config(data, out, **{**settings, **overrides})


@pytest.mark.parametrize("has_bf16", [True, False])
def test_auto_precision_is_bf16_on_cuda_and_on_cpus_with_bf16_instructions(monkeypatch, has_bf16):
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: has_bf16)
    assert resolve_precision("auto", True, CPU) == ("bf16" if has_bf16 else "fp32")
    assert resolve_precision("auto", True, CUDA) == "bf16"
    assert resolve_precision("bf16", True, CPU) == "bf16"
    for device in (CPU, CUDA):
        assert resolve_precision("fp32", True, device) == "fp32"
        assert resolve_precision("auto", False, device) == "fp32"  # amp=False: float32, as before


def test_bad_precision_and_threads_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        PretrainConfig(out=str(tmp_path), precision="fp16").validate()
    with pytest.raises(ValueError, match="contradicts amp=False"):
        PretrainConfig(out=str(tmp_path), precision="bf16", amp=False).validate()
    with pytest.raises(ValueError, match="threads must be >= 0, got -1"):
        PretrainConfig(out=str(tmp_path), threads=-1).validate()
    with pytest.raises(SystemExit) as exit_info:
        pretrain_cli.main(["--precision", "fp16", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert not (tmp_path / "o").exists()


def test_checkpoints_without_precision_or_threads_resume(tmp_path):
    config = PretrainConfig(out=str(tmp_path), precision="bf16", threads=1)
    older = {k: v for k, v in PretrainConfig(out=str(tmp_path)).to_dict().items() if k not in ("precision", "threads")}
    assert resume_differences(older, config) == []
    assert resume_differences({**older, "amp": False}, config) == []  # the arithmetic may change, as with the device


def test_split_batch_norm_on_channels_last_normalises_each_block_and_keeps_the_layout():
    torch.manual_seed(0)
    split = SplitBatchNorm2d(3, num_splits=2)
    x = (torch.randn(8, 3, 5, 5) * 3 + 1).contiguous(memory_format=torch.channels_last)
    out = split(x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    blocks = [F.batch_norm(b, None, None, training=True) for b in x.contiguous().chunk(2)]  # samples 0-3 and 4-7
    torch.testing.assert_close(out, torch.cat(blocks), rtol=1e-5, atol=1e-5)
    means = torch.stack([b.mean(dim=(0, 2, 3)) for b in x.chunk(2)]).mean(dim=0)
    torch.testing.assert_close(split.running_mean, 0.1 * means, rtol=1e-5, atol=1e-6)
    out.sum().backward()  # gradients flow through the blocks


def test_moco_step_in_channels_last_with_split_bn_matches_contiguous_loss_scale():
    torch.manual_seed(0)
    model = MoCo("resnet18", cifar_stem=True, dim=16, queue_size=32, bn_splits=2).to(memory_format=torch.channels_last)
    views = torch.randn(4, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    out = model(views, views.flip(-1))
    out.loss.backward()
    assert torch.isfinite(out.loss) and model.encoder_q.conv1.weight.grad is not None


def test_trainer_runs_bf16_channels_last_on_the_cpu_and_reports_its_precision(tiny_data, tmp_path):
    summary = Trainer(_config(tiny_data, tmp_path / "bf16", precision="bf16", threads=1), progress=False).run()
    assert summary["precision"] == "bf16" and summary["steps"] == 2 and summary["device"] == "cpu"
    assert torch.get_num_threads() == 1
    summary = Trainer(_config(tiny_data, tmp_path / "fp32", amp=False), progress=False).run()
    assert summary["precision"] == "fp32"


def test_warmup_raises_the_learning_rate_linearly_over_its_steps(tiny_data, tmp_path):
    config = _config(tiny_data, tmp_path / "w", warmup_steps=4, max_steps=3, log_every_steps=1, cosine=False)
    trainer = Trainer(config, progress=False)
    trainer.run()
    lrs = [r["lr"] for r in map(json.loads, (tmp_path / "w" / "log.jsonl").read_text().splitlines()) if "lr" in r]
    assert lrs == pytest.approx([trainer.lr * k / 4 for k in (1, 2, 3)])
    with pytest.raises(ValueError, match="warmup_steps must be >= 0, got -1"):
        PretrainConfig(out=str(tmp_path), warmup_steps=-1).validate()


def test_checkpoints_of_versions_without_a_setting_resume_when_it_has_its_default(tmp_path):
    older = {k: v for k, v in PretrainConfig(out=str(tmp_path)).to_dict().items() if k != "warmup_steps"}
    assert resume_differences(older, PretrainConfig(out=str(tmp_path))) == []
    assert resume_differences(older, PretrainConfig(out=str(tmp_path), warmup_steps=5)) == [
        "warmup_steps: not recorded in the checkpoint (its default 0 then), given 5"
    ]
