"""Every results file records where it came from (inv_kernels.provenance): version, commit, versions, device, the
command, the model's hash and the statistics' condition number; git's absence is no error."""

import json
import sys

import yaml

from inv_kernels.data import write_dataset
from inv_kernels.provenance import git_commit, provenance

KEYS = {"package", "version", "git_commit", "python", "torch", "timm", "platform", "device", "command", "created",
        "model_hash", "condition_number"}  # fmt: skip


def test_record_has_every_key_and_the_command_line(monkeypatch):
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "pipelines.measure", "--model", "a b.pt"])
    record = provenance(device="cpu", model_hash="a.pt@0123", condition_number=12)
    assert set(record) == KEYS
    assert record["command"] == "python -m pipelines.measure --model 'a b.pt'"
    assert record["device"] == "cpu" and record["condition_number"] == 12.0 and record["model_hash"] == "a.pt@0123"
    assert provenance(call="inv_kernels.measure_invariance(model=Tiny)")["command"].startswith("inv_kernels.")
    json.dumps(record)


def test_git_absent_or_no_checkout_gives_none(monkeypatch, tmp_path):
    assert git_commit(tmp_path) is None  # not a checkout
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on the PATH
    assert git_commit() is None and provenance()["git_commit"] is None


def test_pretraining_summary_records_provenance_and_settings(tmp_path):
    from pipelines import pretrain

    data = write_dataset("classification", tmp_path / "scenes", size=32, count=2, progress=False)
    out = tmp_path / "run"
    argv = ["--data", str(data), "--image-size", "16", "-b", "8", "--bn-splits", "2", "--moco-k", "16",
            "--moco-dim", "8", "-j", "0", "--epochs", "1", "--max-steps", "1", "--knn-every", "-1",
            "--no-factor-monitor", "--out", str(out)]  # fmt: skip
    assert pretrain.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["provenance"]) == KEYS and summary["provenance"]["model_hash"].startswith("checkpoint_last")
    settings = yaml.safe_load((out / "config.yaml").read_text())
    assert settings["queue-size"] == 16 and settings["batch-size"] == 8 and settings["max-steps"] == 1
