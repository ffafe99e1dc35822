"""pipelines.compare: three models' results side by side (heat map, curves, group bars, JSON, CSV), and bad input."""

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import yaml
from PIL import Image

import inv_kernels
from pipelines import compare


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2)

    def forward(self, x):
        return self.conv(x).relu().mean(dim=(2, 3))


@pytest.fixture(scope="module")
def three_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)) for _ in range(12)]
    paths = []
    for seed in range(3):
        torch.manual_seed(seed)
        result = inv_kernels.measure_invariance(
            Tiny(), images[:3], "h_flip,posterize", stats=images, out_size=32, progress=False
        ).to_dict()
        groups = [{"cosine_with_diagonal": 0.5 + 0.1 * seed + 0.05 * g} for g in range(3)]
        result["realworld"] = [
            {"name": "turntable:coil", "cosine_with_diagonal": 0.6, "distance": 1.0, "groups": groups}
        ]
        path = root / f"m{seed}.json"
        path.write_text(json.dumps(result))
        paths.append(str(path))
    return paths


def test_compare_writes_every_figure_and_table(three_results, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert compare.main([f"first={three_results[0]}", *three_results[1:], "--out", str(out)]) == 0
    for name in ("compare_heatmap.png", "compare_curves.png", "compare_groups.png", "compare.csv", "config.yaml"):
        assert (out / name).stat().st_size > 0, name
    table = json.loads((out / "compare.json").read_text())
    assert table["models"][0] == "first" and table["families"] == ["h_flip", "posterize"]
    assert len(table["cosine"]) == 3 and all(len(row) == 2 for row in table["cosine"])
    assert table["group_sets"] == ["turntable:coil"]
    coil = [r for r in table["rows"] if r["measure"] == "turntable:coil"]
    assert coil[0]["spread"] == pytest.approx(np.std([0.5, 0.55, 0.6]))
    assert set(table["provenance"]["first"]) >= {"version", "command", "model_hash"}
    assert "| first | h_flip | appearance |" in capsys.readouterr().out.replace("spatial", "appearance")


def test_compare_replays_its_settings(three_results, tmp_path):
    assert compare.main([*three_results, "--names", "a,b,c", "--out", str(tmp_path / "one")]) == 0
    settings = yaml.safe_load((tmp_path / "one" / "config.yaml").read_text())
    assert settings["names"] == "a,b,c" and settings["results"] == three_results
    settings["out"] = str(tmp_path / "two")
    (tmp_path / "again.yaml").write_text(yaml.safe_dump(settings))
    assert compare.main(["--config", str(tmp_path / "again.yaml")]) == 0
    first, second = (json.loads((tmp_path / d / "compare.json").read_text()) for d in ("one", "two"))
    assert first["rows"] == second["rows"] and second["models"] == ["a", "b", "c"]


def test_bad_input_exits_2_and_makes_no_folder(three_results, tmp_path, capsys):
    out = tmp_path / "never"
    assert compare.main([three_results[0], str(tmp_path / "missing.json"), "--out", str(out)]) == 2
    assert "missing.json does not exist" in capsys.readouterr().err and not out.exists()
    (tmp_path / "bad.json").write_text("{not json")
    assert compare.main([str(tmp_path / "bad.json"), "--out", str(out)]) == 2
    assert "not a JSON file" in capsys.readouterr().err and not out.exists()
    assert compare.main([three_results[0], "--names", "a,b", "--out", str(out)]) == 2
    assert "one name per result" in capsys.readouterr().err and not out.exists()
