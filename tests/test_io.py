"""inv_kernels.io: atomic writes (unpredictable temporary names, the folder synced after the rename) and the removal
of stale temporaries left by interrupted writes, which spares other files and temporaries being written now."""

import os
import stat
import subprocess
import sys
import textwrap

import pytest

from inv_kernels import io


def _age(path, seconds: float) -> None:
    when = os.path.getmtime(path) - seconds
    os.utime(path, (when, when))


def test_temporary_names_are_unpredictable(tmp_path, monkeypatch):
    sources = []
    real_replace = os.replace

    def replace(src, dst):
        sources.append(os.path.basename(src))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    for _ in range(3):
        io.atomic_write_json({"a": 1}, tmp_path / "result.json")
    assert len(set(sources)) == 3
    for name in sources:
        assert io.TEMPORARY_NAME.fullmatch(name), name
        assert str(os.getpid()) not in name and name != ".result.json.tmp"


def test_the_folder_is_synced_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        return real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    io.atomic_write_bytes(b"data", tmp_path / "out.bin")
    assert events == ["fsync file", "rename", "fsync folder"]
    assert (tmp_path / "out.bin").read_bytes() == b"data"


def test_stale_temporaries_are_removed_and_others_kept(tmp_path):
    stale = tmp_path / ".checkpoint_last.pth.tar.a1b2c3d4.tmp"
    fresh = tmp_path / ".checkpoint_last.pth.tar.e5f6g7h8.tmp"
    lookalikes = [tmp_path / "checkpoint.a1b2c3d4.tmp", tmp_path / ".notes.tmp", tmp_path / ".x.a1b2c3d4.tmp.bak"]
    for path in (stale, fresh, *lookalikes):
        path.write_bytes(b"x")
    for path in (stale, *lookalikes):
        _age(path, 2 * io.STALE_AFTER_S)
    (tmp_path / ".old.a1b2c3d4.tmp").mkdir()  # a folder, not a file we write
    _age(tmp_path / ".old.a1b2c3d4.tmp", 2 * io.STALE_AFTER_S)
    removed = io.remove_stale_temporaries(tmp_path)
    assert removed == [stale]
    assert not stale.exists() and fresh.exists() and all(p.exists() for p in lookalikes)
    assert io.remove_stale_temporaries(tmp_path / "missing") == []


def test_a_temporary_another_process_is_writing_is_kept(tmp_path):
    """A writer holds a lock on its temporary until it is renamed: an old but locked file is in flight."""
    busy = tmp_path / ".features-0123.pt.q1w2e3r4.tmp"
    busy.write_bytes(b"x")
    _age(busy, 2 * io.STALE_AFTER_S)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import fcntl, sys
        handle = open({str(busy)!r}, "ab")
        fcntl.flock(handle, fcntl.LOCK_EX)
        print("locked", flush=True)
        sys.stdin.read()
    """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "locked"
        assert io.remove_stale_temporaries(tmp_path) == [] and busy.exists()
    finally:
        writer.stdin.close()
        writer.wait(timeout=60)
    assert io.remove_stale_temporaries(tmp_path) == [busy] and not busy.exists()


def test_a_failed_write_leaves_no_temporary(tmp_path):
    def explode(handle):
        handle.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        io._atomic_write(tmp_path / "out.bin", explode)
    assert list(tmp_path.iterdir()) == []
