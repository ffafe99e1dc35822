"""inv_kernels.reporting: the one Markdown table writer, CSV tables and PNG figures, written atomically."""

import csv

import pytest

from inv_kernels import reporting


def test_markdown_table_formats_cells_and_rows():
    table = reporting.markdown_table(["model", "score", "n"], [["a", "0.812", 3], ["b", "-", None]])
    assert table == "| model | score | n |\n|---|---|---|\n| a | 0.812 | 3 |\n| b | - | None |"
    assert reporting.markdown_table(["x"], []) == "| x |\n|---|"


def test_markdown_table_refuses_rows_of_another_width():
    with pytest.raises(ValueError, match=r"markdown_table: row 1 has 1 cells, the header 2"):
        reporting.markdown_table(["a", "b"], [[1, 2], [3]])


def test_csv_keeps_the_scalar_columns_of_the_first_row(tmp_path):
    rows = [{"family": "h_flip", "cosine": 0.5, "per_image": [1, 2]}, {"family": "rotation", "cosine": 0.25}]
    path = reporting.write_csv(rows, tmp_path / "out" / "rows.csv")
    with open(path, newline="") as handle:
        assert list(csv.DictReader(handle)) == [
            {"family": "h_flip", "cosine": "0.5"},
            {"family": "rotation", "cosine": "0.25"},
        ]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["rows.csv"]  # no temporary left behind
    assert reporting.write_csv([], tmp_path / "none.csv") == tmp_path / "none.csv"
    assert not (tmp_path / "none.csv").exists()


def test_a_figure_is_written_as_png_and_closed(tmp_path):
    plt = reporting.pyplot()
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    path = reporting.write_png(fig, tmp_path / "figure.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)


def test_a_markdown_table_right_aligns_the_columns_it_is_told_to():
    table = reporting.markdown_table(["name", "ms"], [["a", 1.5]], align="lr")
    assert table.splitlines()[1] == "|---|---:|"
    with pytest.raises(ValueError, match="align"):
        reporting.markdown_table(["name", "ms"], [], align="l")
    with pytest.raises(ValueError, match="align"):
        reporting.markdown_table(["name", "ms"], [], align="lc")
