"""The toolkit's speed and memory goals on an H100, and the verdict of a benchmarks/gpu_report.py run on each.

A goal names a report case (kernel, shape) and the input dtypes it is about; the verdict takes the fastest of our
backends over those rows (a goal about float32 features counts the plain float32 row and the TF32 one, since the
goal's eager baseline ran with TF32). Goals are H100 goals: on another device they are listed as not measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmarks import _workloads as work
from inv_kernels.reporting import markdown_table

NOT_OURS = {"reference", "torchvision", "inf-cl", "numpy", "torch float64"}  # baselines and rivals


# The parts of the toolkit a goal is about.
SCORING = "invariance scoring"
LOSSES = "contrastive losses"
AUGMENT = "fused augmentation"
MEASURE = "invariance measurement"
LOADER = "two-view loader"
PROBES = "linear probes"
PARTS = (SCORING, LOSSES, AUGMENT, MEASURE, LOADER, PROBES)


@dataclass(frozen=True)
class Goal:
    part: str  # the part of the toolkit it is about (one of PARTS)
    text: str
    kernel: str
    shape: str
    dtypes: tuple[str, ...]
    max_ms: float | Callable[[str], float] | None = None  # or a function of the shape
    max_mib: float | None = None  # peak extra device memory
    beat: str | None = None  # an implementation to beat on time and on memory
    elsewhere: str | None = None  # a goal this report does not time: the command that does


def _fused_views_ms(views_per_s: float) -> Callable[[str], float]:
    """The time limit of a fused_augment case at ``views_per_s``."""
    return lambda shape: work.fused_augment_views(shape) / views_per_s * 1e3


_SCORES = work.INVARIANCE_SCORES_GPU[0]
_NTXENT_SMALL, _NTXENT_LARGE = work.NTXENT_GPU
_MOCO_V2, _MOCO_LARGE = work.MOCO_GPU
_NXN = work.CONTRASTIVE_NXN_GPU[0]
_FUSED_224 = work.fused_augment_shape(work.FUSED_AUGMENT_GPU_BATCH, 224)
_LOGISTIC = work.LOGISTIC_CV


def _named(shape: str, names: str) -> str:
    """A shape in words: _named("256x65536x128", "N K D") -> "N=256, K=65536, D=128" ("_" skips a dimension)."""
    return ", ".join(f"{name}={value}" for name, value in zip(names.split(), work.dims(shape)) if name != "_")


GOALS = [
    Goal(
        SCORING,
        f"scores {_named(_SCORES, 'n k D')} in <= 8 ms (float32 features)",
        "invariance_scores",
        _SCORES,
        ("float32", "tf32"),
        max_ms=8.0,
    ),
    Goal(
        SCORING,
        f"scores {_named(_SCORES, 'n k D')} in <= 3.5 ms (bfloat16 features)",
        "invariance_scores",
        _SCORES,
        ("bfloat16",),
        max_ms=3.5,
    ),
    Goal(
        LOSSES,
        f"NT-Xent {_named(_NTXENT_LARGE, 'N D')} fwd+bwd in <= 12 ms with <= 0.5 GiB extra",
        "ntxent fwd+bwd",
        _NTXENT_LARGE,
        ("float32", "tf32"),
        max_ms=12.0,
        max_mib=512.0,
    ),
    Goal(
        LOSSES,
        f"NT-Xent {_named(_NTXENT_SMALL, 'N D')} fwd+bwd in <= 0.6 ms",
        "ntxent fwd+bwd",
        _NTXENT_SMALL,
        ("float32", "tf32"),
        max_ms=0.6,
    ),
    Goal(
        LOSSES,
        f"MoCo {_named(_MOCO_V2, 'N K D')} fwd+bwd in <= 0.2 ms",
        "infonce fwd+bwd",
        _MOCO_V2,
        ("float32", "tf32"),
        max_ms=0.2,
    ),
    Goal(
        LOSSES,
        f"MoCo {_named(_MOCO_LARGE, 'N K D')} fwd+bwd in <= 1 ms with <= 64 MB extra",
        "infonce fwd+bwd",
        _MOCO_LARGE,
        ("float32", "tf32"),
        max_ms=1.0,
        max_mib=64e6 / 2**20,
    ),
    Goal(
        LOSSES,
        f"beat Inf-CL on time and memory (N x N logits, {_named(_NXN, 'N _ D')})",
        "contrastive N x N logits (vs Inf-CL)",
        _NXN,
        ("float32",),
        beat="inf-cl",
    ),
    Goal(
        AUGMENT,
        ">= 1,000,000 default-recipe views/s at 224 x 224 from uint8",
        "fused_augment (2 views, default)",
        _FUSED_224,
        ("float32", "bfloat16"),
        max_ms=_fused_views_ms(1e6),
    ),
    Goal(
        MEASURE,
        "one synthetic family for a ResNet-50, 1000 images x 256 values, end to end in <= 60 s",
        "",
        "",
        (),
        elsewhere="time python -m pipelines.measure --model random:resnet50 --num-images 1000 --transforms <family>",
    ),
    Goal(
        LOADER,
        "DALI two-view pipeline >= 3x the torchvision DataLoader on real JPEGs",
        "",
        "",
        (),
        elsewhere="bash benchmarks/gpu_session.sh loader <image folder> (benchmarks/loader_report.py)",
    ),
    Goal(
        PROBES,
        f"logistic 45 x 5 CV protocol on {_LOGISTIC['n']:,} x {_LOGISTIC['d']}, {_LOGISTIC['classes']} "
        "classes, in <= 10 s",
        "",
        "",
        (),
        elsewhere="asv run --bench LogisticCVGPU on a GPU (benchmarks/benchmarks/bench_probes.py)",
    ),
]


def _ours(rows: list[dict], goal: Goal) -> list[dict]:
    return [
        r
        for r in rows
        if r["kernel"] == goal.kernel
        and r["shape"] == goal.shape
        and r["dtype"] in goal.dtypes
        and r["impl"] not in NOT_OURS
        and "time_ms" in r
    ]


def evaluate(report: dict) -> list[dict]:
    """One verdict per goal: "met", "NOT met" or "not measured", with the best row of ours that it rests on."""
    on_gpu = report["device"].startswith("cuda") and not report["quick"]
    verdicts = []
    for goal in GOALS:
        verdict = {"part": goal.part, "goal": goal.text, "verdict": "not measured", "best": None}
        rows = _ours(report["rows"], goal) if on_gpu else []
        if goal.elsewhere is not None:
            verdict["why"] = f"not timed by this report: {goal.elsewhere}"
        elif not on_gpu:
            verdict["why"] = "an H100 goal; this run is " + ("quick" if report["quick"] else report["device"])
        elif not rows:
            verdict["why"] = "no row of ours ran for this case"
        else:
            best = min(rows, key=lambda r: r["time_ms"])
            verdict["best"] = {k: best.get(k) for k in ("impl", "dtype", "time_ms", "peak_mib")}
            met = True
            if goal.max_ms is not None:
                limit = goal.max_ms(goal.shape) if callable(goal.max_ms) else goal.max_ms
                verdict["limit_ms"] = limit
                met &= best["time_ms"] <= limit
            if goal.max_mib is not None:
                verdict["limit_mib"] = goal.max_mib
                met &= best.get("peak_mib") is not None and best["peak_mib"] <= goal.max_mib
            if goal.beat is not None:
                rival = [
                    r
                    for r in report["rows"]
                    if r["kernel"] == goal.kernel
                    and r["shape"] == goal.shape
                    and r["impl"] == goal.beat
                    and "time_ms" in r
                ]
                if not rival:
                    verdict.update(verdict="not measured", why=f"{goal.beat} did not run")
                    verdicts.append(verdict)
                    continue
                verdict["rival"] = {k: rival[0].get(k) for k in ("time_ms", "peak_mib")}
                met &= best["time_ms"] < rival[0]["time_ms"] and (best.get("peak_mib") or 0) < (
                    rival[0].get("peak_mib") or 0
                )
            verdict["verdict"] = "met" if met else "NOT met"
        verdicts.append(verdict)
    return verdicts


def markdown(verdicts: list[dict]) -> list[str]:
    """The goals section of the report."""
    rows = []
    for v in verdicts:
        best = v["best"]
        if best is None:
            rows.append([v["part"], v["goal"], f"{v['verdict']} ({v.get('why', '')})", "", "", ""])
            continue
        peak = "n/a" if best.get("peak_mib") is None else f"{best['peak_mib']:.1f}"
        verdict = f"**{v['verdict']}**" if v["verdict"] != "met" else "met"
        rows.append([v["part"], v["goal"], verdict, f"{best['impl']}, {best['dtype']}", f"{best['time_ms']:.4g}", peak])
    header = ["part", "goal", "verdict", "best of ours (impl, dtype)", "time (ms)", "peak (MiB)"]
    return ["", "## Speed and memory goals", "", markdown_table(header, rows, align="llllrr")]
