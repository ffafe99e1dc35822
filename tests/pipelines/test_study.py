"""pipelines.study end to end on a tiny generated study (16 px, a handful of images, one epoch, two seeds): every
report section, finite JSON numbers, figures; stage caching and resume; bad input rejected before any work."""

import json
import math
import shutil

import pytest

from inv_kernels.study import parallel
from inv_kernels.study.config import StudyConfig, parse_seeds
from inv_kernels.study.parallel import resolve_jobs
from inv_kernels.study.stagecache import RESULT, StageCache, read_records
from inv_kernels.transforms import FAMILIES
from pipelines import study

TINY = [
    "--image-size",
    "16",
    "--train-count",
    "5",
    "--transfer-count",
    "8",
    "--group-objects",
    "2",
    "--num-images",
    "1",
    "--epochs",
    "1",
    "--batch-size",
    "32",
    "--bn-splits",
    "2",
    "--queue-size",
    "64",
    "--folds",
    "3",
    "--wide",
    "--wide-arch",
    "resnet18",
    "--workers",
    "0",
    "--quiet",
    "--seeds",
    "0,1",
]
SECTIONS = (
    "## Training health",
    "## Verdicts on the paper's claims",
    "## Synthetic invariance",
    "## Spatial vs appearance invariance",
    "## Real-world group invariance",
    "## Latent-factor regression",
    "## Transfer",
    "## Invariance vs transfer",
    "## Pretraining",
    "## Stages of this run",
)
FIGURES = ("invariance_heatmap.png", "kind_scatter.png", "transfer_bars.png", "correlation_spearman.png")
MODELS = ["default", "spatial", "appearance", "wide", "random"]
FUSIONS = ["default+spatial", "default+appearance", "spatial+appearance", "default+spatial+appearance"]


@pytest.fixture(scope="module")
def tiny_study(module_tmp_path):
    """The tiny study, run once through the CLI into a fresh output folder and cache. Yields (out, first): the study
    folder (later tests rerun it) and a copy of the first run's report, records and figures."""
    root = module_tmp_path
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INV_KERNELS_CACHE", str(root / "cache"))
        out, first = root / "out", root / "first"
        assert study.main([*TINY, "--jobs", "2", "--out", str(out)]) == 0  # pretrainings two at a time
        first.mkdir()
        for name in ("report.md", "report.json", "stages.jsonl"):
            shutil.copy(out / name, first / name)
        shutil.copytree(out / "figures", first / "figures")
        yield out, first


def _run(out, *extra):
    """Reruns the tiny study into ``out``; returns this run's stage records."""
    before = {r["run_id"] for r in read_records(out)}
    assert study.main([*TINY, *extra, "--out", str(out)]) == 0
    runs = {r["run_id"] for r in read_records(out)} - before
    assert len(runs) == 1
    return read_records(out, runs.pop())


def _numbers(value, path="report"):
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, (int, float)):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{path}[{i}]")


@pytest.mark.slow
def test_report_has_every_section_number_and_figure(tiny_study):
    _, tiny_study = tiny_study
    page = (tiny_study / "report.md").read_text()
    for section in SECTIONS:
        assert section in page, section
    for name in FIGURES:
        data = (tiny_study / "figures" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, name
        assert f"figures/{name}" in page
    report = json.loads((tiny_study / "report.json").read_text())
    assert {"version", "git_commit", "command", "model_hash", "condition_number"} <= set(report["provenance"])
    numbers = list(_numbers(report))
    assert len(numbers) > 500
    bad = [(p, v) for p, v in numbers if not math.isfinite(v)]
    assert not bad, bad[:5]
    assert report["models"] == MODELS and report["seeds"] == [0, 1]
    for model in MODELS:
        assert list(report["synthetic"][model]) == list(FAMILIES)  # all 18 families, every model
        for family, row in report["synthetic"][model].items():
            if family == "blur":  # paper mode's 1 + 16 // 20 * 2 = 1 px kernel: no blur at 16 px
                assert "1 px" in row["degenerate"] and row["cosine"]["mean"] is None
                assert "degenerate" in page
                continue
            assert row["cosine"]["n"] == 2 and row["cosine"]["std"] is not None, (model, family)
            assert -1.0 <= row["cosine"]["mean"] <= 1.0 and row["distance"]["mean"] >= 0
        assert len(report["realworld"][model]) == 4
        assert {"pos_x", "object_hue", "background_hue", "mean"} <= set(report["latents"][model])
    assert list(report["transfer"]) == ["shape", "position", "rotation", "hue"]
    for task, table in report["transfer"].items():
        assert list(table["entries"]) == MODELS + FUSIONS, task
        for name, entry in table["entries"].items():
            assert entry["n"] == 2 and entry["std"] is not None, (task, name)
    assert table["entries"]["default+spatial+appearance"]["feature_dim"] == 3 * 512
    assert {c["id"] for c in report["claims"]} == {"1a", "1b", "1c", "2", "4", "5", "6", "7", "7b"}
    for model in ("default", "spatial", "appearance", "wide"):  # every trained model and seed has a health row
        assert set(report["health"]["models"][model]["seeds"]) == {"0", "1"}
        assert report["health"]["models"][model]["seeds"]["0"]["steps"] >= 1
    assert {c["id"] for c in report["claims"] if c["verdict_distance"] in ("agrees", "disagrees")} == {
        "1a",
        "1b",
        "1c",
        "2",
    }
    for claim in report["claims"]:
        assert claim["verdict"] in ("agrees", "disagrees"), claim  # two seeds: every claim is assessable
        verdict = "**DISAGREES with the paper**" if claim["verdict"] == "disagrees" else "agrees with the paper"
        assert f"| {claim['summary']} | {verdict} |" in page
    assert all(r["models"] == 10 for r in report["correlation"])  # 5 models x 2 seeds
    assert {r["status"] for r in report["stages"]} == {"ran"}
    assert len(report["stages"]) == 2 * (4 + 2 * 5 + 4)  # per seed: 4 pretrainings, 5 x (measure, latents), 4 tasks


@pytest.mark.slow
def test_rerun_uses_the_cache_and_recomputes_only_what_is_missing_or_stale(tiny_study, monkeypatch):
    out, _ = tiny_study
    monkeypatch.setenv("INV_KERNELS_CACHE", str(out.parent / "cache"))
    stages = {r["stage"] for r in read_records(out)}
    records = _run(out)
    assert {r["stage"] for r in records} == stages and {r["status"] for r in records} == {"cached"}

    # A deleted stage output: only that stage runs again.
    shutil.rmtree(out / "measure" / "spatial" / "seed1")
    records = _run(out)
    assert [r["stage"] for r in records if r["status"] != "cached"] == ["measure/spatial/seed1"]
    assert next(r for r in records if r["stage"] == "measure/spatial/seed1")["status"] == "ran"

    # Pretraining killed after its last checkpoint, before it was marked done: it resumes from the checkpoint (no
    # step left to take), exports the same weights, so nothing downstream is recomputed.
    stage = out / "pretrain" / "appearance" / "seed0"
    manifest = json.loads((stage / "stage.json").read_text())
    (stage / "stage.json").write_text(json.dumps({**manifest, "status": "running"}))
    (stage / RESULT).unlink()
    records = _run(out)
    assert [(r["stage"], r["status"]) for r in records if r["status"] != "cached"] == [
        ("pretrain/appearance/seed0", "resumed")
    ]

    # Two of them killed so: both resume, side by side in worker processes, with the same outcome.
    for stage in (out / "pretrain" / "spatial" / "seed0", out / "pretrain" / "default" / "seed1"):
        manifest = json.loads((stage / "stage.json").read_text())
        (stage / "stage.json").write_text(json.dumps({**manifest, "status": "running"}))
        (stage / RESULT).unlink()
    records = _run(out, "--jobs", "2")
    assert sorted((r["stage"], r["status"]) for r in records if r["status"] != "cached") == [
        ("pretrain/default/seed1", "resumed"),
        ("pretrain/spatial/seed0", "resumed"),
    ]

    # A changed setting: the stages it affects are recomputed (and say so), the others are reused.
    records = _run(out, "--num-images", "2")
    redone = {r["stage"] for r in records if r["status"] != "cached"}
    assert redone == {f"measure/{m}/seed{s}" for m in MODELS for s in (0, 1)}
    assert {r["status"] for r in records if r["stage"] in redone} == {"recomputed"}
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["num_images"] == 2


def test_stage_cache_reuses_reruns_and_notices_changed_settings(tmp_path):
    calls = []

    def compute(folder):
        calls.append(folder.name)
        (folder / "extra.txt").write_text("x")
        return {"value": len(calls)}

    cache = StageCache(tmp_path, log=None)
    assert cache.run("a/b", {"k": 1}, compute) == {"value": 1}
    assert cache.run("a/b", {"k": 1}, compute) == {"value": 1} and len(calls) == 1
    assert cache.run("a/b", {"k": 2}, compute) == {"value": 2}  # changed settings: recomputed
    (tmp_path / "a" / "b" / RESULT).unlink()
    assert cache.run("a/b", {"k": 2}, compute) == {"value": 3}
    assert [r["status"] for r in cache.records] == ["ran", "cached", "recomputed", "ran"]
    assert [r["status"] for r in read_records(tmp_path, cache.run_id)] == ["ran", "cached", "recomputed", "ran"]


def test_pretrainings_run_at_once_one_per_core_on_a_cpu(monkeypatch):
    monkeypatch.setattr(parallel, "cpu_cores", lambda: 8)
    assert resolve_jobs(StudyConfig(device="cpu"), 9) == parallel.MAX_AUTO_JOBS
    monkeypatch.setattr(parallel, "cpu_cores", lambda: 2)
    assert resolve_jobs(StudyConfig(device="cpu"), 9) == 2
    assert resolve_jobs(StudyConfig(device="cpu"), 1) == 1  # never more than the pretrainings left
    assert resolve_jobs(StudyConfig(device="cpu", jobs=3), 9) == 3 and resolve_jobs(StudyConfig(jobs=1), 9) == 1
    with pytest.raises(ValueError, match="jobs must be >= 0"):
        StudyConfig(jobs=-1).validate()


def test_parse_seeds():
    assert parse_seeds("0,1") == (0, 1) and parse_seeds(" 3 , 7,11") == (3, 7, 11)
    for text, message in (
        ("", "comma-separated integers"),
        ("0,x", "'x' is not an integer"),
        ("0,,1", "comma"),
        ("1,1", "given twice"),
        ("-1", ">= 0"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_seeds(text)


def test_bad_input_is_rejected_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"

    def fails(args, message):
        assert study.main([*args, "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()  # nothing was written: the check came first

    fails(["--data", str(tmp_path / "missing")], "does not exist")
    flat = tmp_path / "flat"
    (flat / "train").mkdir(parents=True)
    (flat / "test").mkdir()
    (flat / "train" / "a.jpg").write_bytes(b"not an image")
    (flat / "test" / "b.jpg").write_bytes(b"not an image")
    fails(["--data", str(flat)], "has no class subfolders")
    unsplit = tmp_path / "unsplit"
    (unsplit / "cat").mkdir(parents=True)
    fails(["--data", str(unsplit)], "must hold train/ and test/ (or val/)")
    fails(["--batch-size", "30"], "must be a multiple of bn_splits")
    fails(["--groups", str(tmp_path / "nogroups")], "does not exist")
    fails(["--task", "cifar10"], "expected NAME:ROOT")
    for seeds, message in (("0,x", "'x' is not an integer"), ("1,1", "given twice"), ("", "comma-separated")):
        with pytest.raises(SystemExit) as exit_info:
            study.main(["--seeds", seeds, "--out", str(out)])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
        assert not out.exists()


def test_config_defaults_are_the_cpu_budget_study():
    cfg = StudyConfig().validate()
    assert cfg.size == 32 and cfg.seeds == (0, 1, 2) and cfg.models == ("default", "spatial", "appearance", "random")
    assert StudyConfig(data="x").size == 64 and StudyConfig(wide=True).wide_arch_resolved == "resnet50"
    assert StudyConfig(arch="resnet50", wide=True).trained_models[-1] == "wide"
    assert StudyConfig(arch="resnet50").wide_arch_resolved == "resnet50w3"
    restored = StudyConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert restored == cfg


def test_inputs_with_a_data_folder_add_its_classification_task(tmp_path, monkeypatch):
    from inv_kernels.data import write_dataset
    from inv_kernels.study.inputs import resolve_inputs

    monkeypatch.setenv("INV_KERNELS_CACHE", str(tmp_path / "cache"))
    data = write_dataset("classification", tmp_path / "photos", size=16, count=2, progress=False)
    cfg = StudyConfig(data=str(data), image_size=16, transfer_count=2, group_objects=2, progress=False)
    cfg.validate().check_inputs()
    inputs = resolve_inputs(cfg)
    assert inputs.train_root == data.resolve()
    assert [t.name for t in inputs.tasks] == ["photos", "shape", "position", "rotation", "hue"]
    assert inputs.tasks[0].kind == "classification" and len(inputs.tasks[0].trainval) == 7 * 2
    assert [t.target_names for t in inputs.tasks[2:]] == [
        ("pos_x", "pos_y", "pos_z"),
        ("rot_alpha", "rot_beta", "rot_gamma"),
        ("object_hue", "spotlight_hue", "background_hue"),
    ]
    assert [g.factor for g in inputs.group_sets] == ["viewpoint", "viewpoint", "appearance", "appearance"]
    clash = write_dataset("classification", tmp_path / "shape", size=16, count=2, progress=False)
    with pytest.raises(ValueError, match="two transfer tasks are named shape"):
        resolve_inputs(cfg.with_(data=str(clash)))
