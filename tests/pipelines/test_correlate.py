"""pipelines.correlate: invariance tables of pipelines.measure against a transfer table."""

import json

import pytest

from pipelines import correlate


def _write(path, payload):
    path.write_text(json.dumps(payload))
    return str(path)


def _inputs(tmp_path, scores):
    pairs = []
    for i, (name, rotation, hue) in enumerate(scores):
        results = {
            "synthetic": [{"family": "rotation", "cosine_mean": rotation}, {"family": "hue", "cosine_mean": hue}],
            "realworld": [{"name": "coil", "cosine_off_diagonal": rotation / 2}],
        }
        pairs.append(f"{name}={_write(tmp_path / f'm{i}.json', results)}")
    transfer = {
        "results": [{"model": n, "task": "pose", "test_score": 1.0 - r} for n, r, _ in scores]
        + [{"model": n, "task": "flowers", "test_score": 0.5 + h} for n, _, h in scores]
    }
    return pairs, _write(tmp_path / "transfer.json", transfer)


def test_correlations_have_the_right_sign_and_files(tmp_path, capsys):
    scores = [("default", 0.8, 0.7), ("spatial", 0.9, 0.2), ("appearance", 0.3, 0.9), ("random", 0.1, 0.1)]
    pairs, transfer = _inputs(tmp_path, scores)
    args = [a for p in pairs for a in ("--invariance", p)] + ["--transfer", transfer, "--out", str(tmp_path / "o")]
    assert correlate.main(args) == 0
    rows = {(r["measure"], r["task"]): r for r in json.loads((tmp_path / "o" / "correlation.json").read_text())["rows"]}
    assert rows[("rotation", "pose")]["spearman"] == pytest.approx(-1.0)
    assert rows[("hue", "flowers")]["spearman"] == pytest.approx(1.0)
    assert rows[("real:coil", "pose")]["pearson"] == pytest.approx(-1.0)
    assert (tmp_path / "o" / "correlation_spearman.png").stat().st_size > 0
    assert "| rotation | pose | 4 | -1.00 |" in capsys.readouterr().out


def test_too_few_models_leave_correlation_undefined(tmp_path):
    pairs, transfer = _inputs(tmp_path, [("a", 0.1, 0.2), ("b", 0.3, 0.4)])
    rows = correlate.correlate(correlate.invariance_table(pairs), correlate.transfer_table(transfer))
    assert all(r["spearman"] is None and r["models"] == 2 for r in rows)


def test_bad_input(tmp_path, capsys):
    assert correlate.main(["--invariance", "noequals", "--transfer", "x.json", "--out", str(tmp_path)]) == 2
    assert "expects NAME=PATH" in capsys.readouterr().err
    assert (
        correlate.main(["--invariance", f"a={tmp_path / 'missing.json'}", "--transfer", "x", "--out", str(tmp_path)])
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
