"""Loading a checkpoint never runs code from it: a file that only full unpickling reads (a payload whose
``__reduce__`` would write a marker file, a pickled nn.Module, an older checkpoint holding NumPy arrays) is refused by
every entry point that reads checkpoints, with exit code 2 and a message naming the risk and the opt-in; with the
opt-in (``--trust-checkpoint``, ``trust=True``) a trusted pickled module is usable."""

from pathlib import Path

import numpy as np
import pytest
import torch

from inv_kernels.data import write_dataset
from inv_kernels.models.backbones import build_backbone
from inv_kernels.models.checkpoint import LAST, UntrustedCheckpointError, load_backbone, read_checkpoint
from inv_kernels.models.moco import MoCo
from pipelines import export as export_cli
from pipelines import measure as measure_cli
from pipelines import pretrain as pretrain_cli
from pipelines import transfer as transfer_cli

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
    "--knn-every",
    "-1",
    "--loader",
    "torchvision",
]
RISK = r"could run code from the file.*--trust-checkpoint|--trust-checkpoint.*could run code from the file"


class _Payload:
    """Unpickled, it opens (creates) the marker file: what a crafted checkpoint would do with any code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _write_payload(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 1, "arch": "resnet18", "state_dict": {}, "inv_kernels": {"rng": _Payload(marker)}}, path)
    return path


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return write_dataset("classification", tmp_path_factory.mktemp("data") / "scenes", size=32, count=2, progress=False)


@pytest.fixture
def payload(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "marker"
    return _write_payload(tmp_path / "crafted.pth.tar", marker), marker


def _assert_refused(code: int, err: str, marker: Path) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "could run code from the file" in err and "--trust-checkpoint" in err, err
    assert not marker.exists(), "the payload ran"


def test_the_payload_is_live_when_fully_unpickled(payload):
    path, marker = payload
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_library_refuses_the_payload_naming_the_risk_and_opt_in(payload):
    path, marker = payload
    with pytest.raises(UntrustedCheckpointError, match=RISK):
        read_checkpoint(path)
    with pytest.raises(ValueError, match=r"trust=True"):
        load_backbone(path)
    assert not marker.exists()


def test_measure_refuses_the_payload(payload, tmp_path, capsys):
    path, marker = payload
    code = measure_cli.main(["--model", str(path), "--out", str(tmp_path / "m"), "--quiet", "--no-cache"])
    _assert_refused(code, capsys.readouterr().err, marker)


def test_transfer_refuses_the_payload(payload, tiny_data, tmp_path, capsys):
    path, marker = payload
    code = transfer_cli.main(
        ["--models", f"a={path}", "--task", f"folder:{tiny_data}", "--image-size", "16", "--out", str(tmp_path / "t")]
    )
    _assert_refused(code, capsys.readouterr().err, marker)
    assert not (tmp_path / "t").exists()


def test_export_refuses_the_payload(payload, tmp_path, capsys):
    path, marker = payload
    code = export_cli.main([str(path), str(tmp_path / "backbone.pth")])
    _assert_refused(code, capsys.readouterr().err, marker)
    assert not (tmp_path / "backbone.pth").exists()


def test_pretrain_resume_path_refuses_the_payload(payload, tiny_data, tmp_path, capsys):
    path, marker = payload
    out = tmp_path / "run"
    code = pretrain_cli.main(["--data", str(tiny_data), *TINY, "--out", str(out), "--resume", str(path)])
    _assert_refused(code, capsys.readouterr().err, marker)
    assert not out.exists()  # refused before the output folder is made


def test_pretrain_resume_auto_refuses_a_payload_planted_in_the_output_folder(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    marker = tmp_path / "marker"
    _write_payload(out / LAST, marker)
    code = pretrain_cli.main(["--data", str(tiny_data), *TINY, "--out", str(out), "--resume", "auto"])
    _assert_refused(code, capsys.readouterr().err, marker)
    assert sorted(p.name for p in out.iterdir()) == [LAST]  # nothing written, nothing removed


def test_a_trusted_pickled_module_loads_with_trust(tmp_path):
    backbone = build_backbone("resnet18", cifar_stem=True).module.eval()
    torch.save(backbone, tmp_path / "module.pth")
    with pytest.raises(UntrustedCheckpointError, match=RISK):
        load_backbone(tmp_path / "module.pth", arch="resnet18")
    loaded = load_backbone(tmp_path / "module.pth", arch="resnet18", trust=True)
    x = torch.randn(2, 3, 16, 16)
    assert loaded.cifar_stem and loaded.feature_dim == 512
    assert torch.equal(loaded.module(x), backbone(x))


def test_export_and_measure_accept_a_trusted_module_with_the_flag(tiny_data, tmp_path):
    from inv_kernels.measure.driver import MeasureConfig, Measurement

    moco = MoCo("resnet18", cifar_stem=True, dim=16, queue_size=32, bn_splits=2).eval()
    torch.save(moco, tmp_path / "moco.pth")
    assert export_cli.main([str(tmp_path / "moco.pth"), str(tmp_path / "b.pth")]) == 2
    assert export_cli.main([str(tmp_path / "moco.pth"), str(tmp_path / "b.pth"), "--trust-checkpoint"]) == 0
    exported = load_backbone(tmp_path / "b.pth")  # the export is a plain state dict: no trust needed
    assert exported.arch == "resnet18"  # recorded by the pickled MoCo module
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(exported.module(x), moco.backbone().eval()(x))
    config = MeasureConfig(
        model=str(tmp_path / "moco.pth"),
        data=str(tiny_data),
        out=str(tmp_path / "m"),
        use_cache=False,
        progress=False,
        trust_checkpoint=True,
    )
    assert Measurement(config).extractor.info.arch == "resnet18"


def test_an_older_checkpoint_with_numpy_arrays_names_the_version_and_the_flag(tmp_path):
    model = MoCo("resnet18", cifar_stem=True, dim=16, queue_size=32, bn_splits=2)
    old = {
        "epoch": 1,
        "arch": "resnet18",
        "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
        "optimizer": {},
        "inv_kernels": {"rng": {"numpy": np.random.get_state()}},
    }
    torch.save(old, tmp_path / "old.pth.tar")
    with pytest.raises(UntrustedCheckpointError, match=r"written by an older version.*--trust-checkpoint"):
        load_backbone(tmp_path / "old.pth.tar")
    assert load_backbone(tmp_path / "old.pth.tar", trust=True).source == "pretraining"


def test_damaged_files_are_unreadable_not_untrusted(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read") as raised:
        read_checkpoint(tmp_path / "junk.pth")
    assert not isinstance(raised.value, UntrustedCheckpointError)
    torch.save({"a": torch.ones(3)}, tmp_path / "good.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "good.pth").read_bytes()[:200])
    with pytest.raises(ValueError, match="cannot be read"):
        read_checkpoint(tmp_path / "cut.pth")
