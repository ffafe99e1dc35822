"""Bring your own model: every checkpoint layout ``inv_kernels.models.load`` reads, each made here from randomly
initialised torchvision and timm models and saved the way its source project saves it, loaded (the features equal the
source backbone's) and run through ``pipelines.measure``, ``pipelines.transfer`` and the Python API on tiny data."""

import copy
import json

import pytest
import torch
import torch.nn as nn
import torchvision

import inv_kernels
from inv_kernels.data import write_dataset
from inv_kernels.measure.model import load_extractor
from inv_kernels.models.load import load_model
from pipelines import export as export_cli
from pipelines import measure as measure_cli
from pipelines import transfer as transfer_cli

timm = pytest.importorskip("timm", reason="timm is not installed (pip install timm)")

SIZE = 32


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return write_dataset("classification", tmp_path_factory.mktemp("sets") / "cls", size=SIZE, count=3, progress=False)


@pytest.fixture(scope="module")
def tiny_latents(tmp_path_factory):
    """A regression task: its ridge probe is quick beside a logistic one."""
    return write_dataset("latents", tmp_path_factory.mktemp("sets") / "lat", size=SIZE, count=3, progress=False)


def _resnet18() -> nn.Module:
    return torchvision.models.resnet18(weights=None, num_classes=10)


def _headless(model: nn.Module) -> nn.Module:
    """The model without its classifier / projection head: the reference features."""
    model = copy.deepcopy(model)
    if hasattr(model, "reset_classifier"):
        model.reset_classifier(0)
    else:
        model.fc = nn.Identity()
    return model.eval()


def _mlp(dim_in: int, dim_out: int = 16) -> nn.Module:
    return nn.Sequential(nn.Linear(dim_in, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, dim_out))


def _prefixed(prefix: str, module: nn.Module) -> dict:
    return {f"{prefix}{k}": v for k, v in module.state_dict().items()}


def _vit(**kwargs) -> nn.Module:
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=SIZE, **kwargs)


def moco_v2(tmp_path):
    """facebookresearch/moco main_moco.py: {epoch, arch, state_dict (module.encoder_q.* with the MLP head as fc,
    module.encoder_k.*, module.queue, module.queue_ptr), optimizer}."""
    encoder = _resnet18()
    encoder.fc = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 16))
    state = {
        **_prefixed("module.encoder_q.", encoder),
        **_prefixed("module.encoder_k.", encoder),
        "module.queue": torch.randn(16, 64),
        "module.queue_ptr": torch.zeros(1, dtype=torch.long),
    }
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.03, momentum=0.9).state_dict()
    path = tmp_path / "checkpoint_0199.pth.tar"
    torch.save({"epoch": 200, "arch": "resnet18", "state_dict": state, "optimizer": optimizer}, path)
    return path, None, _headless(encoder), "module.encoder_q."


def moco_v3_resnet(tmp_path):
    """facebookresearch/moco-v3: module.base_encoder.* (fc: the projection MLP), module.momentum_encoder.*,
    module.predictor.*."""
    encoder = _resnet18()
    encoder.fc = _mlp(512)
    state = {
        **_prefixed("module.base_encoder.", encoder),
        **_prefixed("module.momentum_encoder.", encoder),
        **_prefixed("module.predictor.", _mlp(16)),
    }
    path = tmp_path / "moco_v3_r18.pth.tar"
    torch.save({"epoch": 100, "state_dict": state}, path)
    return path, "resnet18", _headless(encoder), "module.base_encoder."


def moco_v3_vit(tmp_path):
    """MoCo v3's ViT: a timm VisionTransformer whose ``head`` is the projection MLP."""
    encoder = _vit(num_classes=0)
    reference = copy.deepcopy(encoder).eval()
    encoder.head = _mlp(192)
    state = {**_prefixed("module.base_encoder.", encoder), **_prefixed("module.momentum_encoder.", encoder)}
    state.update(_prefixed("module.predictor.", _mlp(16)))
    path = tmp_path / "moco_v3_vit.pth.tar"
    torch.save({"epoch": 300, "state_dict": state}, path)
    return path, "timm:vit_tiny_patch16_224", reference, "module.base_encoder."


def solo_learn(tmp_path):
    """solo-learn: a Lightning checkpoint, state_dict with backbone.* (fc already Identity), projector.*,
    momentum_backbone.*, momentum_projector.*."""
    backbone = _resnet18()
    backbone.fc = nn.Identity()
    state = {
        **_prefixed("backbone.", backbone),
        **_prefixed("projector.", _mlp(512)),
        **_prefixed("momentum_backbone.", backbone),
        **_prefixed("momentum_projector.", _mlp(512)),
    }
    path = tmp_path / "byol-epoch=99.ckpt"
    torch.save({"epoch": 99, "global_step": 1000, "pytorch-lightning_version": "2.1.0", "state_dict": state}, path)
    return path, "resnet18", backbone.eval(), "backbone."


def lightly(tmp_path):
    """lightly's tutorials: ``nn.Sequential(*list(resnet.children())[:-1])`` saved as its state dict."""
    resnet = _resnet18()
    path = tmp_path / "lightly_backbone.pth"
    torch.save(nn.Sequential(*list(resnet.children())[:-1]).state_dict(), path)
    return path, "resnet18", _headless(resnet), ""


def lightly_model(tmp_path):
    """A lightly model (``self.backbone`` the Sequential, ``self.projection_head``) saved as its state dict."""
    resnet = _resnet18()
    state = {
        **_prefixed("backbone.", nn.Sequential(*list(resnet.children())[:-1])),
        **_prefixed("projection_head.", _mlp(512)),
    }
    path = tmp_path / "simclr.pt"
    torch.save(state, path)
    return path, "resnet18", _headless(resnet), "backbone."


def safetensors_convnext(tmp_path):
    """A timm ConvNeXt's state dict (classifier included) as a .safetensors file."""
    from safetensors.torch import save_file

    model = timm.create_model("convnext_atto", pretrained=False, num_classes=10)
    path = tmp_path / "convnext_atto.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path, "timm:convnext_atto", _headless(model), ""


def timm_vit_state_dict(tmp_path):
    model = _vit(num_classes=10)
    path = tmp_path / "vit_tiny.pth"
    torch.save(model.state_dict(), path)
    return path, "timm:vit_tiny_patch16_224", _headless(model), ""


def torchvision_state_dict(tmp_path):
    model = _resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save({"model": model.state_dict()}, path)
    return path, "resnet18", _headless(model), ""


FORMATS = [
    moco_v2,
    moco_v3_resnet,
    moco_v3_vit,
    solo_learn,
    lightly,
    lightly_model,
    safetensors_convnext,
    timm_vit_state_dict,
    torchvision_state_dict,
]


def _exit_code(main, args: list[str]) -> int:
    """What ``python -m`` would exit with (argument errors raise SystemExit)."""
    try:
        return main(args)
    except SystemExit as stop:
        return stop.code


def _measure_args(model: str, data, out, *extra: str) -> list[str]:
    return [
        "--model",
        model,
        "--data",
        str(data),
        "--num-images",
        "2",
        "--transforms",
        "h_flip",
        "--crop-size",
        str(SIZE),
        "--resize-size",
        str(SIZE),
        "--stats-images",
        "4",
        "--shrinkage",
        "ledoit_wolf",
        "--workers",
        "0",
        "--no-cache",
        "--quiet",
        "--out",
        str(out),
        *extra,
    ]


@pytest.mark.parametrize("make", FORMATS, ids=[f.__name__ for f in FORMATS])
def test_checkpoint_format_loads_and_runs_through_measure_and_transfer(
    make, tiny_set, tiny_latents, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("INV_KERNELS_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    path, arch, reference, prefix = make(tmp_path)
    module, report = load_model(path, arch=arch, image_size=SIZE)
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.allclose(module.eval()(x), reference(x), atol=1e-5)
    assert report.stripped == prefix and not report.missing and not report.unexpected
    arch_args = ["--arch", arch] if arch else []

    assert measure_cli.main(_measure_args(str(path), tiny_set, tmp_path / "measure", *arch_args)) == 0
    printed = capsys.readouterr().out
    assert f"loaded {report.arch}" in printed
    results = json.loads((tmp_path / "measure" / "results.json").read_text())
    assert results["model"]["load"]["stripped"] == prefix and results["model"]["load"]["source"] == report.source

    args = ["--models", f"m={path}", *arch_args, "--image-size", str(SIZE), "--folds", "2", "--combos", "none"]
    args += ["--task", f"generated_latents:{tiny_latents}", "--out", str(tmp_path / "transfer")]
    assert transfer_cli.main(args) == 0
    transfer = json.loads((tmp_path / "transfer" / "transfer.json").read_text())
    assert transfer["models"]["m"]["load"]["stripped"] == prefix
    assert transfer["results"][0]["feature_dim"] == report.feature_dim

    measured = inv_kernels.measure_invariance(
        path,
        tiny_set,
        "h_flip",
        arch=arch or None,
        num_images=2,
        out_size=SIZE,
        resize_size=SIZE,
        stats_images=4,
        shrinkage="ledoit_wolf",
        workers=0,
        use_cache=False,
        progress=False,
    )
    load = measured.to_dict()["model"]["load"]
    assert load["stripped"] == prefix and load["source"] == report.source
    cli_scores = inv_kernels.MeasureResult.load(tmp_path / "measure").cosine
    assert measured.cosine["h_flip"] == pytest.approx(cli_scores["h_flip"], abs=1e-4)
    transferred = inv_kernels.evaluate_transfer(
        {"m": path},
        f"generated_latents:{tiny_latents}",
        arch=arch or None,
        image_size=SIZE,
        folds=2,
        combos="none",
        progress=False,
    ).to_dict()
    assert transferred["models"]["m"]["load"]["stripped"] == prefix
    assert transferred["results"][0]["feature_dim"] == report.feature_dim


def test_report_names_what_was_stripped_and_dropped(tmp_path):
    path, _, _, _ = moco_v2(tmp_path)
    _, report = load_model(path, image_size=SIZE)
    assert report.source == "moco_v2" and report.arch == "resnet18"
    assert report.dropped_head == ["fc.0.bias", "fc.0.weight", "fc.2.bias", "fc.2.weight"]
    assert set(report.ignored) == {"module.encoder_k", "module.queue", "module.queue_ptr"}
    text = report.summary()
    assert "stripped 'module.encoder_q.'" in text and "module.encoder_k" in text and "head fc" in text


def test_partial_load_is_reported_and_too_few_keys_is_an_error(tmp_path):
    resnet = _resnet18()
    state = resnet.state_dict()
    state.pop("layer4.1.bn2.running_var")
    state["extra.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "partial.pth")
    _, report = load_model(tmp_path / "partial.pth", arch="resnet18", image_size=SIZE)
    assert report.missing == ["layer4.1.bn2.running_var"] and report.unexpected == ["extra.weight"]
    torch.save({k: v for k, v in state.items() if k.startswith("layer4")}, tmp_path / "few.pth")
    with pytest.raises(ValueError, match="weights do not fit architecture 'resnet18'.*of the model's"):
        load_model(tmp_path / "few.pth", arch="resnet18", image_size=SIZE)
    torch.save(state, tmp_path / "noarch.pth")
    with pytest.raises(ValueError, match="does not record its architecture: pass --arch"):
        load_model(tmp_path / "noarch.pth")
    torch.save({"arch": "vit_small", "state_dict": state}, tmp_path / "mocov3.pth.tar")
    with pytest.raises(ValueError, match="records architecture 'vit_small', which this project does not build"):
        load_model(tmp_path / "mocov3.pth.tar")


def test_safetensors_metadata_names_the_architecture(tmp_path):
    from safetensors.torch import save_file

    model = _resnet18()
    save_file(model.state_dict(), str(tmp_path / "r18.safetensors"), metadata={"arch": "resnet18", "cifar_stem": "no"})
    module, report = load_model(tmp_path / "r18.safetensors", image_size=SIZE)
    assert report.arch == "resnet18" and report.source == "safetensors" and not report.cifar_stem
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.allclose(module(x), _headless(model)(x), atol=1e-5)


def test_pickled_module_needs_the_trust_opt_in(tmp_path, capsys):
    model = _resnet18()
    torch.save(model, tmp_path / "full.pth")
    with pytest.raises(ValueError, match=r"a whole pickled model.*--trust-checkpoint.*state_dict\(\) instead"):
        load_model(tmp_path / "full.pth")
    module, report = load_model(tmp_path / "full.pth", trust=True, image_size=SIZE)
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.allclose(module.eval()(x), _headless(model)(x), atol=1e-5)
    assert report.source == "pickled_module" and report.feature_dim == 512
    assert measure_cli.main(_measure_args(str(tmp_path / "full.pth"), tmp_path, tmp_path / "m")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--trust-checkpoint" in err


def test_a_module_object_and_random_names(tmp_path):
    model = _resnet18().eval()
    module, report = load_model(model, image_size=SIZE)
    assert module is model and report.source == "module" and report.feature_dim == 10
    assert report.model_id.startswith("module:ResNet@")
    with pytest.raises(ValueError, match=r"expected \(B, D\) features .* got \(1, 4, 30, 30\).*pool or flatten"):
        load_model(nn.Conv2d(3, 4, 3), image_size=SIZE)
    _, vit = load_model("random:vit_b_16", image_size=SIZE)
    assert vit.arch == "vit_b_16" and vit.feature_dim == 768
    _, small = load_model("random:timm:vit_tiny_patch16_224", image_size=SIZE)
    assert small.feature_dim == 192 and small.mean == (0.5, 0.5, 0.5)


def test_vit_saved_at_another_size_has_its_position_embedding_resampled(tmp_path):
    torch.save(_vit(num_classes=0).state_dict(), tmp_path / "vit32.pth")
    _, report = load_model(tmp_path / "vit32.pth", arch="timm:vit_tiny_patch16_224", image_size=48)
    assert report.renamed == "timm checkpoint filter" and report.loaded == report.expected
    assert report.input_size == 48 and not report.missing


def test_timm_model_at_a_size_it_cannot_take_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"timm:convnext_atto does not run on 16 px images.*224"):
        load_model("random:timm:convnext_atto", image_size=16)


def test_layer_normalisation_and_precision_are_recorded_in_the_results(tiny_set, tmp_path):
    args = _measure_args("random:resnet18", tiny_set, tmp_path / "a", "--layer", "layer3", "--precision", "fp32")
    assert measure_cli.main([*args, "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25"]) == 0
    model = json.loads((tmp_path / "a" / "results.json").read_text())["model"]
    assert model["layer"] == "layer3" and model["feature_dim"] == 256
    assert model["pooling"] == "global average over H x W" and model["precision"] == "fp32"
    assert model["mean"] == [0.5, 0.5, 0.5] and model["std"] == [0.25, 0.25, 0.25]
    assert model["normalisation"] == "given" and model["model_id"].startswith("random:resnet18:seed0[layer=layer3;")


def test_layer_outputs_are_pooled_maps_or_class_tokens():
    cpu = torch.device("cpu")
    x = torch.rand(2, 3, SIZE, SIZE)
    resnet = load_extractor("random:resnet18", device=cpu, image_size=SIZE, layer="layer3")
    assert resnet.info.precision == "fp32" and resnet.info.normalisation == "ImageNet"
    model, seen = resnet.module.model, {}
    model.layer3.register_forward_hook(lambda module, inputs, output: seen.update(out=output))
    features = resnet(x)
    assert torch.allclose(features, seen["out"].mean(dim=(2, 3)), atol=1e-6)  # (2, 256, 2, 2) -> (2, 256)
    vit = load_extractor("random:timm:vit_tiny_patch16_224", device=cpu, image_size=SIZE, layer="blocks.0")
    assert vit.info.pooling == "class token" and vit.info.feature_dim == 192
    assert vit.info.mean == (0.5, 0.5, 0.5) and vit.info.normalisation == "timm pretrained config"
    vit.module.model.body.blocks[0].register_forward_hook(lambda module, inputs, output: seen.update(out=output))
    features = vit(x)
    assert torch.allclose(features, seen["out"][:, 0], atol=1e-6)  # (2, 1 + 4, 192) -> the class token
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 4))  # bf16 convolutions are slow on CPUs
    bf16 = load_extractor(linear, device=cpu, image_size=SIZE, precision="bf16")
    assert bf16.amp and bf16.info.precision == "bf16" and bf16.info.model_id.endswith("[precision=bf16]")
    assert bf16(x).dtype == torch.float32 and bf16.info.feature_dim == 4
    fp32 = load_extractor(linear, device=cpu, image_size=SIZE, precision="auto", amp=False)
    assert not fp32.amp and fp32.info.model_id == bf16.info.model_id.removesuffix("[precision=bf16]")


def test_bad_model_flags_of_measure_exit_2_before_any_output(tiny_set, tmp_path, capsys):
    for bad, expected in (
        (["--layer", "layer9"], "unknown layer 'layer9'"),
        (["--precision", "fp8"], "--precision"),
        (["--mean", "0.5,0.5"], "--mean"),
        (["--mean", "0.5,0.5,0.5"], "give both mean and std"),
        (["--arch", "resnet7"], "unknown architecture 'resnet7'"),
    ):
        out = tmp_path / "bad"
        assert _exit_code(measure_cli.main, _measure_args("random:resnet18", tiny_set, out, *bad)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err and not out.exists()


def test_export_reads_any_format_with_arch(tmp_path, capsys):
    path, arch, reference, _ = solo_learn(tmp_path)
    assert export_cli.main([str(path), str(tmp_path / "b.pth"), "--arch", arch]) == 0
    module, report = load_model(tmp_path / "b.pth", image_size=SIZE)
    assert report.source == "export" and report.arch == "resnet18"
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.allclose(module.eval()(x), reference(x), atol=1e-5)
    assert export_cli.main([str(path), str(tmp_path / "c.pth")]) == 2
    assert "pass --arch" in capsys.readouterr().err


def test_missing_timm_is_named(monkeypatch, tmp_path, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ImportError, match="pip install timm"):
        load_model("random:timm:convnext_atto", image_size=SIZE)
    assert measure_cli.main(_measure_args("random:timm:convnext_atto", tmp_path, tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install timm" in err and not (tmp_path / "out").exists()


def test_transfer_and_export_name_bad_model_flags(tmp_path, capsys):
    path, _, _, _ = lightly(tmp_path)
    out = tmp_path / "out"
    cases = (
        (transfer_cli.main, ["--models", "a=random:resnet18", "--layer", "b=layer3"], "--layer 'b=layer3'"),
        (transfer_cli.main, ["--models", "a=random:resnet18", "--layer", "layer9"], "unknown layer 'layer9'"),
        (transfer_cli.main, ["--models", "a=random:timm:not_a_model"], "unknown timm architecture 'not_a_model'"),
        (transfer_cli.main, ["--models", f"a={path}"], "does not record its architecture: pass --arch"),
        (transfer_cli.main, ["--models", f"a={path}", "--arch", "resnet50"], "weights do not fit architecture"),
        (export_cli.main, [str(path), str(out / "b.pth"), "--arch", "resnet7"], "unknown architecture 'resnet7'"),
    )
    for main, args, expected in cases:
        extra = ["--out", str(out)] if main is transfer_cli.main else []
        assert _exit_code(main, [*args, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err and not out.exists(), (args, err)
