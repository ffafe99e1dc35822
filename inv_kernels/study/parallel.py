"""Pretraining several models of a study at once, each in its own worker process.

On a CPU a ResNet-18 step at the study's sizes keeps two threads of one process only partly busy (operator-level
parallelism over small tensors), so two single-threaded trainings side by side do more steps per second than one
two-threaded training; docs/PERFORMANCE.md has the figures. Each pretraining is still one cached stage
(``stages.run_pretrain``): its folder, checkpoints, resume and settings are the same whichever way it runs; only the
torch thread count differs, and with it the floating-point summation order.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path

from inv_kernels.study.config import StudyConfig
from inv_kernels.study.health import read_step_log
from inv_kernels.study.inputs import StudyInputs
from inv_kernels.study.stagecache import StageCache
from inv_kernels.study.stages import pretrain_stage, run_pretrain, train_here

MAX_AUTO_JOBS = 4  # each worker holds a model, its optimizer state and a loader (about 1.5 GiB at 32 px)
POLL_S = 5.0


def cpu_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_jobs(cfg: StudyConfig, pending: int) -> int:
    """How many pretrainings run at once: ``cfg.jobs`` when set, else one per CPU core (at most ``MAX_AUTO_JOBS``)
    on a CPU and one on a GPU; never more than the ``pending`` pretrainings."""
    from inv_kernels.distributed import resolve_device

    if cfg.jobs:
        jobs = cfg.jobs
    elif resolve_device(cfg.device).type == "cpu":
        jobs = min(cpu_cores(), MAX_AUTO_JOBS)
    else:
        jobs = 1
    return max(1, min(jobs, pending))


def _train_in_worker(pcfg) -> dict:
    return train_here(pcfg, progress=False)


def _steps_done(folder: Path) -> int:
    try:
        return len(read_step_log(folder / "log.jsonl")["steps"])
    except OSError:  # not started yet, or the log is being rewritten on resume
        return 0


def pretrain_all(
    cache: StageCache, cfg: StudyConfig, inputs: StudyInputs, pairs: list[tuple[str, int]], *, bar=None
) -> dict[tuple[str, int], dict]:
    """Pretrains (or resumes, or reuses) every (model, seed) of ``pairs``; returns (model, seed) -> run_pretrain's
    entry. Finished stages are read from the cache; the others run ``resolve_jobs`` at a time, each worker with
    ``cpu_cores() // jobs`` torch threads. ``bar`` (a tqdm bar of the study's stages) is advanced per stage and shows
    which models are training.

    Raises:
        Whatever a pretraining raised, after the pretrainings running beside it have finished.
    """
    pending = []
    for pair in pairs:
        name, _, settings = pretrain_stage(cache, cfg, inputs, *pair)
        if cache.cached(name, settings) is None:
            pending.append(pair)
    jobs = resolve_jobs(cfg, len(pending))
    done: dict[tuple[str, int], dict] = {}
    for pair in pairs:
        if pair not in pending or jobs == 1:
            if bar is not None:
                bar.set_postfix_str(f"pretrain {pair[0]} seed {pair[1]}")
            done[pair] = run_pretrain(cache, cfg, inputs, *pair)
            if bar is not None:
                bar.update()
    if jobs == 1:
        return done
    threads = max(1, cpu_cores() // jobs)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch or loader threads
    with ProcessPoolExecutor(jobs, mp_context=context) as workers, ThreadPoolExecutor(jobs) as waiters:

        def train(pcfg) -> dict:
            return workers.submit(_train_in_worker, replace(pcfg, threads=threads)).result()

        running = {waiters.submit(run_pretrain, cache, cfg, inputs, *p, train=train): p for p in pending}
        failure = None
        while running:
            finished, _ = wait(running, timeout=POLL_S, return_when=FIRST_COMPLETED)
            for future in finished:
                pair = running.pop(future)
                try:
                    done[pair] = future.result()
                except BaseException as error:  # noqa: BLE001 - re-raised below, once the others are done
                    failure = failure or error
                if bar is not None:
                    bar.update()
            if bar is not None and running:
                bar.set_postfix_str(
                    f"pretraining {jobs} at a time: "
                    + ", ".join(
                        f"{m} seed {s} step {_steps_done(cache.folder(f'pretrain/{m}/seed{s}'))}"
                        for m, s in sorted(p for f, p in running.items() if f.running())
                    )
                )
        if failure is not None:
            raise failure
    return {pair: done[pair] for pair in pairs}
