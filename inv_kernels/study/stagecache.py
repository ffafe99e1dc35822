"""Cached stages: each stage of the study computes into its own folder under ``<out>/`` and is skipped when that folder
already holds its finished output for the same settings, so an interrupted study continues where it stopped.

Folder of a stage ``<out>/<name>/``:
    ``stage.json``  the manifest: name, settings (everything the output depends on), their key (a hash), status
                    ("running" while computing, "done" after), times. Written atomically before and after the work.
    ``result.json`` the stage's output (a JSON dict), written atomically before the manifest says "done".
    anything else the stage writes (checkpoints, CSVs, plots).

A stage whose manifest has other settings than the current ones is not reused: it is recomputed from an empty folder
and a message names the settings that changed. A resumable stage (pretraining) found "running" with the same settings
continues from its own checkpoint. Every decision is appended to ``<out>/stages.jsonl`` (one JSON record per stage
and run: name, status "ran" / "cached" / "resumed" / "recomputed", seconds in this run, and ``computed_s``, the
seconds the stored output took to compute), which tests and the report read.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from inv_kernels.hashing import config_hash
from inv_kernels.io import atomic_write_json

MANIFEST = "stage.json"
RESULT = "result.json"
RECORD = "stages.jsonl"


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def changed_settings(old: dict, new: dict) -> list[str]:
    """Names of the top-level settings that differ between two settings dicts (sorted)."""
    return sorted(
        k
        for k in set(old) | set(new)
        if json.dumps(old.get(k), sort_keys=True, default=str) != json.dumps(new.get(k), sort_keys=True, default=str)
    )


class StageCache:
    """Runs stages under ``out`` with caching; see the module docstring.

    Args:
        out: the study's output folder (created).
        run_id: identifies this invocation in the stage record.
        log: where decisions are printed (stderr by default); None to print nothing.
    """

    def __init__(self, out: str | Path, *, run_id: str | None = None, log=sys.stderr):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id or f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.log = log
        self.records: list[dict] = []

    def folder(self, name: str) -> Path:
        return self.out / name

    def cached(self, name: str, settings: dict) -> dict | None:
        """The stage's stored result when it is finished for these settings, else None (nothing is changed)."""
        folder = self.folder(name)
        manifest = _read_json(folder / MANIFEST)
        if manifest and manifest.get("status") == "done" and manifest.get("key") == config_hash(settings):
            return _read_json(folder / RESULT)
        return None

    def run(self, name: str, settings: dict, compute: Callable[[Path], dict], *, resumable: bool = False) -> dict:
        """The stage's result: read from its folder when finished for ``settings``, else ``compute(folder)``.

        Args:
            name: the stage's path under ``out`` ("pretrain/spatial/seed0").
            settings: everything the output depends on (JSON-serialisable).
            compute: folder -> result dict (JSON-serialisable); it may write other files into the folder.
            resumable: keep the folder of an unfinished run with the same settings (compute resumes from it).

        Returns:
            The result dict.
        """
        folder, key = self.folder(name), config_hash(settings)
        stored = self.cached(name, settings)
        if stored is not None:
            computed = (_read_json(folder / MANIFEST) or {}).get("seconds", 0.0)
            self._record(name, "cached", 0.0, key, computed)
            return stored
        manifest = _read_json(folder / MANIFEST)
        status = "ran"
        if manifest is not None and manifest.get("key") != key:
            changed = changed_settings(manifest.get("settings", {}), settings)
            self._say(f"stage {name}: settings changed ({', '.join(changed) or 'key'}); recomputing from scratch")
            status = "recomputed"
        elif manifest is not None and resumable and manifest.get("status") == "running":
            status = "resumed"
            self._say(f"stage {name}: resuming an unfinished run")
        if status != "resumed" and folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.time()
        head = {"stage": name, "key": key, "settings": settings, "run_id": self.run_id}
        atomic_write_json({**head, "status": "running", "started": started}, folder / MANIFEST)
        result = compute(folder)
        seconds = time.time() - started
        atomic_write_json(result, folder / RESULT)
        atomic_write_json({**head, "status": "done", "started": started, "seconds": seconds}, folder / MANIFEST)
        self._record(name, status, seconds, key, seconds)
        return result

    def _say(self, message: str) -> None:
        if self.log is not None:
            print(f"study: {message}", file=self.log, flush=True)

    def _record(self, name: str, status: str, seconds: float, key: str, computed: float) -> None:
        record = {
            "run_id": self.run_id,
            "stage": name,
            "status": status,
            "seconds": round(seconds, 3),
            "computed_s": round(computed, 3),
            "key": key,
            "time": time.time(),
        }
        self.records.append(record)
        with open(self.out / RECORD, "a") as handle:
            handle.write(json.dumps(record) + "\n")


def read_records(out: str | Path, run_id: str | None = None) -> list[dict]:
    """The stage records of ``<out>/stages.jsonl`` (those of one run when ``run_id`` is given)."""
    path = Path(out) / RECORD
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if run_id is None or r["run_id"] == run_id]
