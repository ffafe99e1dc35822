"""The checkpoint layouts the project reads, each read with ``torch.load(weights_only=True)`` (no code from the file
runs): the official MoCo layout, plain torchvision state dicts, the project's exports and pretraining checkpoints."""

import pytest
import torch
import torchvision

from inv_kernels.models.checkpoint import export_backbone, load_backbone, read_checkpoint, save_pretraining_checkpoint
from inv_kernels.models.moco import MoCo


@pytest.fixture
def loads(monkeypatch) -> list:
    """Records the weights_only argument of every torch.load call."""
    seen = []
    real_load = torch.load

    def load(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", load)
    return seen


def test_official_moco_layout_loads_weights_only(tmp_path, loads):
    """facebookresearch/moco's main_moco.py saves {epoch, arch, state_dict (module.encoder_q.* / encoder_k.* / queue
    under DDP), optimizer}."""
    model = MoCo("resnet18", dim=16, queue_size=32, bn_splits=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    official = {
        "epoch": 200,
        "arch": "resnet18",
        "optimizer": optimizer.state_dict(),
        "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
    }
    torch.save(official, tmp_path / "checkpoint_0199.pth.tar")
    loaded = load_backbone(tmp_path / "checkpoint_0199.pth.tar")
    assert loaded.source == "moco_v2" and loaded.arch == "resnet18" and not loaded.cifar_stem
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded.module(x), model.eval().backbone().eval()(x))
    assert loads and all(flag is True for flag in loads)


def test_torchvision_state_dict_loads_weights_only(tmp_path, loads):
    resnet = torchvision.models.resnet18(weights=None).eval()
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    loaded = load_backbone(tmp_path / "resnet18.pth", arch="resnet18")
    assert loaded.source == "torchvision" and loaded.feature_dim == 512
    x = torch.randn(2, 3, 64, 64)
    resnet.fc = torch.nn.Identity()
    assert torch.equal(loaded.module(x), resnet(x))
    assert loads and all(flag is True for flag in loads)


def test_pretraining_checkpoint_and_export_load_weights_only(tmp_path, loads):
    model = MoCo("resnet18", cifar_stem=True, dim=16, queue_size=32, bn_splits=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = save_pretraining_checkpoint(
        tmp_path / "c.pth.tar",
        model=model,
        optimizer=optimizer,
        epoch=1,
        extra={"config": {"recipe": "spatial"}, "image_size": 16},
    )
    exported = load_backbone(export_backbone(path, tmp_path / "b.pth"))
    assert exported.source == "export" and exported.cifar_stem
    assert read_checkpoint(tmp_path / "b.pth")["recipe"] == "spatial"
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(exported.module(x), model.eval().backbone().eval()(x))
    assert loads and all(flag is True for flag in loads)
