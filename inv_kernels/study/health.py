"""Training health: whether each pretrained model of the study trained enough for its verdicts to mean something.
The criteria (docs/STUDY.md, "Training health") were fixed before any verdict was read:

    (a) invariance beyond the untrained network: the model's mean whitened cosine over the families of its own
        training augmentations (``OWN_FAMILIES``) minus the random network's of the same seed; over seeds, the mean
        margin must exceed the seed spread sqrt(std(model)^2 + std(random)^2) (one seed: not checkable);
    (b) the loss has flattened: with windows of ``WINDOW`` of the steps, total drop = highest window - last window
        (the highest, not the first: MoCo's loss rises while the queue fills with real keys) must be positive, and
        the late drop (the window ending at 80% - the last window) below ``LATE_DROP_MAX`` of it;
    (c) no collapse: the last window's pretext accuracy is at most ``COLLAPSE_TOLERANCE`` below the best window of
        the second half of the run.

(b) and (c) read every step's loss and accuracy from the pretraining's ``log.jsonl`` and need ``MIN_STEPS`` steps.
A model is healthy when (a) holds and (b) and (c) hold for every seed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from inv_kernels.study.aggregate import seed_stats
from inv_kernels.study.claims import APPEARANCE_AUGMENTATION_FAMILIES, SPATIAL_AUGMENTATION_FAMILIES, compare
from inv_kernels.study.config import RANDOM

# The transform families of each recipe's training augmentations (inv_kernels.augment.recipes).
OWN_FAMILIES: dict[str, tuple[str, ...]] = {
    "spatial": SPATIAL_AUGMENTATION_FAMILIES,
    "appearance": APPEARANCE_AUGMENTATION_FAMILIES,
    "default": SPATIAL_AUGMENTATION_FAMILIES + APPEARANCE_AUGMENTATION_FAMILIES,
    "wide": SPATIAL_AUGMENTATION_FAMILIES + APPEARANCE_AUGMENTATION_FAMILIES,
}
WINDOW = 0.1
LATE_DROP_MAX = 0.2
COLLAPSE_TOLERANCE = 0.05
MIN_STEPS = 20


def read_step_log(path: str | Path) -> dict:
    """{"steps", "loss", "accuracy"}: the per-step records of a pretraining ``log.jsonl`` (lists, step order).

    Raises:
        FileNotFoundError: no log at ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretraining log {str(path)!r} does not exist")
    records = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        if isinstance(record, dict) and record.get("event") == "step":
            records[int(record["step"])] = record
    steps = sorted(records)
    return {
        "steps": steps,
        "loss": [float(records[s]["loss"]) for s in steps],
        "accuracy": [float(records[s]["accuracy"]) for s in steps],
    }


def window_mean(steps: list[int], values: list[float], low: float, high: float) -> float | None:
    """Mean of the values whose step lies in (low * last step, high * last step]; None when there is none."""
    total = max(steps) if steps else 0
    chosen = [v for s, v in zip(steps, values) if low * total < s <= high * total and math.isfinite(v)]
    return sum(chosen) / len(chosen) if chosen else None


def _too_few(steps: list[int]) -> str | None:
    return f"too few steps to judge ({len(steps)} < {MIN_STEPS})" if len(steps) < MIN_STEPS else None


def loss_flattened(steps: list[int], losses: list[float]) -> dict:
    """Criterion (b): {"first" (the highest window), "last", "total_drop", "late_drop", "late_fraction", "passes",
    "reason"}."""
    short = _too_few(steps)
    if short:
        return {"passes": False, "reason": short}
    windows = [window_mean(steps, losses, i * WINDOW, (i + 1) * WINDOW) for i in range(round(1 / WINDOW))]
    first = max(w for w in windows if w is not None)
    last = window_mean(steps, losses, 1.0 - WINDOW, 1.0)
    at_80 = window_mean(steps, losses, 0.8 - WINDOW, 0.8)
    total, late = first - last, at_80 - last
    fraction = late / total if total > 0 else None
    if total <= 0:
        passes, reason = False, f"the loss did not fall ({first:.3f} -> {last:.3f})"
    elif fraction >= LATE_DROP_MAX:
        passes, reason = False, f"still falling: the last 20% of steps gave {fraction:.0%} of the drop"
    else:
        passes, reason = True, ""
    return {
        "first": first,
        "last": last,
        "total_drop": total,
        "late_drop": late,
        "late_fraction": fraction,
        "passes": passes,
        "reason": reason,
    }


def no_collapse(steps: list[int], accuracies: list[float]) -> dict:
    """Criterion (c): {"best_late", "last", "passes", "reason"}: the best window of the second half and the last."""
    short = _too_few(steps)
    if short:
        return {"passes": False, "reason": short}
    starts = [0.5 + i * WINDOW for i in range(round(0.5 / WINDOW))]
    windows = [window_mean(steps, accuracies, a, a + WINDOW) for a in starts]
    best = max(w for w in windows if w is not None)
    last = window_mean(steps, accuracies, 1.0 - WINDOW, 1.0)
    passes = last >= best - COLLAPSE_TOLERANCE
    reason = "" if passes else f"the pretext accuracy fell late ({best:.3f} -> {last:.3f})"
    return {"best_late": best, "last": last, "passes": passes, "reason": reason}


def own_invariance(measured: dict, model: str, seeds, families) -> dict[int, float]:
    """seed -> mean whitened cosine of ``model`` over the scored (not degenerate) ``families``."""
    out = {}
    for seed in seeds:
        rows = {r["family"]: r["cosine_mean"] for r in measured[(model, seed)]["synthetic"]}
        values = [rows[f] for f in families if rows.get(f) is not None]
        out[seed] = sum(values) / len(values) if values else None
    return out


def _scored_families(measured: dict, model: str, seeds, families) -> list[str]:
    return [
        f
        for f in families
        if all(
            next((r["cosine_mean"] for r in measured[(model, s)]["synthetic"] if r["family"] == f), None) is not None
            for s in seeds
        )
    ]


def model_health(logs: dict, measured: dict, model: str, seeds, has_random: bool) -> dict:
    """One model's criteria per seed and over seeds (see the module docstring)."""
    families = _scored_families(measured, model, seeds, OWN_FAMILIES.get(model, OWN_FAMILIES["default"]))
    mine = own_invariance(measured, model, seeds, families)
    floor = own_invariance(measured, RANDOM, seeds, families) if has_random else {}
    per_seed = {}
    for seed in seeds:
        log = logs[(model, seed)]
        margin = mine[seed] - floor[seed] if floor.get(seed) is not None and mine[seed] is not None else None
        per_seed[str(seed)] = {
            "steps": len(log["steps"]),
            "loss": loss_flattened(log["steps"], log["loss"]),
            "accuracy": no_collapse(log["steps"], log["accuracy"]),
            "invariance": mine[seed],
            "random": floor.get(seed),
            "invariance_margin": margin,
        }
    invariance = {"model": seed_stats(mine), "random": seed_stats(floor) if floor else None}
    if floor and invariance["model"]["mean"] is not None and invariance["random"]["mean"] is not None:
        invariance.update(compare(invariance["model"], invariance["random"]))
        invariance["passes"] = invariance.pop("beats")
        invariance.pop("within_noise")
    else:
        invariance.update(margin=None, spread=None, passes=None)
    failed = [f"{model} seed {s}: loss {r['loss']['reason']}" for s, r in per_seed.items() if not r["loss"]["passes"]]
    failed += [
        f"{model} seed {s}: collapse check {r['accuracy']['reason']}"
        for s, r in per_seed.items()
        if not r["accuracy"]["passes"]
    ]
    if invariance["passes"] is False:
        failed.append(f"{model}: invariance to its own augmentations not beyond the untrained network")
    checks = [invariance["passes"]] + [r[k]["passes"] for r in per_seed.values() for k in ("loss", "accuracy")]
    healthy = False if False in checks else (None if None in checks else True)
    return {"families": families, "invariance": invariance, "seeds": per_seed, "healthy": healthy, "failed": failed}


def health_table(logs: dict, measured: dict, trained, seeds, *, has_random: bool) -> dict:
    """Every trained model's health.

    Args:
        logs: (model, seed) -> ``read_step_log`` dict of its pretraining.
        measured: (model, seed) -> the measurement's results (its "synthetic" rows), the random floor's included.
        trained: the pretrained models; seeds: the study's seeds; has_random: whether the floor was measured.

    Returns:
        {"criteria", "models": model -> ``model_health``, "healthy": True / False / None (not checkable),
        "failures": one line per failed criterion}.
    """
    models = {m: model_health(logs, measured, m, list(seeds), has_random) for m in trained}
    states = [h["healthy"] for h in models.values()]
    return {
        "criteria": {
            "own_families": {m: list(OWN_FAMILIES.get(m, OWN_FAMILIES["default"])) for m in trained},
            "window": WINDOW,
            "late_drop_max": LATE_DROP_MAX,
            "collapse_tolerance": COLLAPSE_TOLERANCE,
            "min_steps": MIN_STEPS,
        },
        "models": models,
        "healthy": False if False in states else (None if None in states else True),
        "failures": [line for h in models.values() for line in h["failed"]],
    }
