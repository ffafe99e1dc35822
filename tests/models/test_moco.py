"""The MoCo v2 model: queue ring buffer, momentum update, split-batch BN, backbones and checkpoint layout."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from inv_kernels.models.backbones import build_backbone
from inv_kernels.models.checkpoint import export_backbone, load_backbone, moco_state_dict, save_pretraining_checkpoint
from inv_kernels.models.moco import MoCo
from inv_kernels.models.split_bn import SplitBatchNorm2d, convert_to_split_batchnorm
from inv_kernels.ops.contrastive_modules import KeyQueue
from inv_kernels.ops.infonce import infonce_loss_ref, ntxent_loss_ref


def _tiny_moco(**kwargs) -> MoCo:
    return MoCo("resnet18", cifar_stem=True, dim=16, queue_size=kwargs.pop("queue_size", 10), **kwargs)


def test_queue_is_a_key_queue_written_in_place_by_forward():
    model = _tiny_moco(queue_size=10)
    assert isinstance(model.key_queue, KeyQueue) and len(model.key_queue) == 10
    before = model.key_queue.tensor.clone()  # (K, dim)
    storage = model.key_queue.tensor.data_ptr()
    for _step in range(3):  # 4 keys a step: the third batch wraps around the end
        model(torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16))
    assert int(model.key_queue.ptr) == 2 and model.key_queue.tensor.data_ptr() == storage
    written = torch.cat([model.key_queue.tensor[:2], model.key_queue.tensor[2:10]])
    assert not torch.isclose(written, before).all(dim=1).any()  # every row rewritten by keys
    assert torch.allclose(written.norm(dim=1), torch.ones(10), atol=1e-5)  # normalised keys


def test_queue_starts_as_the_official_codes_draw():
    """MoCo draws its queue as the official code, randn(dim, K) normalised over dim 0, so a seeded model starts
    with the same negatives (and leaves the generator in the same state) as before the queue was a KeyQueue."""
    torch.manual_seed(5)
    queue = KeyQueue(12, 16)
    after = torch.rand(3)
    torch.manual_seed(5)
    expected = F.normalize(torch.randn(16, 12), dim=0)  # (dim, K)
    assert torch.equal(queue.tensor, expected.t()) and torch.equal(torch.rand(3), after)


def test_state_dict_keeps_the_official_queue_layout():
    model = _tiny_moco(queue_size=10)
    model(torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16))
    state = model.state_dict()
    assert not [key for key in state if key.startswith("key_queue")]
    queue, ptr = state["queue"], state["queue_ptr"]
    assert queue.shape == (16, 10) and queue.dtype == torch.float32 and queue.is_contiguous()  # (dim, K)
    assert ptr.shape == (1,) and ptr.dtype == torch.long and int(ptr) == 4
    assert torch.equal(queue, model.key_queue.tensor.t())
    assert list(state)[:2] == ["queue", "queue_ptr"]  # first, as the official model's own buffers
    assert len(state) == len(dict(model.named_buffers())) + len(dict(model.named_parameters()))


def test_official_layout_loads_into_the_key_queue():
    official = {key: value.clone() for key, value in _tiny_moco(queue_size=10).state_dict().items()}
    official["queue"] = F.normalize(torch.randn(16, 10), dim=0)  # (dim, K)
    official["queue_ptr"] = torch.tensor([7])
    model = _tiny_moco(queue_size=10)
    model.load_state_dict(official)  # strict
    assert torch.equal(model.key_queue.tensor, official["queue"].t()) and int(model.key_queue.ptr) == 7
    again = _tiny_moco(queue_size=10)
    again.load_state_dict(model.state_dict())
    assert torch.equal(again.key_queue.tensor, model.key_queue.tensor) and int(again.key_queue.ptr) == 7
    assert model.load_state_dict({"queue": official["queue"]}, strict=False).missing_keys  # the rest is missing
    official["queue"] = torch.randn(16, 32)
    with pytest.raises(RuntimeError, match=r"queue: .*shape torch.Size\(\[16, 32\]\).*torch.Size\(\[16, 10\]\)"):
        model.load_state_dict(official)


def test_momentum_update_and_key_encoder_frozen():
    model = _tiny_moco(momentum=0.9)
    with torch.no_grad():
        for p in model.encoder_q.parameters():
            p.add_(1.0)
    before = [p.clone() for p in model.encoder_k.parameters()]
    model._momentum_update()
    for b, q, k in zip(before, model.encoder_q.parameters(), model.encoder_k.parameters()):
        assert torch.allclose(k, 0.9 * b + 0.1 * q, atol=1e-6)
        assert not k.requires_grad


def test_forward_gives_loss_gradients_only_to_the_query_encoder():
    model = _tiny_moco(bn_splits=2)
    x, y = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)
    out = model(x, y)
    out.loss.backward()
    assert out.loss.ndim == 0 and torch.isfinite(out.loss) and 0.0 <= float(out.accuracy) <= 1.0
    assert all(p.grad is not None for p in model.encoder_q.parameters())
    assert all(p.grad is None for p in model.encoder_k.parameters())
    assert int(model.key_queue.ptr) == 4


def test_infonce_reference_matches_float64_formula():
    q = F.normalize(torch.randn(5, 8, dtype=torch.float64), dim=1)
    k = F.normalize(torch.randn(5, 8, dtype=torch.float64), dim=1)
    queue = F.normalize(torch.randn(11, 8, dtype=torch.float64), dim=1)
    loss, _ = infonce_loss_ref(q, k, queue, 0.2)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.t()], 1) / 0.2
    expected = (torch.logsumexp(logits, 1) - logits[:, 0]).mean()
    assert torch.allclose(loss.double(), expected, atol=1e-6)
    z1, z2 = F.normalize(torch.randn(3, 4), dim=1), F.normalize(torch.randn(3, 4), dim=1)
    nt, acc = ntxent_loss_ref(z1, z2, 0.5)
    z = torch.cat([z1, z2])
    sim = (z @ z.t() / 0.5).fill_diagonal_(float("-inf"))
    target = torch.tensor([3, 4, 5, 0, 1, 2])
    assert torch.allclose(nt, F.cross_entropy(sim, target), atol=1e-6) and 0 <= float(acc) <= 1


def test_split_batchnorm_equals_batchnorm_per_split():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    split = SplitBatchNorm2d(3, num_splits=2)
    split.load_state_dict(bn.state_dict())
    x = torch.randn(8, 3, 5, 5)
    out = split(x)
    halves = [nn.BatchNorm2d(3) for _ in range(2)]
    for h in halves:
        h.load_state_dict(bn.state_dict())
    # Split b holds the samples b, b + s, b + 2s, ... (the (N, C) -> (N / s, s * C) view interleaves them).
    expected = torch.empty_like(x)
    expected[0::2], expected[1::2] = halves[0](x[0::2]), halves[1](x[1::2])
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(split.running_mean, (halves[0].running_mean + halves[1].running_mean) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="batch 6 is not a multiple of num_splits=4"):
        SplitBatchNorm2d(3, num_splits=4)(torch.randn(6, 3, 2, 2))
    model = convert_to_split_batchnorm(build_backbone("resnet18").module, 4)
    assert sum(isinstance(m, SplitBatchNorm2d) for m in model.modules()) == 20


def test_backbones_feature_dims_and_wide_resnet_size():
    assert build_backbone("resnet18").feature_dim == 512
    r50 = build_backbone("resnet50")
    assert r50.feature_dim == 2048
    assert abs(sum(p.numel() for p in r50.module.parameters()) / 1e6 - 23.5) < 0.05
    w3 = build_backbone("resnet50w3")  # docs/METHOD.md: 211.2 M backbone parameters, 6144-d feature, 192 stem channels
    assert w3.feature_dim == 6144 and w3.module.conv1.out_channels == 192
    assert abs(sum(p.numel() for p in w3.module.parameters()) / 1e6 - 211.2) < 0.05
    cifar = build_backbone("resnet18", cifar_stem=True)
    assert cifar.module(torch.randn(2, 3, 16, 16)).shape == (2, 512)
    with pytest.raises(ValueError, match="unknown architecture 'resnet7'"):
        build_backbone("resnet7")


def test_checkpoint_layout_matches_official_moco_and_exports(tmp_path):
    model = _tiny_moco()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = save_pretraining_checkpoint(tmp_path / "c.pth.tar", model=model, optimizer=optimizer, epoch=3, extra={})
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 3 and state["arch"] == "resnet18"
    keys = set(state["state_dict"])
    assert {
        "module.queue",
        "module.queue_ptr",
        "module.encoder_q.conv1.weight",
        "module.encoder_q.fc.0.weight",
        "module.encoder_q.fc.2.weight",
        "module.encoder_k.conv1.weight",
    } <= keys
    # The paper's reference code: strip "module.", load into MoCo with strict=False, use encoder_q without fc.
    loaded = load_backbone(path)
    assert loaded.source == "pretraining" and loaded.cifar_stem and loaded.feature_dim == 512
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    expected = model.backbone().eval()(x)
    assert torch.allclose(loaded.module(x), expected, atol=1e-6)
    exported = load_backbone(export_backbone(path, tmp_path / "b.pth"))
    assert exported.source == "export" and torch.allclose(exported.module(x), expected, atol=1e-6)
    assert set(moco_state_dict(model)) == keys


def test_load_backbone_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_backbone(tmp_path / "none.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        load_backbone(tmp_path / "junk.pth")
    torch.save({"state_dict": build_backbone("resnet18").module.state_dict(), "arch": "resnet50"}, tmp_path / "x.pth")
    with pytest.raises(ValueError, match="do not fit architecture 'resnet50'"):
        load_backbone(tmp_path / "x.pth")


def test_timm_backbone_by_name_trains_and_round_trips(tmp_path):
    pytest.importorskip("timm", reason="timm is not installed (pip install timm)")
    model = MoCo("timm:resnet10t", dim=16, queue_size=32, bn_splits=2)
    out = model(torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32))
    out.loss.backward()
    assert torch.isfinite(out.loss) and model.feature_dim == 512
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = save_pretraining_checkpoint(tmp_path / "t.pth.tar", model=model, optimizer=optimizer, epoch=1, extra={})
    loaded = load_backbone(path)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(loaded.module(x), model.backbone().eval()(x), atol=1e-5)
    with pytest.raises(ValueError, match="unknown timm architecture 'not_a_model'"):
        build_backbone("timm:not_a_model")
