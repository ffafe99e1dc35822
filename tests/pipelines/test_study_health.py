"""The study's training-health check (flattened loss, no collapse, invariance beyond the untrained network), its
verdicts on both invariance measures (whitened cosine and Mahalanobis distance) with their disagreements, one-seed
reports and the --quick preset; on small hand-made inputs, no training."""

import json
import math

import pytest

from inv_kernels.study import claims, health
from inv_kernels.study.config import QUICK, StudyConfig
from inv_kernels.study.report import health_section, verdict_text
from pipelines import study

SEEDS = [0, 1, 2]


def _curve(f, n: int = 200) -> tuple[list[int], list[float]]:
    steps = list(range(1, n + 1))
    return steps, [f(s / n) for s in steps]


def test_loss_flattened_needs_a_drop_that_has_levelled_off():
    steps, losses = _curve(lambda t: 3.0 + 4.0 * math.exp(-12 * t))  # fell, then levelled off
    flat = health.loss_flattened(steps, losses)
    assert flat["passes"] and flat["total_drop"] > 2 and flat["late_fraction"] < 0.2
    steps, losses = _curve(lambda t: 7.0 - 4.0 * t)  # still falling at the same pace
    falling = health.loss_flattened(steps, losses)
    assert not falling["passes"] and falling["late_fraction"] > 0.2 and "still falling" in falling["reason"]
    steps, losses = _curve(lambda t: 6.0 + t)  # rose
    assert not health.loss_flattened(steps, losses)["passes"]
    short = health.loss_flattened(*_curve(lambda t: 7.0 - t, n=10))
    assert not short["passes"] and "too few steps" in short["reason"]


def test_no_collapse_fails_when_the_pretext_accuracy_falls_late():
    steps, rising = _curve(lambda t: min(0.9, 2 * t))
    assert health.no_collapse(steps, rising)["passes"]
    steps, falling = _curve(lambda t: 0.9 - max(0.0, t - 0.8) * 3)  # 0.9 until 80%, then down to 0.3
    result = health.no_collapse(steps, falling)
    assert not result["passes"] and result["best_late"] == pytest.approx(0.9) and result["last"] < 0.6


def _measured(own: dict[str, list[float]], degenerate: str | None = None) -> dict:
    """measure results per (model, seed) whose every family has the model's per-seed cosine (distance 1 - it)."""
    from inv_kernels.transforms import FAMILIES

    out = {}
    for model, per_seed in own.items():
        for seed, value in zip(SEEDS, per_seed):
            rows = [
                {"family": f, "cosine_mean": value, "distance_mean": 1.0 - value, "degenerate": None} for f in FAMILIES
            ]
            if degenerate:
                row = next(r for r in rows if r["family"] == degenerate)
                row.update(cosine_mean=None, distance_mean=None, degenerate="every offset is 0 px")
            out[(model, seed)] = {"synthetic": rows}
    return out


def _logs(models, good: bool = True) -> dict:
    steps, losses = _curve((lambda t: 3.0 + 4.0 * math.exp(-12 * t)) if good else (lambda t: 7.0 - 4.0 * t))
    _, accuracy = _curve(lambda t: min(0.9, 2 * t))
    return {(m, s): {"steps": steps, "loss": losses, "accuracy": accuracy} for m in models for s in SEEDS}


def test_health_table_checks_every_model_and_seed_against_the_random_floor():
    measured = _measured(
        {
            "default": [0.60, 0.62, 0.61],
            "spatial": [0.50, 0.52, 0.51],
            "appearance": [0.41, 0.45, 0.37],  # within the seed spread of the floor
            "random": [0.40, 0.41, 0.40],
        }
    )
    trained = ("default", "spatial", "appearance")
    table = health.health_table(_logs(trained), measured, trained, SEEDS, has_random=True)
    models = table["models"]
    assert models["spatial"]["families"] == ["resized_crop", "h_flip"]
    assert models["default"]["healthy"] and models["spatial"]["healthy"]
    assert models["appearance"]["invariance"]["passes"] is False and models["appearance"]["healthy"] is False
    assert table["healthy"] is False and "appearance" in " ".join(table["failures"])
    assert models["spatial"]["seeds"]["1"]["invariance_margin"] == pytest.approx(0.11)
    assert json.loads(json.dumps(table)) == table  # JSON-ready
    still_falling = health.health_table(_logs(trained, good=False), measured, trained, SEEDS, has_random=True)
    assert still_falling["models"]["default"]["healthy"] is False
    assert any("loss" in f and "default seed 0" in f for f in still_falling["failures"])


def test_health_with_one_seed_or_no_floor_cannot_check_invariance():
    measured = _measured({"spatial": [0.5], "random": [0.4]}, degenerate="h_flip")
    one = health.health_table(_logs(("spatial",)), measured, ("spatial",), [0], has_random=True)
    spatial = one["models"]["spatial"]
    assert spatial["invariance"]["passes"] is None and spatial["healthy"] is None
    assert spatial["families"] == ["resized_crop"]  # the degenerate family is left out
    assert spatial["seeds"]["0"]["invariance_margin"] == pytest.approx(0.1)
    none = health.health_table(_logs(("spatial",)), measured, ("spatial",), [0], has_random=False)
    assert none["models"]["spatial"]["invariance"]["passes"] is None and none["healthy"] is None


def test_report_health_section_has_a_row_per_model_and_seed_and_names_failures():
    measured = _measured({"spatial": [0.5, 0.52, 0.51], "random": [0.5, 0.5, 0.52]})
    table = health.health_table(_logs(("spatial",)), measured, ("spatial",), SEEDS, has_random=True)
    page = "\n".join(health_section({"health": table, "seeds": SEEDS}))
    assert "## Training health" in page
    assert sum(line.startswith("| spatial |") for line in page.splitlines()) == 4  # 3 seeds and the model's row
    assert "Health check" in page and "spatial" in page and "not beyond the untrained network" in page
    assert "`--epochs` sets the budget" in page  # what to do about it


def _synthetic(spatial_cos, appearance_cos, spatial_dist, appearance_dist, families) -> dict:
    def stats(values):
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        return {"mean": mean, "std": std, "n": len(values)}

    return {
        m: {f: {"cosine": stats(c), "distance": stats(d)} for f in families}
        for m, c, d in (
            ("spatial", spatial_cos, spatial_dist),
            ("appearance", appearance_cos, appearance_dist),
        )
    }


def test_invariance_claims_are_checked_on_both_measures_and_disagreements_are_said():
    families = claims.SPATIAL_CLAIM_FAMILIES + claims.APPEARANCE_CLAIM_FAMILIES
    # cosine: spatial clearly more invariant everywhere; distance (lower: more invariant): appearance clearly is
    synthetic = _synthetic([0.8, 0.81, 0.82], [0.4, 0.41, 0.42], [9.0, 9.1, 9.2], [5.0, 5.1, 5.2], families)
    claim_1a, claim_1b = claims.invariance_claims(synthetic)
    assert claim_1a["verdict"] == claims.AGREES and claim_1a["verdict_distance"] == claims.DISAGREES
    assert claim_1a["metrics_agree"] is False and claim_1b["verdict_distance"] == claims.AGREES
    sentence = " ".join(claim_1a["disagreements"])
    assert "h_flip" in sentence and "whitened cosine" in sentence and "Mahalanobis" in sentence
    row = next(r for r in claim_1a["rows"] if r["family"] == "h_flip")
    assert row["distance_margin"] == pytest.approx(-4.0) and row["distance_beats"] is False
    same = _synthetic([0.8, 0.81, 0.82], [0.4, 0.41, 0.42], [5.0, 5.1, 5.2], [9.0, 9.1, 9.2], families)
    agreeing = claims.invariance_claims(same)[0]
    assert agreeing["metrics_agree"] is True and agreeing["disagreements"] == []


def test_a_degenerate_family_is_left_out_of_a_claim_and_named():
    families = claims.SPATIAL_CLAIM_FAMILIES + claims.APPEARANCE_CLAIM_FAMILIES
    synthetic = _synthetic([0.8, 0.81, 0.82], [0.4, 0.41, 0.42], [5.0, 5.1, 5.2], [9.0, 9.1, 9.2], families)
    for model in synthetic:
        synthetic[model]["translation"] = {
            "cosine": {"mean": None, "std": None, "n": 0},
            "distance": {"mean": None, "std": None, "n": 0},
            "degenerate": "every offset is 0 px",
        }
    claim_1a = claims.invariance_claims(synthetic)[0]
    assert [r["family"] for r in claim_1a["rows"]] == ["resized_crop", "scale", "h_flip"]
    assert claim_1a["verdict"] == claims.AGREES and "translation (degenerate" in claim_1a["summary"]


def test_one_seed_verdicts_read_needs_two_seeds():
    assert verdict_text(claims.UNASSESSABLE) == "needs >= 2 seeds"


def test_quick_preset_is_one_seed_and_explicit_flags_win():
    quick = study.config_from_args(study.parse_args(["--quick"]))
    assert quick.seeds == (0,) and quick == StudyConfig().with_(**QUICK)
    mine = study.config_from_args(study.parse_args(["--quick", "--epochs", "3", "--seeds", "4,5"]))
    assert mine.epochs == 3 and mine.seeds == (4, 5) and mine.num_images == QUICK["num_images"]


def test_defaults_are_three_seeds_of_the_chosen_budget():
    cfg = StudyConfig().validate()
    assert cfg.seeds == (0, 1, 2) and cfg.batch_size == 128 and cfg.queue_size == 1024
    assert cfg.moco_momentum == 0.99 and cfg.base_lr == 0.06 and cfg.shrinkage == "ledoit_wolf"


def test_loss_drop_counts_from_the_highest_window_as_the_queue_fills():
    # MoCo's loss rises while the queue fills with real keys, then falls and levels off
    steps, losses = _curve(lambda t: 5.0 + 2.0 * min(t / 0.2, 1.0) - 2.5 * (1 - math.exp(-8 * max(t - 0.2, 0.0))))
    flat = health.loss_flattened(steps, losses)
    assert flat["first"] > health.window_mean(steps, losses, 0.0, 0.1) + 0.5  # the peak, not the low start
    assert flat["passes"] and flat["total_drop"] > 1.5


def test_printed_verdicts_say_the_health_and_both_measures(capsys):
    report = {
        "health": {"healthy": False, "failures": ["spatial seed 0: loss still falling"]},
        "claims": [
            {"id": "1a", "verdict": claims.AGREES, "verdict_distance": claims.DISAGREES, "summary": "s1"},
            {"id": "5", "verdict": claims.UNASSESSABLE, "verdict_distance": None, "summary": "s5"},
        ],
    }
    study.print_verdicts(report)
    printed = capsys.readouterr().out
    assert "training health: NOT every model is healthy\n  spatial seed 0: loss still falling" in printed
    assert "claim 1a: agrees with the paper (Mahalanobis distance: **DISAGREES with the paper**): s1" in printed
    assert "claim 5: needs >= 2 seeds: s5" in printed
