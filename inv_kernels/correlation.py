"""Relating invariance to transfer across models: for each transform family (and real-world group set) and each
task, the Spearman and Pearson correlation between the invariance (whitened cosine) and the transfer score, and a
heat map of them. ``python -m pipelines.correlate`` is the command-line front end; the study report uses it too.
With fewer than 3 models (or a constant column) a correlation is undefined and left as None."""

import json
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

from inv_kernels.reporting import annotate_cells, pyplot, write_png


def load_json(path: str, what: str) -> dict:
    """The JSON object in the file at ``path``; FileNotFoundError / IsADirectoryError / ValueError name it (``what``:
    the kind of file)."""
    file = Path(path)
    if file.is_dir():
        raise IsADirectoryError(f"{what} file {file} is a folder, not a JSON file")
    if not file.is_file():
        raise FileNotFoundError(f"{what} file {file} does not exist")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{what} file {file} is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} file {file} holds a JSON {type(data).__name__}, expected an object")
    return data


def invariance_table(pairs: list[str]) -> dict[str, dict[str, float]]:
    """model name -> {measure name -> whitened cosine}, from NAME=results.json pairs of pipelines.measure."""
    table = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--invariance expects NAME=PATH, got {pair!r}")
        results = load_json(path, "invariance")
        try:
            row = {r["family"]: r["cosine_mean"] for r in results.get("synthetic", []) if r["cosine_mean"] is not None}
            row.update({f"real:{r['name']}": r["cosine_off_diagonal"] for r in results.get("realworld", [])})
        except (KeyError, TypeError) as error:
            raise ValueError(
                f"invariance file {path} is not a results.json of pipelines.measure (malformed row: "
                f"{type(error).__name__}: {error})"
            ) from None
        if not row:
            raise ValueError(f"invariance file {path} holds no synthetic or real-world results")
        table[name] = row
    return table


def transfer_table(path: str) -> dict[str, dict[str, float]]:
    """model name -> {task -> test score}, from the JSON of pipelines.transfer."""
    results = load_json(path, "transfer")
    table: dict[str, dict[str, float]] = {}
    try:
        for row in results.get("results", []):
            table.setdefault(row["model"], {})[row["task"]] = row["test_score"]
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"transfer file {path} is not a transfer.json of pipelines.transfer (malformed row: "
            f"{type(error).__name__}: {error})"
        ) from None
    if not table:
        raise ValueError(f"transfer file {path} holds no results")
    return table


def correlate(invariance: dict, transfer: dict) -> list[dict]:
    """One row per (measure, task): Spearman and Pearson correlation over the models present in both tables."""
    models = sorted(set(invariance) & set(transfer))
    measures = sorted({m for name in models for m in invariance[name]})
    tasks = sorted({t for name in models for t in transfer[name]})
    rows = []
    for measure in measures:
        for task in tasks:
            used = [n for n in models if measure in invariance[n] and task in transfer[n]]
            x = np.array([invariance[n][measure] for n in used])
            y = np.array([transfer[n][task] for n in used])
            defined = len(used) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0
            rows.append(
                {
                    "measure": measure,
                    "task": task,
                    "models": len(used),
                    "spearman": float(scipy_stats.spearmanr(x, y).statistic) if defined else None,
                    "pearson": float(scipy_stats.pearsonr(x, y).statistic) if defined else None,
                }
            )
    return rows


def heatmap(rows: list[dict], key: str, path: Path) -> Path:
    """Writes a measures x tasks heat map of ``key`` ("spearman" or "pearson") of ``correlate``'s rows as a PNG."""
    plt = pyplot()
    measures = sorted({r["measure"] for r in rows})
    tasks = sorted({r["task"] for r in rows})
    grid = np.full((len(measures), len(tasks)), np.nan)
    for r in rows:
        if r[key] is not None:
            grid[measures.index(r["measure"]), tasks.index(r["task"])] = r[key]
    label_inches = 0.075 * max((len(m) for m in measures), default=0)  # the measure names on the left
    fig, ax = plt.subplots(figsize=(2.6 + label_inches + 0.9 * len(tasks), 1.4 + 0.32 * len(measures)))
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    annotate_cells(ax, grid, "{:+.2f}", white=lambda value: abs(value) > 0.6)
    ax.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right")
    ax.set_yticks(range(len(measures)), measures)
    ax.set_xlabel("transfer task")
    ax.set_title(f"{key.capitalize()} correlation of invariance with transfer", fontsize=10)
    fig.colorbar(image, ax=ax, label=f"{key} correlation (blank: undefined)")
    fig.tight_layout()
    return write_png(fig, path)
