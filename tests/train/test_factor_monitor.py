"""The factor monitor: what a network pretrained on the built-in scenes learned, against the same network untrained;
its place at the end of pretraining (summary.json, the printed summary, the flag) and its failures."""

import json
import math

import pytest
import torch
import torch.nn as nn

from inv_kernels.data import write_dataset
from inv_kernels.data.generated import DEFAULT_COUNTS
from inv_kernels.train import PretrainConfig, Trainer
from inv_kernels.train import factor_monitor as fm
from inv_kernels.train import trainer as trainer_module
from inv_kernels.train.config import resume_differences
from pipelines import pretrain as pretrain_cli
from tests.fixtures.pretrain import tiny_pretrain_config

SMALL = dict(image_size=16, train_scenes=70, test_scenes=35, invariance_images=3, values_per_family=2)
DEFAULT_FAMILIES = [
    "resized_crop",
    "scale",
    "brightness",
    "contrast",
    "saturation",
    "hue",
    "grayscale",
    "blur",
    "h_flip",
]


class PatchColour(nn.Module):
    """Features that are known functions of the image: the mean colour of a patch (its corner is the background, its
    centre the object) and that colour squared, (B, 6)."""

    def __init__(self, where: str):
        super().__init__()
        self.where = where
        self.bias = nn.Parameter(torch.zeros(1))  # a parameter, so that moving the module has a device to report

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.shape[-1]
        patch = x[..., :3, :3] if self.where == "corner" else x[..., s // 2 - 1 : s // 2 + 1, s // 2 - 1 : s // 2 + 1]
        colour = patch.mean(dim=(2, 3))  # (B, 3)
        return torch.cat([colour, colour**2], dim=1) + self.bias  # (B, 6)


@pytest.fixture(scope="module")
def corner_vs_centre() -> dict:
    """The monitor of a "trained" network that sees the background colour against an "untrained" one that sees the
    object's colour."""
    return fm.factor_monitor(PatchColour("corner"), PatchColour("centre"), recipe="default", **SMALL)


def test_result_is_a_plain_dict_with_every_factor_and_augmentation_family(corner_vs_centre):
    result = json.loads(json.dumps(corner_vs_centre))  # JSON-ready, unchanged by a round trip
    assert result == corner_vs_centre
    assert [f["factor"] for f in result["factors"]] == [f.name for f in fm.FACTORS]
    for f in result["factors"]:
        assert f["metric"] == ("accuracy" if f["factor"] == "shape" else "r2")
        assert f["verdict"] in ("kept", "discarded", "unchanged")
        assert math.isclose(f["difference"], f["trained"] - f["untrained"])
    assert [i["family"] for i in result["invariance"]] == DEFAULT_FAMILIES
    assert all(-1 <= i[key] <= 1 for i in result["invariance"] for key in ("trained", "untrained"))
    assert result["threshold"] == fm.THRESHOLD
    assert result["settings"]["train_scenes"] == 70 and result["settings"]["test_scenes"] == 35


def test_a_network_that_sees_the_background_keeps_its_hue_and_discards_the_objects(corner_vs_centre):
    factors = {f["factor"]: f for f in corner_vs_centre["factors"]}
    assert factors["background hue"]["trained"] > 0.8
    assert factors["background hue"]["verdict"] == "kept"
    assert factors["object hue"]["verdict"] == "discarded"
    sentence = fm.factor_sentence(corner_vs_centre)
    assert sentence.startswith("this model kept ") and "background hue (R^2 " in sentence
    assert "discarded " in sentence and "object hue" in sentence


def test_the_table_lists_factors_and_families_trained_against_untrained(corner_vs_centre):
    table = fm.factor_table(corner_vs_centre)
    assert "trained" in table and "untrained" in table and f"threshold {fm.THRESHOLD:.2f}" in table
    for name in [f.name for f in fm.FACTORS] + DEFAULT_FAMILIES:
        assert name in table


def test_verdict_threshold():
    assert fm.verdict(0.9, 0.6) == "kept"
    assert fm.verdict(0.5, 0.6) == "discarded"
    assert fm.verdict(0.62, 0.6) == "unchanged"
    assert fm.verdict(0.7, 0.6, threshold=0.2) == "unchanged"


def test_circular_latents_give_the_same_targets_at_both_ends():
    latents = torch.zeros(2, 10)
    latents[:, 7] = torch.tensor([-1.0, 1.0])  # object hue
    targets = fm.factor_targets(latents, fm.FACTORS[1])  # (2, 2): cos and sin
    assert targets.shape == (2, 2)
    torch.testing.assert_close(targets[0], targets[1])
    position = fm.factor_targets(latents, fm.FACTORS[3])
    assert position.shape == (2, 3)


def test_recipe_families_follow_the_recipes_ops():
    assert [f for _, f in fm.recipe_families("default")] == DEFAULT_FAMILIES
    assert fm.recipe_families("spatial") == [
        ("random_resized_crop", "resized_crop"),
        ("random_resized_crop", "scale"),
        ("horizontal_flip", "h_flip"),
    ]
    custom = "color_jitter:brightness=0.4:contrast=0:saturation=0:hue=0,grayscale:p=0"
    assert fm.recipe_families(custom) == [("color_jitter", "brightness")]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(train_scenes=20), "train_scenes must be >= 21"),
        (dict(invariance_images=36), "invariance_images must be <= test_scenes"),
        (dict(threshold=-0.1), "threshold must be a finite number >= 0"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fm.factor_monitor(PatchColour("corner"), PatchColour("centre"), recipe="default", **{**SMALL, **kwargs})


# ----------------------------------------------------------------------------------------------------- in the trainer
@pytest.fixture
def builtin_scenes(tmp_path, monkeypatch):
    """The built-in data at its smallest (2 scenes per shape), rendered into this test's own cache."""
    monkeypatch.setenv("INV_KERNELS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(DEFAULT_COUNTS, "classification", 2)


def _builtin_config(out, **overrides) -> PretrainConfig:
    settings = dict(epochs=1, max_steps=1, knn_every=-1, loader="torchvision")
    return tiny_pretrain_config(None, out, **{**settings, **overrides})


def _spy(calls: list, result: dict | None = None, error: Exception | None = None):
    def monitor(trained, untrained, **kwargs):
        calls.append(kwargs)
        if error is not None:
            raise error
        return result

    return monitor


def test_the_run_starts_from_the_untrained_backbone_the_monitor_rebuilds(tmp_path):
    data = write_dataset("classification", tmp_path / "scenes", size=16, count=2, progress=False)
    trainer = Trainer(_builtin_config(tmp_path / "out", data=str(data)), progress=False)
    started = trainer.model.backbone().state_dict()
    rebuilt = fm.untrained_backbone("resnet18", cifar_stem=trainer.cifar_stem, seed=0).state_dict()
    assert set(rebuilt) <= set(started)
    for name, value in rebuilt.items():
        torch.testing.assert_close(started[name], value, rtol=0, atol=0, msg=name)


def test_the_summary_holds_the_monitors_result_on_the_builtin_data(builtin_scenes, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(trainer_module, "factor_monitor", _spy(calls, {"factors": []}))
    trainer = Trainer(_builtin_config(tmp_path / "out"), progress=False)
    summary = trainer.run()
    assert calls == [dict(recipe="default", image_size=16, device=torch.device("cpu"), amp=trainer.amp)]
    assert summary["factor_monitor"] == {"factors": []} and summary["factor_monitor_error"] is None
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["factor_monitor"] == {"factors": []}


def test_a_failing_monitor_is_recorded_and_the_run_kept(builtin_scenes, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "factor_monitor", _spy([], error=RuntimeError("no memory left")))
    with pytest.warns(RuntimeWarning, match="factor monitor failed: RuntimeError: no memory left"):
        summary = Trainer(_builtin_config(tmp_path / "out"), progress=False).run()
    assert summary["factor_monitor"] is None
    assert summary["factor_monitor_error"] == "RuntimeError: no memory left"
    assert (tmp_path / "out" / "checkpoint_last.pth.tar").is_file()
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["factor_monitor_error"] == "RuntimeError: no memory left"
    events = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "factor_monitor_failed" for e in events)


def test_the_flag_turns_the_monitor_off(builtin_scenes, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(trainer_module, "factor_monitor", _spy(calls, {"factors": []}))
    args = pretrain_cli.build_parser().parse_args(["--no-factor-monitor", "--out", str(tmp_path / "out")])
    assert pretrain_cli.config_from_args(args).factor_monitor is False
    summary = Trainer(_builtin_config(tmp_path / "out", factor_monitor=False), progress=False).run()
    assert calls == []
    assert summary["factor_monitor"] is None and summary["factor_monitor_error"] is None


def test_checkpoints_without_the_monitors_setting_resume(tmp_path):
    config = PretrainConfig(out=str(tmp_path), factor_monitor=False)
    older = {k: v for k, v in PretrainConfig(out=str(tmp_path)).to_dict().items() if k != "factor_monitor"}
    assert resume_differences(older, config) == []
    assert resume_differences({**older, "factor_monitor": True}, config) == []  # a report, not the training


def test_the_monitor_on_a_data_folder_is_bad_input(tmp_path, capsys):
    data = write_dataset("classification", tmp_path / "scenes", size=16, count=1, progress=False)
    code = pretrain_cli.main(["--data", str(data), "--factor-monitor", "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "factor_monitor needs the built-in scenes" in err
    assert not (tmp_path / "out").exists()


def _summary(**extra) -> dict:
    return {
        "epochs_done": 3,
        "steps": 99,
        "images_per_s": 50.0,
        "time_s": {"total": 120.0, "data_wait": 10.0, "train_step": 100.0},
        "final_knn_top1": 0.18,
        "knn_monitor_error": None,
        "loader": "torchvision",
        "skipped_images": 0,
        "checkpoint": "runs/pretrain/checkpoint_last.pth.tar",
        "history": [],
        **extra,
    }


def test_the_printed_summary_shows_what_the_model_learned(corner_vs_centre, capsys):
    result = dict(corner_vs_centre)
    result["factors"] = [
        dict(f, trained=0.91, untrained=0.62, difference=0.29, verdict="kept") if f["factor"] == "background hue" else f
        for f in corner_vs_centre["factors"]
    ]
    pretrain_cli.print_summary(_summary(factor_monitor=result, factor_monitor_error=None))
    out = capsys.readouterr().out
    assert "what the network learned, against the untrained network (35 held-out scenes)" in out
    assert fm.factor_table(result) in out
    assert "this model kept background hue (R^2 0.91 vs 0.62 untrained)" in out


def test_the_printed_summary_names_a_failed_monitor(capsys):
    pretrain_cli.print_summary(_summary(factor_monitor=None, factor_monitor_error="RuntimeError: no memory left"))
    assert "factor monitor failed: RuntimeError: no memory left" in capsys.readouterr().out
