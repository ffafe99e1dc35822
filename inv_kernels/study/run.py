"""Running a whole study: ``run_study(StudyConfig(...))``; ``python -m pipelines.study`` wraps it.

Order: pretrain the default, spatial and appearance models (and the wide control) of every seed, several at once
on a CPU (``parallel``); then, for each seed, measure every model (and the random floor), regress the generated
latents from each, and probe every model and fusion on every task; finally write the report from everything
gathered. Each step is a cached stage (``stagecache``), so a
rerun skips what is finished and an interrupted one continues where it stopped. Every setting and input folder is
checked before the first stage starts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm import tqdm

from inv_kernels.io import atomic_write_json, check_writable_dir
from inv_kernels.provenance import provenance
from inv_kernels.study.config import StudyConfig
from inv_kernels.study.inputs import resolve_inputs
from inv_kernels.study.parallel import pretrain_all
from inv_kernels.study.stagecache import StageCache
from inv_kernels.study.stages import model_spec, run_latents, run_measure, run_transfer

STUDY_MANIFEST = "study.json"


def prepare(cfg: StudyConfig) -> Path:
    """Validates the settings and the input folders and checks the output folder is writable; returns it.

    Raises:
        ValueError, FileNotFoundError, NotADirectoryError, PermissionError: before any work, naming the problem.
    """
    cfg.validate()
    cfg.check_inputs()
    return check_writable_dir(cfg.out)


def run_study(cfg: StudyConfig, *, run_id: str | None = None) -> dict:
    """Runs (or resumes) every stage, then writes ``report.md``, ``report.json`` and ``figures/`` under ``cfg.out``.

    Returns:
        The report dict (as written to report.json).
    """
    out = prepare(cfg)
    started = time.time()
    cache = StageCache(out, run_id=run_id)
    previous = _read(out / STUDY_MANIFEST)
    atomic_write_json(
        {
            "config": cfg.to_dict(),
            "run_id": cache.run_id,
            "started": started,
            "previous_config": previous.get("config") if previous else None,
        },
        out / STUDY_MANIFEST,
    )
    inputs = resolve_inputs(cfg)
    seeds, trained, models = cfg.seeds, cfg.trained_models, cfg.models
    total = len(seeds) * (len(trained) + 2 * len(models) + len(inputs.tasks))
    bar = tqdm(total=total, desc="study stages", unit="stage", disable=not cfg.progress)
    pretrained = pretrain_all(cache, cfg, inputs, [(m, s) for s in seeds for m in trained], bar=bar)
    measured, latents, transfer = {}, {}, {}
    for seed in seeds:
        specs = {m: model_spec(cfg, m, seed, pretrained) for m in models}
        for model in models:
            bar.set_postfix_str(f"measure {model} seed {seed}")
            measured[(model, seed)] = run_measure(cache, cfg, inputs, model, seed, *specs[model])
            bar.update()
            bar.set_postfix_str(f"latents {model} seed {seed}")
            latents[(model, seed)] = run_latents(cache, cfg, inputs, model, seed, *specs[model])
            bar.update()
        for task in inputs.tasks:
            bar.set_postfix_str(f"transfer {task.name} seed {seed}")
            transfer[(task.name, seed)] = run_transfer(cache, cfg, task, seed, specs)
            bar.update()
    bar.close()
    from inv_kernels.study.report import build_report, write_report

    report = build_report(
        cfg, inputs, pretrained, measured, latents, transfer, records=cache.records, seconds=time.time() - started
    )
    report["provenance"] = provenance(
        model_hash={f"{m} seed {s}": r.get("model", {}).get("model_id") for (m, s), r in measured.items()},
        condition_number={
            f"{m} seed {s}": r.get("statistics", {}).get("condition_number") for (m, s), r in measured.items()
        },
    )
    report["files"] = {k: str(v) for k, v in write_report(report, out).items()}
    return report


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
