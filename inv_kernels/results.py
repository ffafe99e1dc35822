"""Result objects of the Python API: a measurement (``MeasureResult``), a transfer evaluation (``TransferResult``)
and several measurements side by side (``Comparison``). Each has ``to_dict()`` (the JSON the command-line tools
write), ``to_frame()`` (a pandas DataFrame, when pandas is installed) and ``plot()`` (a matplotlib figure).

A results file is read as JSON only: loading one never runs code from it.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any

from inv_kernels.io import atomic_write_json
from inv_kernels.reporting import annotate_cells, pyplot, write_csv, write_png

CHANCE = 0.0  # the whitened cosine of unrelated images: centred, whitened features are uncorrelated on average
SPATIAL, APPEARANCE = "tab:blue", "tab:orange"


def _pandas():
    try:
        import pandas
    except ImportError:
        raise ImportError("to_frame() needs pandas: pip install pandas") from None
    return pandas


def _number(value: Any) -> float:
    """A JSON score as a float: None (a degenerate family, an undefined score) is NaN."""
    return math.nan if value is None else float(value)


def read_json(path: str | os.PathLike, what: str, file_name: str | None = None) -> dict:
    """A results file's JSON object; ``path`` may also be the run's output folder that holds ``file_name``.

    Raises:
        FileNotFoundError: no such file. ValueError: not JSON, or not an object.
    """
    path = Path(path)
    if file_name and path.is_dir():
        path = path / file_name
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist or is not a file")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{what} {path} is not a JSON file: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} {path}: expected a JSON object, got {type(data).__name__}")
    return data


def curve_axis(values: list[dict]) -> tuple[str, list[float]]:
    """The x axis of a family's curve: (parameter name, its value per grid row) for the first scalar parameter that
    varies over the grid, else ("value index", 0..k-1)."""
    if values:
        for name in values[0]:
            column = [row.get(name) for row in values]
            scalar = all(isinstance(v, (int, float)) for v in column)  # a flag (bool) plots as 0 / 1
            if scalar and len(set(column)) > 1:
                return name, [float(v) for v in column]
    return "value index", [float(i) for i in range(len(values))]


class MeasureResult:
    """One measurement: the dict ``inv_kernels.measure.measure`` returns and results.json holds.

    Attributes:
        data: the results dict (model, settings, statistics, synthetic, realworld, provenance, ...).
    """

    def __init__(self, data: dict, name: str | None = None):
        if not isinstance(data, dict) or not isinstance(data.get("synthetic"), list):
            raise ValueError("MeasureResult: expected a measurement results dict with a 'synthetic' list")
        self.data = data
        self.name = name or data.get("model", {}).get("model_id", "model")

    @classmethod
    def load(cls, path: str | os.PathLike, name: str | None = None) -> MeasureResult:
        """Reads a measurement's results.json, or the one in the output folder ``path`` (as JSON only).

        Raises:
            FileNotFoundError, ValueError: no such file, not JSON, or not a measurement's results.
        """
        data = read_json(path, "results file", "results.json")
        if not isinstance(data.get("synthetic"), list) or not isinstance(data.get("model"), dict):
            raise ValueError(f"results file {path}: not a measurement's results.json (no 'model' and 'synthetic')")
        return cls(data, name)

    def __repr__(self) -> str:
        families = ", ".join(f"{r['family']}={_number(r['cosine_mean']):.3f}" for r in self.data["synthetic"])
        return f"MeasureResult({self.name!r}, whitened cosine: {families or 'no family'})"

    @property
    def cosine(self) -> dict[str, float]:
        """Family -> whitened cosine (mean over values; NaN for a degenerate family)."""
        return {r["family"]: _number(r["cosine_mean"]) for r in self.data["synthetic"]}

    @property
    def provenance(self) -> dict | None:
        return self.data.get("provenance")

    def to_dict(self) -> dict:
        """A deep copy of the results dict (JSON-ready)."""
        return copy.deepcopy(self.data)

    def value_rows(self) -> list[dict]:
        """One row per (family, parameter value): model, family, kind, value_index, the parameters, cosine,
        cosine_std (spread over images), distance, distance_std."""
        rows = []
        for r in self.data["synthetic"]:
            values = r.get("values") or [{} for _ in r["cosine_per_value"]]
            cos_std = r.get("cosine_std_per_value") or [None] * len(values)
            dist_std = r.get("distance_std_per_value") or [None] * len(values)
            for j, params in enumerate(values):
                rows.append(
                    {
                        "model": self.name,
                        "family": r["family"],
                        "kind": r["kind"],
                        "value_index": j,
                        **{f"param_{k}": v for k, v in params.items()},
                        "cosine": r["cosine_per_value"][j],
                        "cosine_std": cos_std[j],
                        "distance": r["distance_per_value"][j],
                        "distance_std": dist_std[j],
                    }
                )
        return rows

    def to_frame(self, table: str = "families"):
        """A pandas DataFrame: ``"families"`` (one row per family), ``"values"`` (one per family and parameter
        value) or ``"groups"`` (one per real-world group set).

        Raises:
            ImportError: pandas is not installed. ValueError: an unknown table.
        """
        pandas = _pandas()
        if table == "families":
            keep = ("family", "kind", "mode", "k", "num_images", "cosine_mean", "distance_mean", "degenerate")
            return pandas.DataFrame(
                [{"model": self.name, **{k: r.get(k) for k in keep}} for r in self.data["synthetic"]]
            )
        if table == "values":
            return pandas.DataFrame(self.value_rows())
        if table == "groups":
            rows = [{k: v for k, v in r.items() if k != "groups"} for r in self.data.get("realworld") or [] if r]
            return pandas.DataFrame([{"model": self.name, **r} for r in rows])
        raise ValueError(f"to_frame: table must be families, values or groups, got {table!r}")

    def plot(self):
        """Invariance against the transform parameter, one panel per family: the whitened cosine averaged over
        images, with a band of one standard deviation over images, and the chance level. Returns the figure."""
        return Comparison([self]).curves()


class TransferResult:
    """One transfer evaluation: the dict ``inv_kernels.transfer.evaluate_transfer`` returns (transfer.json)."""

    def __init__(self, data: dict):
        if not isinstance(data, dict) or not isinstance(data.get("results"), list):
            raise ValueError("TransferResult: expected a transfer results dict with a 'results' list")
        self.data = data

    @classmethod
    def load(cls, path: str | os.PathLike) -> TransferResult:
        """Reads a transfer.json, or the one in the output folder ``path`` (as JSON only)."""
        return cls(read_json(path, "transfer file", "transfer.json"))

    def __repr__(self) -> str:
        return f"TransferResult({len(self.data['results'])} model x task scores)"

    @property
    def scores(self) -> dict[tuple[str, str], float]:
        """(model or fusion, task) -> test score."""
        return {(r["model"], r["task"]): r["test_score"] for r in self.data["results"]}

    def to_dict(self) -> dict:
        return copy.deepcopy(self.data)

    def to_frame(self):
        """A pandas DataFrame, one row per model (or fusion) and task.

        Raises:
            ImportError: pandas is not installed.
        """
        return _pandas().DataFrame(self.data["results"])

    def plot(self):
        """Test score per model (grey) and fusion (green), one panel per task. Returns the figure."""
        plt = pyplot()
        rows = self.data["results"]
        tasks = sorted({r["task"] for r in rows})
        height = max(2.6, 0.35 * max((sum(r["task"] == t for r in rows) for t in tasks), default=1) + 1.4)
        fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(4.6 * max(1, len(tasks)), height), squeeze=False)
        for ax, task in zip(axes[0], tasks):
            mine = [r for r in rows if r["task"] == task]
            labels = [r["model"] + ("" if r["fusion"] == "single" else f" ({r['fusion']})") for r in mine]
            colours = ["tab:gray" if r["fusion"] == "single" else "tab:green" for r in mine]
            ax.barh(range(len(mine)), [r["test_score"] for r in mine], color=colours)
            ax.set_yticks(range(len(mine)), labels, fontsize=8)
            ax.invert_yaxis()  # read top to bottom, in the order evaluated
            ax.set_xlabel(f"test {mine[0]['metric']}")
            ax.set_title(task, fontsize=10)
        handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ("tab:gray", "tab:green")]
        fig.legend(handles, ["single model", "fusion"], loc="lower center", ncol=2, frameon=False)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        return fig


class Comparison:
    """Several measurements side by side.

    Args:
        results: MeasureResult objects (or results dicts), one per model.
        names: a label per model (default: each result's name; repeated names get a suffix).
    """

    def __init__(self, results: list[MeasureResult | dict], names: list[str] | None = None):
        results = [r if isinstance(r, MeasureResult) else MeasureResult(r) for r in results]
        if not results:
            raise ValueError("Comparison: expected at least one measurement, got none")
        if names is not None and len(names) != len(results):
            raise ValueError(f"Comparison: expected one name per result ({len(results)}), got {len(names)}")
        labels, seen = [], {}
        for label in names or [r.name for r in results]:
            seen[label] = seen.get(label, 0) + 1
            labels.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
        self.results, self.names = results, labels
        families: dict[str, str] = {}
        for result in results:
            for r in result.data["synthetic"]:
                families.setdefault(r["family"], r["kind"])
        # spatial families first, as in the measurement's own figure
        self.families = sorted(families, key=lambda f: (families[f] != "spatial", f))
        self.kinds = families
        self.group_sets = list(
            dict.fromkeys(g["name"] for result in results for g in result.data.get("realworld") or [] if g)
        )

    @classmethod
    def load(cls, paths: list[str | os.PathLike], names: list[str] | None = None) -> Comparison:
        """Reads several results.json files (``NAME=PATH`` entries name their model; else the model's id)."""
        results, labels = [], []
        for entry in paths:
            name, sep, path = str(entry).partition("=")
            if not sep or Path(str(entry)).exists():
                name, path = None, str(entry)
            result = MeasureResult.load(path, name)
            results.append(result)
            labels.append(result.name)
        return cls(results, names or labels)

    def __repr__(self) -> str:
        return f"Comparison({len(self.names)} models x {len(self.families)} families)"

    def _family_row(self, result: MeasureResult, family: str) -> dict | None:
        return next((r for r in result.data["synthetic"] if r["family"] == family), None)

    def _group_row(self, result: MeasureResult, name: str) -> dict | None:
        return next((g for g in result.data.get("realworld") or [] if g and g["name"] == name), None)

    def matrix(self) -> list[list[float]]:
        """models x families whitened cosine (NaN where a model lacks the family or it is degenerate)."""
        rows = []
        for result in self.results:
            found = [self._family_row(result, f) for f in self.families]
            rows.append([math.nan if r is None else _number(r["cosine_mean"]) for r in found])
        return rows

    def rows(self) -> list[dict]:
        """One row per model and measure (a family, or a real-world group set): model, model_id, measure, kind,
        cosine, spread (the standard deviation over parameter values, or over groups), distance."""
        out = []
        for name, result in zip(self.names, self.results):
            model_id = result.data.get("model", {}).get("model_id")
            for family in self.families:
                r = self._family_row(result, family)
                if r is None:
                    continue
                per_value = [v for v in r["cosine_per_value"] if v is not None and not math.isnan(v)]
                out.append(
                    {
                        "model": name,
                        "model_id": model_id,
                        "measure": family,
                        "kind": r["kind"],
                        "cosine": r["cosine_mean"],
                        "spread": _std(per_value),
                        "distance": r["distance_mean"],
                    }
                )
            for group_set in self.group_sets:
                g = self._group_row(result, group_set)
                if g is None:
                    continue
                per_group = [row["cosine_with_diagonal"] for row in g.get("groups", [])]
                out.append(
                    {
                        "model": name,
                        "model_id": model_id,
                        "measure": group_set,
                        "kind": "realworld",
                        "cosine": g["cosine_with_diagonal"],
                        "spread": _std(per_group),
                        "distance": g["distance"],
                    }
                )
        return out

    def to_dict(self) -> dict:
        """{"models", "families", "group_sets", "cosine" (models x families, None where absent), "rows",
        "provenance" (per model)}."""
        return {
            "models": self.names,
            "families": self.families,
            "group_sets": self.group_sets,
            "cosine": [[None if math.isnan(v) else v for v in row] for row in self.matrix()],
            "rows": self.rows(),
            "provenance": {name: r.provenance for name, r in zip(self.names, self.results)},
        }

    def to_frame(self):
        """A pandas DataFrame of ``rows()``.

        Raises:
            ImportError: pandas is not installed.
        """
        return _pandas().DataFrame(self.rows())

    def plot(self):
        """The heat map of models x families (``heatmap()``)."""
        return self.heatmap()

    def heatmap(self):
        """Whitened cosine of each model (rows) on each family (columns), the value in each cell. Returns the
        figure."""
        plt = pyplot()
        values = self.matrix()
        width = max(6.0, 0.62 * len(self.families) + 0.09 * max(len(n) for n in self.names) + 2.2)
        fig, ax = plt.subplots(figsize=(width, 1.2 + 0.5 * len(self.names) + 1.1))
        image = ax.imshow(values, cmap="viridis", vmin=min(0.0, _low(values)), vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(self.families)), self.families, rotation=50, ha="right", fontsize=8)
        ax.set_yticks(range(len(self.names)), self.names, fontsize=9)
        for tick, family in zip(ax.get_xticklabels(), self.families):
            tick.set_color(SPATIAL if self.kinds[family] == "spatial" else APPEARANCE)
        annotate_cells(ax, values, "{:.2f}", white=lambda value: value < 0.6, missing="n/a")
        ax.set_xlabel("transform family (blue: spatial, orange: appearance)")
        ax.set_ylabel("model")
        fig.colorbar(image, ax=ax, label="whitened cosine (1: invariant, 0: chance)", fraction=0.04, pad=0.02)
        ax.set_title("Invariance per transform family", fontsize=10)
        fig.tight_layout()
        return fig

    def curves(self):
        """Per family, the whitened cosine against the transform parameter for every model (mean over images, with
        a band of one standard deviation over images), and the chance level. Returns the figure."""
        plt = pyplot()
        columns = min(4, max(1, len(self.families)))
        rows = max(1, math.ceil(len(self.families) / columns))
        fig, axes = plt.subplots(rows, columns, figsize=(3.3 * columns, 2.7 * rows + 0.7), squeeze=False)
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for ax, family in zip(axes.flat, self.families):
            label = "value index"
            for m, (name, result) in enumerate(zip(self.names, self.results)):
                r = self._family_row(result, family)
                if r is None or r.get("degenerate"):
                    continue
                label, x = curve_axis(r.get("values") or [{}] * len(r["cosine_per_value"]))
                y = [_number(v) for v in r["cosine_per_value"]]
                colour = colours[m % len(colours)]
                style = "--" if str(result.data.get("model", {}).get("model_id", "")).startswith("random:") else "-"
                ax.plot(x, y, style, color=colour, lw=1.3, marker="o" if len(x) <= 12 else None, ms=3, label=name)
                spread = r.get("cosine_std_per_value") or []
                if len(spread) == len(y):
                    low = [a - _number(s) for a, s in zip(y, spread)]
                    high = [a + _number(s) for a, s in zip(y, spread)]
                    ax.fill_between(x, low, high, color=colour, alpha=0.15, lw=0)
            ax.axhline(CHANCE, color="0.4", ls=":", lw=1)
            ax.set_title(family, fontsize=9, color=SPATIAL if self.kinds[family] == "spatial" else APPEARANCE)
            ax.set_xlabel(label, fontsize=8)
            ax.set_ylabel("whitened cosine", fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[len(self.families) :]:
            ax.axis("off")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        handles.append(plt.Line2D([], [], color="0.4", ls=":", lw=1))
        labels.append("chance (unrelated images)")
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), frameon=False, fontsize=8)
        fig.suptitle("Invariance against the transform parameter (band: 1 s.d. over images)", fontsize=10)
        fig.tight_layout(rect=(0, 0.1 if rows == 1 else 0.06, 1, 0.97))
        return fig

    def groups(self):
        """Real-world group sets as bars per model: the paper's whitened cosine (mean over groups), error bars one
        standard deviation over groups, and the chance level. Returns the figure, or None without group sets."""
        if not self.group_sets:
            return None
        plt = pyplot()
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        width = 0.8 / len(self.names)
        fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(self.group_sets) + 2.5) + 2.2, 3.8))
        for m, (name, result) in enumerate(zip(self.names, self.results)):
            found = [self._group_row(result, g) for g in self.group_sets]
            means = [math.nan if g is None else g["cosine_with_diagonal"] for g in found]
            errors = [
                0.0 if g is None else _std([row["cosine_with_diagonal"] for row in g.get("groups", [])]) for g in found
            ]
            positions = [i - 0.4 + width * (m + 0.5) for i in range(len(self.group_sets))]
            ax.bar(positions, means, width, yerr=errors, capsize=3, color=colours[m % len(colours)], label=name)
        ax.axhline(CHANCE, color="0.4", ls=":", lw=1, label="chance (unrelated images)")
        ax.set_xticks(range(len(self.group_sets)), self.group_sets, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("whitened cosine within groups")
        ax.set_xlabel("real-world group set (error bars: 1 s.d. over groups)")
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title("Invariance across real multi-view groups", fontsize=10)
        fig.tight_layout()
        return fig

    def write(self, out: str | os.PathLike) -> dict[str, Path]:
        """compare.json, compare.csv, compare_heatmap.png, compare_curves.png and (with group sets)
        compare_groups.png under ``out`` (made if needed); returns the paths written."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = {
            "json": atomic_write_json(self.to_dict(), out / "compare.json"),
            "csv": write_csv(self.rows(), out / "compare.csv"),
            "heatmap": write_png(self.heatmap(), out / "compare_heatmap.png"),
            "curves": write_png(self.curves(), out / "compare_curves.png"),
        }
        figure = self.groups()
        if figure is not None:
            written["groups"] = write_png(figure, out / "compare_groups.png")
        return written


def _std(values: list[float]) -> float | None:
    """The population standard deviation of finite values, or None when there are none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    mean = sum(finite) / len(finite)
    return math.sqrt(sum((v - mean) ** 2 for v in finite) / len(finite))


def _low(matrix: list[list[float]]) -> float:
    finite = [v for row in matrix for v in row if math.isfinite(v)]
    return min(finite) if finite else 0.0
