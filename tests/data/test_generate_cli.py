"""``python -m pipelines.generate --out DIR`` replaces only what the project wrote at DIR/<kind>: its own outdated or
incomplete sets are rebuilt; anything else there (a folder of the user's, a file) is refused and left as it was."""

import json
import subprocess
import sys

import pytest

from inv_kernels.data.cache import MANIFEST, MARKER, read_manifest
from pipelines.generate import main

ARGS = ["--kinds", "coil", "--count", "1", "--size", "16", "--no-progress"]


def _generate(out) -> dict:
    return main([*ARGS, "--out", str(out)])


def test_an_outdated_set_of_the_project_is_rebuilt(tmp_path):
    old = tmp_path / "coil"
    old.mkdir()
    (old / "obj1__0.png").write_bytes(b"old render")
    (old / MANIFEST).write_text(json.dumps({"format_version": 1, "kind": "coil", "counts": {"images": 1}}))
    _generate(tmp_path)
    assert read_manifest(old) is not None and len(list(old.glob("*.png"))) == 72


def test_an_incomplete_set_of_the_project_is_rebuilt(tmp_path):
    partial = tmp_path / "coil"
    partial.mkdir()
    (partial / MARKER).write_text("")
    (partial / "obj1__0.png").write_bytes(b"half")
    _generate(tmp_path)
    assert read_manifest(partial) is not None and len(list(partial.glob("*.png"))) == 72


@pytest.mark.parametrize("manifest", [None, '{"name": "my photos"}', "not json"])
def test_a_folder_the_project_did_not_write_is_refused_and_kept(tmp_path, capsys, manifest):
    mine = tmp_path / "coil"
    mine.mkdir()
    (mine / "thesis.txt").write_text("my own work\n")
    if manifest is not None:
        (mine / MANIFEST).write_text(manifest)
    before = sorted((p.name, p.read_bytes()) for p in mine.iterdir())
    with pytest.raises(SystemExit) as exit_info:
        _generate(tmp_path)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("python -m pipelines.generate: error: ") and str(mine) in error
    assert "not written by inv_kernels" in error and "\n" not in error
    assert sorted((p.name, p.read_bytes()) for p in mine.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coil"]  # no partial folder was started


def test_a_file_in_the_place_of_a_set_is_refused_and_kept(tmp_path, capsys):
    (tmp_path / "coil").write_text("a file named like the set\n")
    with pytest.raises(SystemExit):
        _generate(tmp_path)
    assert "coil exists and is not a folder" in capsys.readouterr().err
    assert (tmp_path / "coil").read_text() == "a file named like the set\n"


def test_a_folder_named_like_a_stale_partial_is_not_the_projects_to_remove(tmp_path):
    dead = [subprocess.Popen([sys.executable, "-c", "pass"]) for _ in range(2)]
    for process in dead:
        process.wait()  # pids that no longer run
    users, ours = (tmp_path / f"coil.partial-{process.pid}" for process in dead)
    users.mkdir()
    (users / "notes.txt").write_text("mine\n")
    ours.mkdir()
    (ours / MARKER).write_text("")
    _generate(tmp_path)
    assert (users / "notes.txt").read_text() == "mine\n"
    assert not ours.exists()  # a stale partial of the project's is cleaned up
    assert read_manifest(tmp_path / "coil") is not None
