"""Resume is strict and exact, and nothing a run produced is lost: checkpoints load with weights_only and resume
bitwise exactly; the whole saved configuration is compared (only run-time settings may change); log.jsonl holds each
step once after an interruption; a kNN monitor failure loses no checkpoint and is recorded; stale temporaries of
interrupted writes are removed at start."""

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from inv_kernels.models.checkpoint import LAST, read_checkpoint, restore_rng_state, rng_state
from inv_kernels.train import PretrainConfig, Trainer
from pipelines import pretrain as pretrain_cli
from tests.fixtures.pretrain import tiny_pretrain_config


def _config(data: Path, out: Path, **overrides) -> PretrainConfig:
    settings = dict(
        knn_max_images=40, epochs=1, log_every_steps=1, knn_every=-1, loader="torchvision", save_every_steps=2
    )
    return tiny_pretrain_config(data, out, **{**settings, **overrides})


class _Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def runs(tiny_data, module_tmp_path) -> dict:
    """An uninterrupted one-epoch run (5 steps), and the same run checkpointing every 2 steps interrupted during step 4
    (last checkpoint at step 2, step 3 logged) then resumed with resume="auto" (checkpointing at the end only)."""
    straight = Trainer(_config(tiny_data, module_tmp_path / "straight", save_every_steps=0), progress=False).run()
    interrupted = Trainer(_config(tiny_data, module_tmp_path / "resumed"), progress=False)
    real_step = interrupted._train_step

    def step(views):
        if interrupted.global_step == 3:
            raise _Interrupted
        return real_step(views)

    interrupted._train_step = step
    with pytest.raises(_Interrupted):
        interrupted.run()
    mid = torch.load(module_tmp_path / "resumed" / LAST, weights_only=True)
    log_before = (module_tmp_path / "resumed" / "log.jsonl").read_text()
    resumed = Trainer(
        _config(tiny_data, module_tmp_path / "resumed", resume="auto", save_every_steps=0), progress=False
    ).run()
    return {"straight": straight, "resumed": resumed, "mid": mid, "log_before": log_before, "dir": module_tmp_path}


def _steps(log: str) -> list[int]:
    return [json.loads(line)["step"] for line in log.splitlines() if json.loads(line)["event"] == "step"]


def test_own_checkpoint_loads_weights_only_and_resumes_exactly(runs):
    mid = runs["mid"]  # loaded with torch.load(weights_only=True)
    assert mid["inv_kernels"]["global_step"] == 2 and mid["epoch"] == 0
    assert {"module.encoder_q.conv1.weight", "module.queue", "module.queue_ptr"} <= set(mid["state_dict"])
    a = torch.load(runs["dir"] / "straight" / LAST, weights_only=True)
    b = torch.load(runs["dir"] / "resumed" / LAST, weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), f"{key} differs after resume"
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert runs["straight"]["steps"] == runs["resumed"]["steps"] == 5


def test_a_resumed_runs_time_includes_the_time_before_its_checkpoint(runs):
    before = runs["mid"]["inv_kernels"]["time_s"]
    time_s = runs["resumed"]["time_s"]
    assert before["total"] > 0 and before["train_step"] > 0
    assert 0 <= time_s["total"] - (before["total"] + time_s["this_run"]) < 0.5
    assert time_s["train_step"] > before["train_step"]
    assert runs["straight"]["time_s"]["total"] == pytest.approx(runs["straight"]["time_s"]["this_run"], abs=0.5)


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    torch.manual_seed(3), random.seed(4), np.random.seed(5)
    np.random.standard_normal()  # leaves a cached Gaussian in NumPy's state
    random.gauss(0, 1)
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = (torch.rand(4), random.random(), random.gauss(0, 1), np.random.standard_normal(3))
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (torch.rand(4), random.random(), random.gauss(0, 1), np.random.standard_normal(3))
    assert torch.equal(got[0], expected[0]) and got[1:3] == expected[1:3] and np.array_equal(got[3], expected[3])


def test_log_holds_each_step_once_after_interruption_and_resume(runs):
    assert _steps(runs["log_before"]) == [1, 2, 3]  # step 3 was logged after the step-2 checkpoint
    log = (runs["dir"] / "resumed" / "log.jsonl").read_text()
    assert _steps(log) == [1, 2, 3, 4, 5]
    assert _steps((runs["dir"] / "straight" / "log.jsonl").read_text()) == [1, 2, 3, 4, 5]
    assert not [p for p in (runs["dir"] / "resumed").iterdir() if p.name.endswith(".tmp")]


def test_log_trim_keeps_a_partly_written_last_line_out(tiny_data, runs, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(runs["dir"] / "resumed", out)
    ckpt = torch.load(out / LAST, weights_only=True)
    ckpt["inv_kernels"]["global_step"] = 4  # pretend the last checkpoint was at step 4
    torch.save(ckpt, out / LAST)
    with open(out / "log.jsonl", "a") as handle:
        handle.write('{"time": 1, "event": "step", "st')  # a write cut short by a kill
    Trainer(_config(tiny_data, out, resume="auto"), progress=False)
    lines = (out / "log.jsonl").read_text().splitlines()
    assert _steps("\n".join(lines[:-1])) == [1, 2, 3, 4] and json.loads(lines[-1])["event"] == "resumed"


def test_resume_refuses_changed_settings_naming_each(tiny_data, runs, tmp_path, capsys):
    other_data = tmp_path / "other"
    shutil.copytree(tiny_data, other_data)
    out = runs["dir"] / "straight"
    changed = dict(base_lr=0.06, temperature=0.5, loader="dali")
    with pytest.raises(ValueError) as raised:
        Trainer(_config(other_data, out, resume="auto", **changed), progress=False)
    changed["data"] = str(other_data)
    message = str(raised.value)
    for name, value in changed.items():
        assert f"{name}: saved" in message and repr(value) in message, message
    assert "0.03" in message and "0.2" in message and "'torchvision'" in message and str(tiny_data) in message
    args = [
        "--data",
        str(tiny_data),
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
        "--knn-max-images",
        "40",
        "--epochs",
        "1",
        "--log-every-steps",
        "1",
        "--knn-every",
        "-1",
        "--loader",
        "torchvision",
        "--save-every-steps",
        "2",
        "--out",
        str(out),
        "--resume",
        "auto",
    ]
    for flag, value, name in [
        ("--lr", "0.06", "base_lr"),
        ("--temperature", "0.5", "temperature"),
        ("--loader", "dali", "loader"),
        ("--data", str(other_data), "data"),
    ]:
        code = pretrain_cli.main([*args, flag, value])
        err = capsys.readouterr().err
        assert code == 2 and f"{name}: saved" in err and len(err.strip().splitlines()) == 1, err


def test_resume_accepts_changed_run_settings(tiny_data, runs, tmp_path):
    source = runs["dir"] / "straight" / LAST
    shutil.copy(source, tmp_path / "mid.pth.tar")
    config = _config(
        tiny_data,
        tmp_path / "elsewhere",
        resume=str(tmp_path / "mid.pth.tar"),
        workers=1,
        device="cpu",
        max_steps=5,
        log_every_steps=3,
        save_every_steps=0,
    )
    trainer = Trainer(config, progress=False)
    assert trainer.global_step == 5 and trainer.epoch == 1


def test_knn_monitor_failure_keeps_the_checkpoint_and_is_recorded(tiny_data, tmp_path):
    out = tmp_path / "run"
    trainer = Trainer(_config(tiny_data, out, epochs=2, batch_size=16, knn_every=1, save_every_steps=0), progress=False)
    calls = []

    def monitor():
        calls.append(read_checkpoint(out / LAST)["epoch"] if (out / LAST).exists() else None)
        if len(calls) == 2:  # after epoch 1 (the first call scores the untrained network)
            raise RuntimeError("boom")
        return 0.25

    trainer._monitor = monitor
    with pytest.warns(RuntimeWarning, match=r"kNN monitor failed at epoch 1 .*RuntimeError: boom"):
        summary = trainer.run()
    assert calls == [None, 1, 2]  # each epoch's checkpoint was written before its monitor ran
    assert summary["epochs_done"] == 2 and summary["steps"] == 4  # training went on
    assert summary["final_knn_top1"] == 0.25 and "RuntimeError: boom" in summary["knn_monitor_error"]
    assert json.loads((out / "summary.json").read_text())["knn_monitor_error"] == summary["knn_monitor_error"]
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    failed = [e for e in events if e["event"] == "knn_monitor_failed"]
    assert len(failed) == 1 and failed[0]["epoch"] == 1 and "boom" in failed[0]["error"]
    history = read_checkpoint(out / LAST)["inv_kernels"]["history"]
    assert [h["knn_top1"] for h in history] == [0.25, None, 0.25] and "boom" in history[1]["knn_monitor_error"]


def test_stale_temporaries_are_removed_at_start_but_fresh_ones_kept(tiny_data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stale = out / f".{LAST}.k3x9_q2a.tmp"
    fresh = out / f".{LAST}.p0z8m4b1.tmp"
    mine = out / "notes.k3x9_q2a.tmp"  # not the project's temporary-name pattern
    for path in (stale, fresh, mine):
        path.write_bytes(b"x" * 10)
    hour_ago = os.path.getmtime(fresh) - 3600
    for path in (stale, mine):
        os.utime(path, (hour_ago, hour_ago))
    Trainer(_config(tiny_data, out), progress=False)
    assert not stale.exists() and fresh.exists() and mine.exists()


def test_an_older_checkpoint_is_refused_then_resumed_with_trust(tiny_data, runs, tmp_path):
    """Checkpoints of the previous version stored NumPy's and Python's RNG states as an array and tuples."""
    out = tmp_path / "run"
    out.mkdir()
    state = torch.load(runs["dir"] / "straight" / LAST, weights_only=True)
    state["inv_kernels"]["rng"] = {
        "torch": torch.get_rng_state(),
        "cuda": None,
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    torch.save(state, out / LAST)
    with pytest.raises(ValueError, match=r"written by an older version.*--trust-checkpoint"):
        Trainer(_config(tiny_data, out, resume="auto"), progress=False)
    trainer = Trainer(_config(tiny_data, out, resume="auto", trust_checkpoint=True), progress=False)
    assert trainer.global_step == 5
    assert np.random.get_state()[1].tolist() == state["inv_kernels"]["rng"]["numpy"][1].tolist()
