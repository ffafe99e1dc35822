"""--config FILE.yaml on the entry points, and the settings each run writes (<out>/config.yaml) replaying it."""

import json

import pytest
import yaml

from pipelines import correlate, generate


def test_generate_takes_comma_lists_and_replays_its_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("INV_KERNELS_CACHE", str(tmp_path / "cache"))
    first = generate.main(["--kinds", "coil,coil", "--count", "1", "--size", "16", "--no-progress", "--out",
                           str(tmp_path / "a")])  # fmt: skip
    assert list(first["sets"]) == ["coil"]
    settings = yaml.safe_load((tmp_path / "a" / "generate_config.yaml").read_text())
    assert settings["kinds"] == ["coil"] and settings["size"] == 16 and settings["no-progress"] is True
    assert first["settings"] == settings
    settings["out"] = str(tmp_path / "b")
    (tmp_path / "again.yaml").write_text(yaml.safe_dump(settings))
    second = generate.main(["--config", str(tmp_path / "again.yaml")])
    assert second["sets"]["coil"]["counts"] == first["sets"]["coil"]["counts"]
    assert yaml.safe_load((tmp_path / "b" / "generate_config.yaml").read_text()) == settings


def test_generate_names_an_unknown_kind_in_a_comma_list(capsys):
    with pytest.raises(SystemExit) as stop:
        generate.main(["--kinds", "coil,nosuch"])
    assert stop.value.code == 2 and "nosuch" in capsys.readouterr().err


def _measure_results(path, rotation):
    path.write_text(json.dumps({"synthetic": [{"family": "rotation", "cosine_mean": rotation}], "realworld": []}))
    return str(path)


def test_correlate_replays_its_settings(tmp_path):
    pairs = [f"m{i}={_measure_results(tmp_path / f'm{i}.json', r)}" for i, r in enumerate((0.1, 0.5, 0.9))]
    transfer = tmp_path / "transfer.json"
    transfer.write_text(json.dumps({"results": [{"model": f"m{i}", "task": "t", "test_score": s}
                                                for i, s in enumerate((0.3, 0.2, 0.1))]}))  # fmt: skip
    argv = [a for p in pairs for a in ("--invariance", p)] + ["--transfer", str(transfer), "--out", str(tmp_path / "a")]
    assert correlate.main(argv) == 0
    settings = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert settings == {"invariance": pairs, "transfer": str(transfer), "out": str(tmp_path / "a")}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(settings))
    assert correlate.main(["--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "b")]) == 0
    rows = [json.loads((tmp_path / d / "correlation.json").read_text()) for d in ("a", "b")]
    assert rows[0] == rows[1]


def test_unknown_keys_are_refused_before_any_output(tmp_path, capsys):
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"transfer": "t.json", "invariance": ["a=b"], "colour": 1}))
    with pytest.raises(SystemExit) as stop:
        correlate.main(["--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "o")])
    assert stop.value.code == 2 and "unknown key(s) colour" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_measure_replays_its_settings(tmp_path):
    from pipelines import measure
    from tests.fixtures.image_folders import class_folder

    (tmp_path / "data").mkdir()
    data = class_folder(tmp_path / "data")
    argv = ["--model", "random:resnet18", "--data", str(data), "--transforms", "h_flip", "--num-images", "2",
            "--crop-size", "16", "--shrinkage", "ledoit_wolf", "--no-cache", "--quiet", "--out", str(tmp_path / "a")]  # fmt: skip
    assert measure.main(argv) == 0
    settings = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert settings["transforms"] == "h_flip" and settings["crop-size"] == 16 and settings["no-cache"] is True
    assert measure.main(["--config", str(tmp_path / "a" / "config.yaml"), "--out", str(tmp_path / "b")]) == 0
    first, second = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("a", "b"))
    assert first["synthetic"] == second["synthetic"] and first["settings"] == second["settings"]
    assert first["provenance"]["command"].startswith("python -m pipelines.measure --model random:resnet18")
