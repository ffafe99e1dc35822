"""The one-call Python API: measure_invariance and evaluate_transfer on model objects and images in memory, and
the result objects they return (to_dict, to_frame, plot)."""

import json
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import inv_kernels
from inv_kernels.data import write_dataset
from inv_kernels.measure.driver import MeasureConfig

PROVENANCE = {"version", "git_commit", "torch", "timm", "device", "command", "model_hash", "condition_number"}


class Tiny(nn.Module):
    """(B, 3, S, S) -> (B, 6): one strided convolution, pooled."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2)

    def forward(self, x):
        return self.conv(x).relu().mean(dim=(2, 3))


def _pil_images(count, seed):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)) for _ in range(count)]


@pytest.fixture(scope="module")
def measured():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 40, 36), dtype=torch.uint8)
    return inv_kernels.measure_invariance(
        Tiny(),
        images,
        transforms="h_flip",
        stats=_pil_images(12, 1),
        out_size=32,
        resize_size=36,
        device="cpu",
        progress=False,
    )


def test_measure_invariance_on_a_model_object_and_two_images(measured):
    assert isinstance(measured, inv_kernels.MeasureResult)
    data = measured.to_dict()
    json.dumps(data)  # JSON-ready
    (row,) = data["synthetic"]
    assert row["family"] == "h_flip" and row["num_images"] == 2
    assert row["values"] == [{"on": False}, {"on": True}]  # each per-value score with its parameters
    assert row["cosine_per_value"][0] == pytest.approx(1.0, abs=1e-5)  # the unflipped view is the clean one
    assert len(row["cosine_std_per_value"]) == 2
    assert data["model"]["model_id"].startswith("module:Tiny@")
    assert data["settings"]["data"] == "2 images given in memory"
    assert "files" not in data  # no out folder: nothing kept
    assert PROVENANCE <= set(data["provenance"])
    assert data["provenance"]["command"].startswith("inv_kernels.measure_invariance(model=Tiny, images=<uint8")
    assert data["provenance"]["model_hash"] == data["model"]["model_id"]
    assert data["provenance"]["condition_number"] == data["statistics"]["condition_number"]
    assert measured.cosine == {"h_flip": row["cosine_mean"]}


def test_result_object_frames_and_figures(measured):
    pytest.importorskip("pandas")
    families = measured.to_frame()
    assert list(families["family"]) == ["h_flip"] and "cosine_mean" in families
    values = measured.to_frame("values")
    assert list(values["param_on"]) == [False, True] and list(values["value_index"]) == [0, 1]
    figure = measured.plot()
    assert figure.axes and figure.axes[0].get_ylabel() == "whitened cosine"
    with pytest.raises(ValueError, match="families, values or groups"):
        measured.to_frame("nosuch")


def test_to_frame_without_pandas_says_how_to_install_it(measured, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        measured.to_frame()


def test_keeps_files_where_asked_and_reads_them_back(tmp_path):
    images = _pil_images(3, 2)
    result = inv_kernels.measure_invariance(
        Tiny(),
        images,
        "v_flip",
        stats=_pil_images(10, 3),
        out=tmp_path / "m",
        out_size=32,
        device="cpu",
        progress=False,
    )
    saved = json.loads((tmp_path / "m" / "results.json").read_text())
    assert saved["synthetic"] == result.to_dict()["synthetic"]
    again = inv_kernels.MeasureResult.load(tmp_path / "m" / "results.json")
    assert again.cosine == result.cosine
    stats = inv_kernels.FeatureStats.load(tmp_path / "m" / "feature_stats.pt")
    reused = inv_kernels.measure_invariance(Tiny(), images, ["v_flip"], stats=stats, out_size=32, progress=False)
    assert reused.to_dict()["statistics"]["condition_number"] == pytest.approx(stats.condition_number)


class TinyBN(nn.Module):
    """(B, 3, S, S) -> (B, 4): convolution, BatchNorm (folded when measured), pooled."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x)).relu().mean(dim=(2, 3))


def _storage(model: nn.Module) -> list:
    """Where each parameter, gradient and buffer lives: (address, device, strides)."""
    tensors = [t for p in model.parameters() for t in (p, p.grad)] + list(model.buffers())
    return [(t.data_ptr(), t.device, t.stride()) for t in tensors]


def test_a_users_model_comes_back_as_it_was_given():
    torch.manual_seed(0)
    model = TinyBN().train()
    model.bn.eval()  # a mixed state, as fine-tuning code leaves it
    model(torch.rand(2, 3, 8, 8)).sum().backward()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tensors = _storage(model)
    images = torch.randint(0, 256, (2, 3, 36, 36), dtype=torch.uint8)
    settings = {"stats": _pil_images(10, 4), "out_size": 32, "device": "cpu", "progress": False}
    inv_kernels.measure_invariance(model, images, "h_flip", channels_last=True, fold_batchnorm=True, **settings)
    inv_kernels.measure_invariance(model, images, "h_flip", layer="conv", **settings)
    assert model.training and model.conv.training and not model.bn.training
    assert _storage(model) == tensors  # the same memory: nothing moved, converted or copied
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.conv._forward_hooks  # the layer's hook lives only while the layer is measured


def test_measure_config_reads_one_string_as_one_list():
    config = MeasureConfig(model="random:resnet18", transforms="h_flip, rotation", groups="some/folder")
    assert config.transforms == ("h_flip", "rotation") and config.groups == ("some/folder",)
    assert MeasureConfig(model=Tiny()).validate().model.__class__ is Tiny


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="unknown setting\\(s\\) colour; expected some of"):
        inv_kernels.measure_invariance(Tiny(), colour="red")
    with pytest.raises(TypeError, match="images\\[1\\]: expected a PIL image or a \\(3, H, W\\) uint8 tensor"):
        inv_kernels.measure_invariance(Tiny(), [torch.zeros(3, 8, 8, dtype=torch.uint8), "x"], "h_flip")
    with pytest.raises(TypeError, match="expected uint8 images"):
        inv_kernels.measure_invariance(Tiny(), torch.zeros(2, 3, 8, 8), "h_flip")
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        inv_kernels.measure_invariance(42)
    with pytest.raises(ValueError, match="unknown transform family 'nosuch'"):
        inv_kernels.measure_invariance(Tiny(), _pil_images(2, 0), "nosuch", progress=False)


def test_evaluate_transfer_on_model_objects(tmp_path, monkeypatch):
    monkeypatch.setenv("INV_KERNELS_CACHE", str(tmp_path / "cache"))
    task = write_dataset("latents", tmp_path / "lat", size=32, count=4, progress=False)  # ridge probes: fast
    torch.manual_seed(0)
    result = inv_kernels.evaluate_transfer(
        {"a": Tiny(), "b": Tiny()},
        f"generated_latents:{task}",
        image_size=32,
        folds=2,
        combos="none",
        device="cpu",
        progress=False,
    )
    assert isinstance(result, inv_kernels.TransferResult)
    assert {(r["model"], r["task"]) for r in result.to_dict()["results"]} == {
        ("a", "generated_latents"),
        ("b", "generated_latents"),
    }
    provenance = result.to_dict()["provenance"]
    assert PROVENANCE <= set(provenance) and set(provenance["model_hash"]) == {"a", "b"}
    assert provenance["command"].startswith("inv_kernels.evaluate_transfer(")
    assert result.plot().axes[0].get_xlabel() == "test r2"
    with pytest.raises(TypeError, match="unknown setting\\(s\\) fold"):
        inv_kernels.evaluate_transfer(Tiny(), fold=3)


def test_task_images_and_model_inputs_share_one_size(tmp_path, monkeypatch):
    """Without image_size, the models' input size is the task images' size: 224 for NAME:ROOT specs, 64 for the
    built-in sets, the tasks' own out_size for task objects."""
    from inv_kernels import transfer
    from inv_kernels.downstream import get_task

    assert transfer.task_image_size(["cifar10:/x"], None) == transfer.PAPER_TASK_SIZE == 224
    assert transfer.task_image_size([], None) == transfer.BUILTIN_TASK_SIZE
    assert transfer.task_image_size(["cifar10:/x"], 96) == 96
    folder = write_dataset("latents", tmp_path / "lat", size=32, count=4, progress=False)
    task = get_task("generated_latents", folder, out_size=48, resize_size=48)
    assert transfer.task_image_size([task], None) == 48
    seen = {}

    def stop(config):
        seen["sizes"] = {opts["image_size"] for opts in config.load_options.values()}
        raise RuntimeError("stop before loading")

    monkeypatch.setattr(transfer, "load_models", stop)
    for tasks, size in ((f"generated_latents:{folder}", 224), ([task], 48), (None, transfer.BUILTIN_TASK_SIZE)):
        with pytest.raises(RuntimeError, match="stop before loading"):
            inv_kernels.evaluate_transfer(Tiny(), tasks, progress=False)
        assert seen["sizes"] == {size}
