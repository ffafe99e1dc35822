"""The paper's claims (docs/METHOD.md section 11) checked on the study's numbers, with the spread over seeds.

A comparison of two seed-averaged scores a and b has ``margin = mean(a) - mean(b)`` and ``spread = sqrt(std(a)^2 +
std(b)^2)`` (the seed standard deviations, ddof 1, combined as for a difference). "a beats b" means margin > spread;
"a is within noise of b" means margin >= -spread. With one seed there is no spread and a claim that needs one is
reported as not assessable. Verdicts are "agrees", "disagrees" or "not assessable"; nothing is tuned toward them.

The claims that rest on invariance (1a, 1b, 1c, 2) are checked on both measures the measurement gives: the whitened
cosine (``verdict``; higher: more invariant) and the Mahalanobis distance (``verdict_distance``; lower: more
invariant, so its margin is distance(other) - distance(model)). ``metrics_agree`` says whether the two verdicts are
the same, and ``disagreements`` holds a sentence for every comparison the two measures rank the other way round and
for differing verdicts. A degenerate transform family (not scored) is left out of a claim and named in its summary.
"""

from __future__ import annotations

import math

from inv_kernels.data import LATENT_NAMES
from inv_kernels.study.aggregate import family_average, latent_group_average

SPATIAL_CLAIM_FAMILIES = ("resized_crop", "translation", "scale", "h_flip")
APPEARANCE_CLAIM_FAMILIES = ("brightness", "contrast", "saturation", "hue", "grayscale", "blur")
# The families that the recipes' own augmentations apply (random resized crop and flip; colour jitter, grayscale, blur).
SPATIAL_AUGMENTATION_FAMILIES = ("resized_crop", "h_flip")
APPEARANCE_AUGMENTATION_FAMILIES = APPEARANCE_CLAIM_FAMILIES
HUE_LATENTS = tuple(LATENT_NAMES[i] for i in (7, 8, 9))
POSE_LATENTS = tuple(LATENT_NAMES[i] for i in range(7))  # position, rotation and spotlight position (docs/METHOD.md 5)
CORE = ("default", "spatial", "appearance")
FUSION3 = "default+spatial+appearance"
AGREES, DISAGREES, UNASSESSABLE = "agrees", "disagrees", "not assessable"


def compare(a: dict, b: dict) -> dict:
    """{"margin", "spread", "beats", "within_noise"} of seed_stats a against b (spread None with one seed)."""
    margin = a["mean"] - b["mean"]
    spread = math.sqrt(a["std"] ** 2 + b["std"] ** 2) if a["std"] is not None and b["std"] is not None else None
    return {
        "margin": margin,
        "spread": spread,
        "beats": None if spread is None else margin > spread,
        "within_noise": None if spread is None else margin >= -spread,
    }


def _verdict(flags: list, need_all: bool) -> str:
    if any(f is None for f in flags) or not flags:
        return UNASSESSABLE
    return AGREES if (all(flags) if need_all else any(flags)) else DISAGREES


def _claim(cid: str, paper: str, test: str, verdict: str, summary: str, rows: list[dict]) -> dict:
    return {
        "id": cid,
        "paper": paper,
        "test": test,
        "verdict": verdict,
        "summary": summary,
        "rows": rows,
        "verdict_distance": None,  # claims that rest on invariance set it (``_on_both_measures``)
        "metrics_agree": None,
        "disagreements": [],
    }


def compare_both(cos_a: dict, cos_b: dict, dist_a: dict, dist_b: dict) -> dict:
    """``compare`` of a against b on the whitened cosine, and its ``distance_*`` counterparts on the Mahalanobis
    distance, where lower is more invariant (distance_margin = distance(b) - distance(a), positive when a is more
    invariant)."""
    d = compare(dist_b, dist_a)
    return {**compare(cos_a, cos_b), **{f"distance_{k}": v for k, v in d.items()}}


def _on_both_measures(claim: dict, flag: str, need_all: bool, label: str) -> dict:
    """Sets the claim's distance verdict, whether the measures agree and a sentence per disagreement. ``flag`` is
    the row test ("beats" or "within_noise"); ``label`` the row key naming the comparison; a row's "model" and
    "other" name the two sides."""
    claim["verdict_distance"] = _verdict([r[f"distance_{flag}"] for r in claim["rows"]], need_all=need_all)
    claim["metrics_agree"] = claim["verdict_distance"] == claim["verdict"]
    sentences = []
    if not claim["metrics_agree"]:
        sentences.append(
            f"Claim {claim['id']}: the whitened cosine gives '{claim['verdict']}' and the Mahalanobis distance "
            f"'{claim['verdict_distance']}'."
        )
    for r in claim["rows"]:
        if (r["margin"] > 0) != (r["distance_margin"] > 0):
            sentences.append(
                f"On {r[label]} (claim {claim['id']}), the whitened cosine ranks the {r['model']} model "
                f"{_side(r['margin'])} the {r['other']} model ({r['margin']:+.3f}), the Mahalanobis distance ranks it "
                f"{_side(r['distance_margin'])} ({r['distance_margin']:+.3f})."
            )
    claim["disagreements"] = sentences
    return claim


def _side(margin: float) -> str:
    return "above" if margin > 0 else "below"


def _degenerate_note(families: list[str]) -> str:
    return f"; left out: {', '.join(f'{f} (degenerate: its views leave the images unchanged)' for f in families)}"


def _fmt(c: dict) -> str:
    spread = "n/a" if c["spread"] is None else f"{c['spread']:.3f}"
    return f"{c['margin']:+.3f} (spread {spread})"


def invariance_claims(synthetic: dict) -> list[dict]:
    """Claim 1: each specialised model is more invariant to the transforms it was trained with."""
    claims = []
    for cid, families, winner, loser, kind in (
        ("1a", SPATIAL_CLAIM_FAMILIES, "spatial", "appearance", "spatial"),
        ("1b", APPEARANCE_CLAIM_FAMILIES, "appearance", "spatial", "appearance"),
    ):
        rows, degenerate = [], []
        for family in families:
            w, lo = synthetic[winner][family], synthetic[loser][family]
            if any(x["cosine"]["mean"] is None or x["distance"]["mean"] is None for x in (w, lo)):
                degenerate.append(family)
                continue
            c = compare_both(w["cosine"], lo["cosine"], w["distance"], lo["distance"])
            rows.append(
                {"family": family, "model": winner, "other": loser}
                | {winner: w["cosine"]["mean"], loser: lo["cosine"]["mean"], **c}
            )
        verdict = _verdict([r["beats"] for r in rows], need_all=True)
        ahead = sum(r["margin"] > 0 for r in rows)
        beyond = sum(bool(r["beats"]) for r in rows)
        summary = (
            f"the {winner} model is more invariant than the {loser} model on {ahead} of {len(rows)} {kind} "
            f"families, by more than the seed spread on {beyond} of {len(rows)}"
        ) + (_degenerate_note(degenerate) if degenerate else "")
        claim = _claim(
            cid,
            f"[A] models become invariant to their training augmentations: {winner} > {loser} on {kind} "
            f"transforms ({', '.join(families)})",
            "invariance margin > seed spread on every family (whitened cosine; also Mahalanobis distance)",
            verdict,
            summary,
            rows,
        )
        claims.append(_on_both_measures(claim, "beats", True, "family"))
    return claims


def default_claim(measured: dict, seeds) -> dict:
    """Claim 1c: the default model is high on both kinds (at least as invariant as the model not trained on a kind)."""
    rows = []
    for kind, families, other in (
        ("spatial", SPATIAL_CLAIM_FAMILIES, "appearance"),
        ("appearance", APPEARANCE_CLAIM_FAMILIES, "spatial"),
    ):
        d, o = family_average(measured, "default", seeds, families), family_average(measured, other, seeds, families)
        dd = family_average(measured, "default", seeds, families, key="distance_mean")
        od = family_average(measured, other, seeds, families, key="distance_mean")
        rows.append(
            {"kind": kind, "label": f"the {kind} families", "model": "default", "other": other}
            | {"default": d["mean"], other: o["mean"]}
            | compare_both(d, o, dd, od)
        )
    verdict = _verdict([r["within_noise"] for r in rows], need_all=True)
    summary = "; ".join(f"{r['kind']} families: default minus {r['other']} {_fmt(r)}" for r in rows)
    claim = _claim(
        "1c",
        "[A] (docs/METHOD.md 11, claim 1) the default model is high on both kinds of transform",
        "default's mean invariance over each kind's claim families >= that of the model not trained on "
        "that kind, within noise (whitened cosine; also Mahalanobis distance)",
        verdict,
        summary,
        rows,
    )
    return _on_both_measures(claim, "within_noise", True, "label")


def realworld_claim(realworld: dict) -> dict:
    """Claim 2: the invariance carries over to real pose (viewpoint) and lighting changes."""
    rows = []
    for name, entry in realworld["spatial"].items():
        if entry["factor"] not in ("viewpoint", "appearance"):
            continue
        winner, loser = ("spatial", "appearance") if entry["factor"] == "viewpoint" else ("appearance", "spatial")
        w, lo = realworld[winner][name], realworld[loser][name]
        c = compare_both(w["cosine_off_diagonal"], lo["cosine_off_diagonal"], w["distance"], lo["distance"])
        rows.append(
            {"set": name, "factor": entry["factor"], "expected_winner": winner, "model": winner, "other": loser, **c}
        )
    verdict = _verdict([r["beats"] for r in rows], need_all=True)
    summary = "; ".join(f"{r['set']}: {r['expected_winner']} minus other {_fmt(r)}" for r in rows)
    claim = _claim(
        "2",
        "[A] learned invariance carries over to real changes of pose and lighting ([D] spatial > "
        "appearance on viewpoint groups, appearance > spatial on lighting groups)",
        "off-diagonal group invariance, margin > seed spread on every group set (whitened cosine; also "
        "Mahalanobis distance)",
        verdict,
        summary,
        rows,
    )
    return _on_both_measures(claim, "beats", True, "set")


def latent_claim(latents: dict, seeds) -> dict:
    """Claim 4 (extrinsic): hue latents are less recoverable from the appearance model, pose latents from the
    spatial model (not more recoverable, at least)."""
    rows = []
    hue = compare(
        latent_group_average(latents, "spatial", seeds, HUE_LATENTS),
        latent_group_average(latents, "appearance", seeds, HUE_LATENTS),
    )
    rows.append(
        {
            "latents": "hues (7-9)",
            "expected": "R2 appearance < spatial",
            "test": "spatial beats appearance",
            **hue,
            "holds": hue["beats"],
        }
    )
    pose = compare(
        latent_group_average(latents, "spatial", seeds, POSE_LATENTS),
        latent_group_average(latents, "appearance", seeds, POSE_LATENTS),
    )
    rows.append(
        {
            "latents": "position, rotation, spotlight (0-6)",
            "expected": "R2 spatial <= appearance",
            "test": "spatial minus appearance <= spread",
            **pose,
            "holds": None if pose["spread"] is None else pose["margin"] <= pose["spread"],
        }
    )
    verdict = _verdict([r["holds"] for r in rows], need_all=True)
    summary = "; ".join(f"{r['latents']}: R2 spatial minus appearance {_fmt(r)}" for r in rows)
    return _claim(
        "4",
        "[D] extrinsic invariance: hue latents less recoverable (lower kernel-ridge R2) from the "
        "appearance model, pose latents not more recoverable from the spatial model",
        "test R2 of RBF kernel ridge on the generated latents",
        verdict,
        summary,
        rows,
    )


def opposite_claim(transfer: dict) -> dict:
    """Claim 5: different tasks benefit from opposite invariances."""
    rows = []
    for task, t in transfer.items():
        if "spatial" in t["entries"] and "appearance" in t["entries"]:
            c = compare(t["entries"]["spatial"], t["entries"]["appearance"])
            rows.append({"task": task, "metric": t["metric"], "spatial_minus_appearance": c["margin"], **c})
    spatial_wins = [r["task"] for r in rows if r["beats"]]
    appearance_wins = [r["task"] for r in rows if r["spread"] is not None and -r["margin"] > r["spread"]]
    assessable = rows and all(r["spread"] is not None for r in rows)
    verdict = UNASSESSABLE if not assessable else AGREES if spatial_wins and appearance_wins else DISAGREES
    summary = (
        f"spatial beats appearance beyond the spread on: {', '.join(spatial_wins) or 'no task'}; appearance "
        f"beats spatial on: {', '.join(appearance_wins) or 'no task'}"
    )
    return _claim(
        "5",
        "[A] different downstream tasks benefit from opposite invariances",
        "some task where the spatial model beats the appearance model and another where the reverse holds, "
        "each beyond the seed spread",
        verdict,
        summary,
        rows,
    )


def specialised_claim(transfer: dict) -> dict:
    """Claim 6: a specialised model beats the default on some task."""
    rows = []
    for task, t in transfer.items():
        for model in ("spatial", "appearance"):
            if model in t["entries"] and "default" in t["entries"]:
                rows.append({"task": task, "model": model, **compare(t["entries"][model], t["entries"]["default"])})
    winners = [f"{r['model']} on {r['task']} ({_fmt(r)})" for r in rows if r["beats"]]
    verdict = _verdict([r["beats"] for r in rows], need_all=False)
    summary = "specialised models beating the default beyond the spread: " + ("; ".join(winners) or "none")
    return _claim(
        "6",
        "[A] the default augmentations lose performance on some task relative to a specialised model",
        "spatial or appearance model minus default > seed spread on at least one task",
        verdict,
        summary,
        rows,
    )


def fusion_claim(transfer: dict, against: str | None = None) -> dict:
    """Claim 7: the 3-model fusion is within noise of the best single model (or of ``against``) on every task."""
    rows = []
    for task, t in transfer.items():
        entries = t["entries"]
        if FUSION3 not in entries:
            continue
        if against is None:
            singles = [m for m in CORE if m in entries]
            best = max(singles, key=lambda m: entries[m]["mean"])
        else:
            best = against
        c = compare(entries[FUSION3], entries[best])
        rows.append(
            {
                "task": task,
                "metric": t["metric"],
                "fusion": entries[FUSION3]["mean"],
                "best_single": best,
                "best_score": entries[best]["mean"],
                **c,
            }
        )
    verdict = _verdict([r["within_noise"] for r in rows], need_all=True) if rows else UNASSESSABLE
    summary = "; ".join(f"{r['task']}: fusion minus {r['best_single']} {_fmt(r)}" for r in rows)
    if against is None:
        return _claim(
            "7",
            "[A] fusing complementary representations transfers well to all tasks ([D] the 3-model "
            "fusion is at least about as good as the best single model on every task)",
            "default+spatial+appearance minus the best single model >= -seed spread on every task",
            verdict,
            summary,
            rows,
        )
    return _claim(
        "7b",
        "[D] the 3-model fusion matches or beats the capacity-matched wide default",
        f"default+spatial+appearance minus {against} >= -seed spread on every task",
        verdict,
        summary,
        rows,
    )


def all_claims(synthetic, realworld, latents_per_seed, measured, transfer, seeds, has_wide: bool) -> list[dict]:
    """Every claim check, in the order of docs/METHOD.md section 11."""
    claims = invariance_claims(synthetic) + [
        default_claim(measured, seeds),
        realworld_claim(realworld),
        latent_claim(latents_per_seed, seeds),
        opposite_claim(transfer),
        specialised_claim(transfer),
        fusion_claim(transfer),
    ]
    if has_wide:
        claims.append(fusion_claim(transfer, against="wide"))
    return claims
