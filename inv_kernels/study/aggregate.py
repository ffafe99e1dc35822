"""Gathering the stages' per-seed results into tables of mean and spread over seeds.

Every number of a table is a ``seed_stats`` dict: ``mean``, ``std`` (sample standard deviation over seeds, ddof 1;
None with one seed), ``n`` (seeds) and ``per_seed`` (seed as a string -> value).
"""

from __future__ import annotations

import math

import numpy as np

from inv_kernels.transforms import APPEARANCE_FAMILIES, FAMILIES, SPATIAL_FAMILIES


def seed_stats(per_seed: dict[int, float]) -> dict:
    """{"mean", "std", "n", "per_seed"} of values keyed by seed; non-finite values are kept out of mean and std."""
    values = [float(v) for v in per_seed.values() if v is not None and math.isfinite(float(v))]
    mean = float(np.mean(values)) if values else None
    std = float(np.std(values, ddof=1)) if len(values) >= 2 else None
    return {
        "mean": mean,
        "std": std,
        "n": len(values),
        "per_seed": {
            str(s): (float(v) if v is not None and math.isfinite(float(v)) else None) for s, v in per_seed.items()
        },
    }


def synthetic_table(measured: dict, models, seeds) -> dict:
    """model -> family -> {"kind", "cosine": stats, "distance": stats, "degenerate": the reason when a seed's
    measurement found the family degenerate (its scores are then left out), else None}, families in FAMILIES order."""
    table = {}
    for model in models:
        rows = {seed: {r["family"]: r for r in measured[(model, seed)]["synthetic"]} for seed in seeds}
        table[model] = {
            family: {
                "kind": FAMILIES[family].kind,
                "cosine": seed_stats({s: rows[s][family]["cosine_mean"] for s in seeds}),
                "distance": seed_stats({s: rows[s][family]["distance_mean"] for s in seeds}),
                "degenerate": next(
                    (rows[s][family].get("degenerate") for s in seeds if rows[s][family].get("degenerate")), None
                ),
            }
            for family in FAMILIES
            if all(family in rows[s] for s in seeds)
        }
    return table


def family_average(measured: dict, model: str, seeds, families, key: str = "cosine_mean") -> dict:
    """seed_stats of the per-seed mean of ``key`` (the cosine invariance, or "distance_mean") over the scored
    ``families`` (a degenerate family, whose score is None, is left out)."""
    per_seed = {}
    for seed in seeds:
        rows = {r["family"]: r[key] for r in measured[(model, seed)]["synthetic"]}
        values = [rows[f] for f in families if rows.get(f) is not None]
        per_seed[seed] = float(np.mean(values)) if values else None
    return seed_stats(per_seed)


def kind_summary(measured: dict, models, seeds) -> dict:
    """model -> {"spatial": stats, "appearance": stats}: mean cosine over all spatial / appearance families."""
    return {
        m: {
            "spatial": family_average(measured, m, seeds, SPATIAL_FAMILIES),
            "appearance": family_average(measured, m, seeds, APPEARANCE_FAMILIES),
        }
        for m in models
    }


def realworld_table(measured: dict, models, seeds) -> dict:
    """model -> group set name -> {"factor", "groups", "cosine_off_diagonal", "cosine_with_diagonal", "distance"}."""
    table = {}
    for model in models:
        sets = {}
        for seed in seeds:
            for entry in measured[(model, seed)]["realworld"]:
                sets.setdefault(entry["set"], {"factor": entry["factor"], "groups": entry["num_groups"], "runs": {}})
                sets[entry["set"]]["runs"][seed] = entry
        table[model] = {
            name: {
                "factor": s["factor"],
                "groups": s["groups"],
                **{
                    key: seed_stats({seed: e[key] for seed, e in s["runs"].items()})
                    for key in ("cosine_off_diagonal", "cosine_with_diagonal", "distance")
                },
            }
            for name, s in sets.items()
        }
    return table


def latents_table(latents: dict, models, seeds) -> dict:
    """model -> latent name (and "mean") -> stats of the kernel-ridge test R^2."""
    table = {}
    for model in models:
        names = list(latents[(model, seeds[0])]["r2"])
        row = {name: seed_stats({s: latents[(model, s)]["r2"][name] for s in seeds}) for name in names}
        row["mean"] = seed_stats({s: latents[(model, s)]["r2_mean"] for s in seeds})
        table[model] = row
    return table


def latent_group_average(latents: dict, model: str, seeds, names) -> dict:
    """seed_stats of the per-seed mean R^2 over the latents ``names``."""
    return seed_stats({s: float(np.mean([latents[(model, s)]["r2"][n] for n in names])) for s in seeds})


def at_grid_edge(row: dict, mode: str, wide_members: tuple[str, ...] = ()) -> bool:
    """Whether a transfer row's probe chose the first or last value of its regularisation grid (the grid of
    ``probes.grid`` for its number of fused members), i.e. the best value may lie outside the grid."""
    from inv_kernels.probes import logistic_Cs, ridge_alphas

    wide = any(m in wide_members for m in row["members"])
    if "C" in row["chosen"]:
        grid, value = logistic_Cs(len(row["members"]), wide, mode), row["chosen"]["C"]
    else:
        grid, value = ridge_alphas(len(row["members"]), wide, mode), row["chosen"]["alpha"]
    return bool(np.isclose(value, grid.min(), rtol=1e-9) or np.isclose(value, grid.max(), rtol=1e-9))


def transfer_table(
    transfer: dict, task_names, seeds, *, mode: str = "paper", wide_members: tuple[str, ...] = ()
) -> dict:
    """task -> {"kind", "metric", "entries": {model or fusion -> stats of the test score, "grid_edge_seeds": seeds
    whose probe chose an end of its regularisation grid}} (entries in row order). ``wide_members``: model names whose
    grid is the paper's "w3" one."""
    table = {}
    for task in task_names:
        first = transfer[(task, seeds[0])]["results"]
        entries = {}
        for row in first:
            scores, edge = {}, []
            for seed in seeds:
                match = [r for r in transfer[(task, seed)]["results"] if r["model"] == row["model"]]
                scores[seed] = match[0]["test_score"] if match else None
                if match and at_grid_edge(match[0], mode, wide_members):
                    edge.append(seed)
            entries[row["model"]] = {
                "fusion": row["fusion"],
                "members": row["members"],
                "feature_dim": row["feature_dim"],
                "grid_edge_seeds": edge,
                **seed_stats(scores),
            }
        table[task] = {"kind": first[0]["kind"], "metric": first[0]["metric"], "entries": entries}
    return table


def correlation_inputs(measured: dict, transfer: dict, models, seeds, task_names) -> tuple[dict, dict]:
    """(invariance, transfer) tables keyed by "model@seed<s>" as ``pipelines.correlate.correlate`` takes them: every
    measured model and seed is one point (the spread over seeds counts as variation, as in a scatter plot)."""
    invariance, scores = {}, {}
    for model in models:
        for seed in seeds:
            key = f"{model}@seed{seed}"
            results = measured[(model, seed)]
            row = {r["family"]: r["cosine_mean"] for r in results["synthetic"] if r["cosine_mean"] is not None}
            row.update({f"real:{r['set']}": r["cosine_off_diagonal"] for r in results["realworld"]})
            invariance[key] = row
            scores[key] = {
                task: next(r["test_score"] for r in transfer[(task, seed)]["results"] if r["model"] == model)
                for task in task_names
            }
    return invariance, scores
