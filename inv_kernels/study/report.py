"""The study's report: ``report.json`` (every number, for programs), ``report.md`` (tables, figures and the verdicts
on the paper's claims, for people) and ``figures/*.png`` under the study's output folder."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from inv_kernels.io import atomic_write_bytes, atomic_write_json
from inv_kernels.reporting import markdown_table
from inv_kernels.study import aggregate, claims, figures, health
from inv_kernels.study.claims import AGREES, DISAGREES
from inv_kernels.study.config import StudyConfig
from inv_kernels.transforms import APPEARANCE_FAMILIES, SPATIAL_FAMILIES


def build_report(
    cfg: StudyConfig,
    inputs,
    pretrained: dict,
    measured: dict,
    latents: dict,
    transfer: dict,
    *,
    records: list[dict],
    seconds: float,
) -> dict:
    """Every table, claim and timing of the study as one JSON-serialisable dict (see the module docstring)."""
    from inv_kernels.correlation import correlate

    seeds, models, tasks = list(cfg.seeds), list(cfg.models), [t.name for t in inputs.tasks]
    synthetic = aggregate.synthetic_table(measured, models, seeds)
    realworld = aggregate.realworld_table(measured, models, seeds)
    latent_table = aggregate.latents_table(latents, models, seeds)
    w3 = ("wide",) if cfg.wide and cfg.wide_arch_resolved == "resnet50w3" else ()
    transfer_table = aggregate.transfer_table(transfer, tasks, seeds, mode=cfg.mode, wide_members=w3)
    summary = aggregate.kind_summary(measured, models, seeds)
    for model in models:
        summary[model]["spatial_claim_families"] = aggregate.family_average(
            measured, model, seeds, claims.SPATIAL_CLAIM_FAMILIES
        )
        summary[model]["appearance_claim_families"] = aggregate.family_average(
            measured, model, seeds, claims.APPEARANCE_CLAIM_FAMILIES
        )
    invariance, scores = aggregate.correlation_inputs(measured, transfer, models, seeds, tasks)
    logs = {key: health.read_step_log(Path(e["backbone"]).parent / "log.jsonl") for key, e in pretrained.items()}
    health_table = health.health_table(logs, measured, cfg.trained_models, seeds, has_random=cfg.random)
    pretraining = {
        model: {
            str(seed): {
                "steps": e["summary"]["steps"],
                "epochs": e["summary"]["epochs_done"],
                "final_loss": next(
                    (h.get("loss") for h in reversed(e["summary"]["history"]) if h.get("loss") is not None), None
                ),
                "knn_top1": e["summary"]["final_knn_top1"],
                "seconds": e["summary"]["time_s"]["total"],
                "images_per_s": e["summary"]["images_per_s"],
                "model_id": e["model_id"],
            }
            for (m, seed), e in pretrained.items()
            if m == model
        }
        for model in cfg.trained_models
    }
    return {
        "title": "Invariance study (Ericsson, Gouk, Hospedales, BMVC 2022)",
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "config": cfg.to_dict(),
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "machine": platform.machine(),
            "cpus": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "inputs": {
            **inputs.identity,
            "group_sets": [{"name": g.name, "factor": g.factor, "spec": g.spec} for g in inputs.group_sets],
            "tasks": [
                {"name": t.name, "kind": t.kind, "metric": t.metric, "trainval": len(t.trainval), "test": len(t.test)}
                for t in inputs.tasks
            ],
        },
        "models": models,
        "seeds": seeds,
        "families": {"spatial": list(SPATIAL_FAMILIES), "appearance": list(APPEARANCE_FAMILIES)},
        "pretraining": pretraining,
        "health": health_table,
        "synthetic": synthetic,
        "kind_summary": summary,
        "realworld": realworld,
        "latents": latent_table,
        "transfer": transfer_table,
        "correlation": correlate(invariance, scores),
        "claims": claims.all_claims(synthetic, realworld, latents, measured, transfer_table, seeds, has_wide=cfg.wide),
        "stages": records,
        "time_s": seconds,
    }


# ------------------------------------------------------------------------------------------------ Markdown
def pm(stats: dict | None, spec: str = ".3f") -> str:
    """ "0.812 ± 0.013" (or "0.812" with one seed, "-" when missing)."""
    if not stats or stats.get("mean") is None:
        return "-"
    if stats.get("std") is None:
        return format(stats["mean"], spec)
    return f"{format(stats['mean'], spec)} ± {format(stats['std'], spec)}"


def _num(value, spec: str = "+.3f") -> str:
    return "n/a" if value is None else format(value, spec)


def verdict_text(verdict: str) -> str:
    """How a claim's verdict (``claims.AGREES``, ``claims.DISAGREES`` or another) reads in the report and on the
    command line."""
    if verdict == AGREES:
        return "agrees with the paper"
    if verdict == DISAGREES:
        return "**DISAGREES with the paper**"
    if verdict is None:
        return "-"
    return "needs >= 2 seeds"


def _yes(flag) -> str:
    return "n/a" if flag is None else ("yes" if flag else "**no**")


def _health_warning(table: dict, seeds: list) -> list[str]:
    if table["healthy"] is False:
        return [
            "**Health check: not every model meets the training-health criteria** (docs/STUDY.md), so the verdicts "
            "below compare models that did not train enough and are not evidence for or against the paper. "
            "Failed: " + "; ".join(table["failures"]) + ". A model that fails (a) or (b) has usually not trained "
            "long enough: `--epochs` sets the budget (docs/STUDY.md lists the budgets measured on the built-in data).",
            "",
        ]
    if table["healthy"] is None:
        reason = "one seed gives no spread" if len(seeds) < 2 else "the random floor was not measured"
        return [f"Health check: criterion (a) cannot be checked ({reason}), so no model is called healthy.", ""]
    return ["Health check: every model meets the training-health criteria (docs/STUDY.md).", ""]


def health_section(report: dict) -> list[str]:
    """The "Training health" section: a row per model and seed (loss, pretext accuracy, invariance to its own
    augmentations against the random network) and a row per model over seeds, then the health warning."""
    table = report["health"]
    lines = [
        "## Training health",
        "",
        "Criteria fixed in advance (docs/STUDY.md): (a) the mean whitened cosine over the families of the model's own "
        "augmentations beats the random network's by more than the seed spread; (b) the loss has flattened: the last "
        f"20% of steps gave less than {health.LATE_DROP_MAX:.0%} of the total drop (windows of "
        f"{health.WINDOW:.0%} of the steps); (c) no collapse: the last window's pretext accuracy is at most "
        f"{health.COLLAPSE_TOLERANCE} below the best of the second half.",
        "",
    ]
    rows = []
    for model, h in table["models"].items():
        for seed, r in h["seeds"].items():
            loss, acc = r["loss"], r["accuracy"]
            rows.append(
                [
                    model,
                    seed,
                    str(r["steps"]),
                    f"{loss['first']:.3f} -> {loss['last']:.3f}" if "first" in loss else "-",
                    _num(loss.get("late_fraction"), ".0%"),
                    _yes(loss["passes"]),
                    f"{acc['best_late']:.3f} -> {acc['last']:.3f}" if "last" in acc else "-",
                    _yes(acc["passes"]),
                    f"{_num(r['invariance'], '.3f')} vs {_num(r['random'], '.3f')} ({_num(r['invariance_margin'])})",
                    "",
                    "",
                ]
            )
        inv = h["invariance"]
        rows.append(
            [
                model,
                "all",
                "",
                "",
                "",
                "",
                "",
                "",
                f"margin {_num(inv['margin'])} (spread {_num(inv['spread'], '.3f')})",
                "needs >= 2 seeds" if inv["passes"] is None and inv["margin"] is not None else _yes(inv["passes"]),
                _yes(h["healthy"]),
            ]
        )
    header = [
        "model",
        "seed",
        "steps",
        "loss (highest -> last window)",
        "late drop / total drop",
        "(b) flattened",
        "pretext accuracy (best late -> last)",
        "(c) no collapse",
        "own-family cosine vs random (margin)",
        "(a) beyond random",
        "healthy",
    ]
    lines += [markdown_table(header, rows), ""]
    families = "; ".join(f"{m}: {', '.join(h['families'])}" for m, h in table["models"].items())
    lines += [f"Own-augmentation families: {families}.", ""]
    return lines + _health_warning(table, report["seeds"])


def _claims_section(report: dict) -> list[str]:
    lines = [
        "## Verdicts on the paper's claims",
        "",
        "A beats B when mean(A) - mean(B) exceeds the seed spread sqrt(std(A)^2 + std(B)^2) (std over seeds, "
        "ddof 1); within noise when the difference is at least minus that spread. Tags as docs/METHOD.md section 11.",
        "",
    ]
    if len(report["seeds"]) < 2:
        lines += [
            "**One seed cannot give verdicts:** a claim compares models beyond the spread over seeds, and one seed "
            'has none, so every verdict below reads "needs >= 2 seeds". Use this run as a first look only.',
            "",
        ]
    lines += _health_warning(report["health"], report["seeds"])
    rows = [
        [
            c["id"],
            c["paper"],
            c["test"],
            c["summary"],
            verdict_text(c["verdict"]),
            verdict_text(c["verdict_distance"]),
            "-" if c["metrics_agree"] is None else ("agree" if c["metrics_agree"] else "**differ**"),
        ]
        for c in report["claims"]
    ]
    header = [
        "claim",
        "the paper says",
        "test",
        "this study (whitened cosine where invariance)",
        "verdict (whitened cosine)",
        "verdict (Mahalanobis distance)",
        "the two measures",
    ]
    lines.append(markdown_table(header, rows))
    disagreements = [c for c in report["claims"] if c["verdict"] == DISAGREES]
    lines.append("")
    if disagreements:
        lines += ["**Where this study disagrees with the paper (whitened cosine):**", ""]
        lines += [f"- Claim {c['id']} does not hold here: {c['summary']}." for c in disagreements]
    elif len(report["seeds"]) >= 2:
        lines.append("No claim assessed here disagrees with the paper.")
    sentences = [s for c in report["claims"] for s in c["disagreements"]]
    lines += ["", "**Where the whitened cosine and the Mahalanobis distance disagree:**", ""]
    lines += [f"- {s}" for s in sentences] if sentences else ["- Nowhere: the two measures rank every pair alike."]
    return lines + [""]


def _invariance_sections(report: dict) -> list[str]:
    models, synthetic = report["models"], report["synthetic"]
    lines = [
        "## Synthetic invariance (18 transform families)",
        "",
        "Whitened cosine between a clean view and its transformed views (higher: more invariant), mean ± std "
        "over seeds (docs/METHOD.md 4.1).",
        "",
        "![invariance heat map](figures/invariance_heatmap.png)",
        "",
    ]
    rows = [
        [f, synthetic[models[0]][f]["kind"]]
        + [pm(synthetic[m][f]["cosine"]) if not synthetic[m][f].get("degenerate") else "degenerate" for m in models]
        for f in synthetic[models[0]]
    ]
    lines += [markdown_table(["family", "kind", *models], rows), ""]
    degenerate = {f: r["degenerate"] for m in models for f, r in synthetic[m].items() if r.get("degenerate")}
    if degenerate:
        lines += [
            "Degenerate families (their views leave the images unchanged, so they are not scored and are left out "
            "of the claims): " + "; ".join(f"{f}: {why}" for f, why in degenerate.items()) + ".",
            "",
        ]
    lines += ["## Spatial vs appearance invariance", "", "![spatial vs appearance](figures/kind_scatter.png)", ""]
    summary = report["kind_summary"]
    rows = [
        [
            m,
            pm(summary[m]["spatial"]),
            pm(summary[m]["appearance"]),
            pm(summary[m]["spatial_claim_families"]),
            pm(summary[m]["appearance_claim_families"]),
        ]
        for m in models
    ]
    header = [
        "model",
        "all spatial families",
        "all appearance families",
        "resized crop, translation, scale, flip",
        "brightness, contrast, saturation, hue, grayscale, blur",
    ]
    lines += [markdown_table(header, rows), ""]
    for claim in (c for c in report["claims"] if c["id"] in ("1a", "1b")):
        winner, loser = ("spatial", "appearance") if claim["id"] == "1a" else ("appearance", "spatial")
        rows = [
            [
                r["family"],
                format(r[winner], ".3f"),
                format(r[loser], ".3f"),
                _num(r["margin"]),
                _num(r["spread"], ".3f"),
                "yes" if r["beats"] else ("n/a" if r["beats"] is None else "no"),
                _num(r["distance_margin"]),
                _num(r["distance_spread"], ".3f"),
                "yes" if r["distance_beats"] else ("n/a" if r["distance_beats"] is None else "no"),
            ]
            for r in claim["rows"]
        ]
        lines += [
            f"Claim {claim['id']}: {winner} model against {loser} model (cosine margin: {winner} minus {loser}; "
            f"distance margin: {loser} minus {winner}, as lower distance is more invariant).",
            "",
        ]
        header = ["family", winner, loser, "cosine margin", "seed spread", "beyond spread"]
        header += ["distance margin", "distance spread", "beyond spread (distance)"]
        lines += [markdown_table(header, rows), ""]
    realworld = report["realworld"]
    sets = list(realworld[models[0]])
    lines += [
        "## Real-world group invariance",
        "",
        "Mean off-diagonal whitened cosine within groups of views of one object (higher: more invariant; "
        "docs/METHOD.md 4.3), mean ± std over seeds.",
        "",
    ]
    rows = [
        [s, realworld[models[0]][s]["factor"], str(realworld[models[0]][s]["groups"])]
        + [pm(realworld[m][s]["cosine_off_diagonal"]) for m in models]
        for s in sets
    ]
    lines += [markdown_table(["group set", "factor varied", "groups", *models], rows), ""]
    latents = report["latents"]
    lines += [
        "## Latent-factor regression on the generated scenes (extrinsic invariance)",
        "",
        "Test R^2 of an RBF kernel-ridge probe per latent (docs/METHOD.md 5): higher R^2 means the feature keeps the "
        "factor, i.e. is less invariant to it.",
        "",
    ]
    rows = [[name] + [pm(latents[m][name]) for m in models] for name in latents[models[0]]]
    lines += [markdown_table(["latent", *models], rows), ""]
    return lines


def _transfer_sections(report: dict) -> list[str]:
    transfer = report["transfer"]
    tasks = list(transfer)
    names = list(dict.fromkeys(n for t in tasks for n in transfer[t]["entries"]))
    folds = report["config"]["folds"]
    lines = [
        "## Transfer",
        "",
        f"Linear probes with {folds}-fold cross-validation over the paper's "
        "45-value grid (docs/METHOD.md 6-7); fusions concatenate the members' features. Test score, mean ± std over "
        "seeds.",
        "",
        "![transfer](figures/transfer_bars.png)",
        "",
    ]

    def cell(task: str, name: str) -> str:
        entry = transfer[task]["entries"].get(name)
        return pm(entry) + (" †" if entry and entry["grid_edge_seeds"] else "")

    rows = [[n] + [cell(t, n) for t in tasks] for n in names]
    lines += [markdown_table(["model / fusion", *[f"{t} ({transfer[t]['metric']})" for t in tasks]], rows), ""]
    if any(e["grid_edge_seeds"] for t in tasks for e in transfer[t]["entries"].values()):
        lines += [
            "† the probe chose an end of its regularisation grid for at least one seed, so the best value may "
            "lie outside the grid. In paper mode the ridge grid of a k-model fusion is shifted toward weaker "
            "regularisation (docs/METHOD.md section 12); `--mode corrected` shifts it the intended way.",
            "",
        ]
    correlation = report["correlation"]
    measures = list(dict.fromkeys(r["measure"] for r in correlation))
    value = {(r["measure"], r["task"]): r["spearman"] for r in correlation}
    points = correlation[0]["models"] if correlation else 0
    lines += [
        "## Invariance vs transfer",
        "",
        f"Spearman correlation across the {points} (model, seed) points between each invariance and each "
        "task's transfer score (blank: undefined).",
        "",
        "![correlation](figures/correlation_spearman.png)",
        "",
    ]
    rows = [[m] + [_num(value.get((m, t)), "+.2f") for t in tasks] for m in measures]
    lines += [markdown_table(["invariance", *tasks], rows), ""]
    return lines


def _run_sections(report: dict) -> list[str]:
    lines = ["## Pretraining", ""]
    rows = [
        [m, s, str(e["steps"]), _num(e["final_loss"], ".3f"), _num(e["knn_top1"], ".3f"), f"{e['seconds']:.0f}"]
        for m, per in report["pretraining"].items()
        for s, e in per.items()
    ]
    lines += [markdown_table(["model", "seed", "steps", "final InfoNCE loss", "kNN top-1", "seconds"], rows), ""]
    ran = [r for r in report["stages"] if r["status"] != "cached"]
    computed = sum(r["computed_s"] for r in report["stages"])
    lines += [
        "## Stages of this run",
        "",
        f"{len(ran)} stages computed in this run, {len(report['stages']) - len(ran)} read from the cache; this "
        f"run took {report['time_s']:.0f} s; computing every stage's output took {computed:.0f} s in all.",
        "",
    ]
    lines += [
        markdown_table(
            ["stage", "status in this run", "seconds in this run", "seconds to compute"],
            [[r["stage"], r["status"], f"{r['seconds']:.1f}", f"{r['computed_s']:.1f}"] for r in report["stages"]],
        ),
        "",
    ]
    return lines


def markdown(report: dict) -> str:
    """The report page."""
    cfg, env = report["config"], report["environment"]
    data = cfg["data"] or f"built-in generated scenes ({report['inputs']['size']} px)"
    device = env["cuda"] or f"CPU ({env['cpus']} threads)"
    lines = [
        f"# {report['title']}",
        "",
        f"Created {report['created']}; python {env['python']}, torch {env['torch']}, {device}.",
        "",
        f"Data: {data}. Models: {', '.join(report['models'])} ({cfg['arch']}"
        + (f"; wide: {cfg['wide_arch'] or 'resnet50'}" if cfg["wide"] else "")
        + f"), seeds "
        f"{', '.join(map(str, report['seeds']))}, {cfg['epochs']} epochs of pretraining, {cfg['mode']} mode. "
        f"Transfer tasks: {', '.join(t['name'] + ' (' + t['metric'] + ')' for t in report['inputs']['tasks'])}.",
        "",
    ]
    lines += health_section(report) + _claims_section(report) + _invariance_sections(report)
    lines += _transfer_sections(report)
    lines += _run_sections(report)
    return "\n".join(lines) + "\n"


def write_report(report: dict, out: Path) -> dict[str, Path]:
    """report.json, report.md and the figures under ``out``; returns the paths written."""
    from inv_kernels.correlation import heatmap

    out = Path(out)
    fig_dir = out / "figures"
    title = f"invariance per family (mean over seeds {', '.join(map(str, report['seeds']))})"
    written = {
        "invariance_heatmap": figures.invariance_heatmap(
            report["synthetic"], fig_dir / "invariance_heatmap.png", title
        ),
        "kind_scatter": figures.kind_scatter(report["kind_summary"], fig_dir / "kind_scatter.png"),
        "transfer_bars": figures.transfer_bars(report["transfer"], fig_dir / "transfer_bars.png"),
        "correlation": heatmap(report["correlation"], "spearman", fig_dir / "correlation_spearman.png"),
    }
    written["markdown"] = atomic_write_bytes(markdown(report).encode(), out / "report.md")
    written["json"] = atomic_write_json(report, out / "report.json")
    return written
