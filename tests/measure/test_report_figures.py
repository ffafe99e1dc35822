"""The measurement's figure: axis labels, a legend with the chance level, a chance line on each panel, degenerate
families labelled and left without a bar."""

import math

from inv_kernels.measure.report import plot_synthetic, synthetic_figure


def _rows():
    row = {"kind": "spatial", "cosine_mean": 0.7, "distance_mean": 3.0}
    return [
        {**row, "family": "rotation"},
        {**row, "family": "translation", "cosine_mean": None, "distance_mean": None, "degenerate": "0 px"},
        {**row, "family": "hue", "kind": "appearance", "cosine_mean": 0.2, "distance_mean": 9.0},
    ]


def test_figure_has_labels_legend_and_chance_lines():
    figure = synthetic_figure(_rows(), "model", dim=8)
    cosine, distance = figure.axes
    assert cosine.get_ylabel() == "whitened cosine" and distance.get_ylabel() == "Mahalanobis distance"
    assert cosine.get_xlabel() == distance.get_xlabel() == "transform family"
    lines = {ax: [line.get_ydata()[0] for line in ax.get_lines()] for ax in (cosine, distance)}
    assert lines[cosine] == [0.0] and math.isclose(lines[distance][0], 4.0)  # sqrt(2 * 8)
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels == ["spatial", "appearance", "chance (unrelated images)"]
    assert [t.get_text() for t in cosine.get_xticklabels()][1] == "translation (degenerate)"
    assert math.isnan(cosine.patches[1].get_height())


def test_plot_writes_a_png(tmp_path):
    path = plot_synthetic(_rows(), tmp_path / "s.png", "model")
    assert path.read_bytes()[:4] == b"\x89PNG"
