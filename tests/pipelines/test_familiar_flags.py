"""Familiar flags: the official MoCo names on pipelines.pretrain, boolean flags bare or with a value, and
--config FILE.yaml with the settings a run writes."""

import pytest
import yaml

from pipelines import pretrain

OFFICIAL = ["-a", "resnet34", "-b", "64", "-j", "3", "--wd", "0.001", "--moco-k", "512", "--moco-m", "0.99",
            "--moco-t", "0.1", "--cos", "--lr", "0.06"]  # fmt: skip
OURS = ["--arch", "resnet34", "--batch-size", "64", "--workers", "3", "--weight-decay", "0.001", "--queue-size",
        "512", "--moco-momentum", "0.99", "--temperature", "0.1", "--cosine", "true", "--lr", "0.06"]  # fmt: skip


def _config(argv):
    return pretrain.config_from_args(pretrain.build_parser().parse_args(argv))


def test_official_moco_names_parse_to_the_same_config():
    assert _config(OFFICIAL) == _config(OURS)
    config = _config(OFFICIAL)
    assert (config.arch, config.batch_size, config.queue_size, config.cosine) == ("resnet34", 64, 512, True)


@pytest.mark.parametrize(
    "argv, expected",
    [(["--amp"], True), (["--no-amp"], False), (["--amp", "false"], False), (["--amp=yes"], True), ([], None)],
)
def test_boolean_flags_work_bare_negated_or_with_a_value(argv, expected):
    args = pretrain.build_parser().parse_args(argv)
    assert args.amp == (pretrain.DEFAULTS.amp if expected is None else expected)


def test_a_bad_boolean_is_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        pretrain.build_parser().parse_args(["--mlp", "maybe"])
    assert (
        stop.value.code == 2
        and "argument --mlp/--no-mlp: expected true or false, got 'maybe'" in capsys.readouterr().err
    )


def test_config_file_sets_flags_that_the_command_line_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"moco-k": 256, "batch_size": 32, "cos": False, "arch": "resnet18"}))
    parser = pretrain.build_parser()
    args = pretrain.parse_args(parser, ["--config", str(path), "-a", "resnet34"])
    config = pretrain.config_from_args(args)
    assert (config.queue_size, config.batch_size, config.cosine, config.arch) == (256, 32, False, "resnet34")


def test_config_file_errors_name_the_key(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"batch-size": 32, "colour": "red", "speed": 3}))
    with pytest.raises(SystemExit) as stop:
        pretrain.parse_args(pretrain.build_parser(), ["--config", str(path)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "unknown key(s) colour, speed; expected some of" in err
    path.write_text(yaml.safe_dump({"batch-size": "many"}))
    with pytest.raises(SystemExit):
        pretrain.parse_args(pretrain.build_parser(), ["--config", str(path)])
    assert "run.yaml: batch-size: invalid literal for int()" in capsys.readouterr().err
    path.write_text("!!python/object/apply:os.system ['echo hi']")
    with pytest.raises(SystemExit):
        pretrain.parse_args(pretrain.build_parser(), ["--config", str(path)])
    assert "not a YAML file" in capsys.readouterr().err


def test_resolved_settings_replay_the_same_config(tmp_path):
    parser = pretrain.build_parser()
    args = parser.parse_args(OFFICIAL + ["--no-amp", "--out", str(tmp_path / "run")])
    written = pretrain.write_settings(parser, args, tmp_path / "config.yaml")
    replayed = pretrain.parse_args(pretrain.build_parser(), ["--config", str(written)])
    assert pretrain.config_from_args(replayed) == pretrain.config_from_args(args)


@pytest.mark.parametrize("name", ["pretrain", "measure", "transfer", "study"])
def test_help_states_each_default_once(name):
    import importlib
    import re

    text = " ".join(importlib.import_module(f"pipelines.{name}").build_parser().format_help().split())
    assert "(default: None)" not in text
    assert not re.search(r"default: [^()]*\) \(default:", text), text
