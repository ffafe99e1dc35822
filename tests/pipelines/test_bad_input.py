"""Every ``python -m pipelines.<name>`` on missing, empty, malformed and hostile input: exit code 2 and one line
``python -m pipelines.<name>: error: ...`` naming the problem, no traceback, nothing written (a fresh --out is not
created and no other file appears) and no code from a checkpoint file run.

The cases call each ``main(argv)`` in-process; ``test_entry_point_in_a_subprocess`` runs one case per entry point
as a real ``python -m`` process (all at once, to keep the suite fast) for the exit code and the clean stderr."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from inv_kernels.models import checkpoint
from pipelines import correlate, export, generate, measure, pretrain, study, transfer

ROOT = Path(__file__).resolve().parents[2]
MODULES = {
    "generate": generate,
    "pretrain": pretrain,
    "export": export,
    "measure": measure,
    "transfer": transfer,
    "correlate": correlate,
    "study": study,
}
PAYLOAD_MARKER = "payload-ran"
# A checkpoint whose unpickling would run code is refused once loading reads weights only (which brought
# UntrustedCheckpointError); before that, the payload cases are expected failures.
PAYLOAD = pytest.mark.xfail(
    not hasattr(checkpoint, "UntrustedCheckpointError"),
    strict=True,
    reason="checkpoint loading unpickles arbitrary objects",
)


class _Payload:
    """Unpickling this runs code that writes a marker file: the hostile checkpoint."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = torch.randint(0, 256, (20, 20, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    Image.fromarray(pixels.numpy()).save(path)


def _truncated_jpeg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    pixels = torch.randint(0, 256, (48, 48, 3), generator=torch.Generator().manual_seed(7), dtype=torch.uint8)
    Image.fromarray(pixels.numpy()).save(buffer, format="JPEG", quality=95)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def make_inputs(tmp_path: Path) -> dict[str, Path]:
    """The inputs every case draws on, under tmp_path/in (the marker of a payload would land in tmp_path)."""
    root = tmp_path / "in"
    paths = {
        name: root / name
        for name in (
            "missing",
            "empty",
            "images",
            "flat",
            "fake",
            "truncated",
            "split",
            "fake_split",
            "user_sets",
            "foreign_manifest",
        )
    }
    paths["empty"].mkdir(parents=True)
    for cls in ("a", "b"):
        for i in range(3):
            _png(paths["images"] / cls / f"{i}.png", seed=hash((cls, i)) % 1000)
            for split in ("train", "test"):
                _png(paths["split"] / split / cls / f"{i}.png", seed=i)
    _png(paths["flat"] / "0.png", seed=1)
    for folder in (paths["fake"] / "a", paths["fake_split"] / "train" / "a", paths["fake_split"] / "test" / "a"):
        folder.mkdir(parents=True)
        (folder / "photo.jpg").write_text("this is text, not a JPEG\n")
    _truncated_jpeg(paths["truncated"] / "a" / "photo.jpg")
    (paths["user_sets"] / "coil").mkdir(parents=True)
    (paths["user_sets"] / "coil" / "thesis.txt").write_text("my own work\n")
    (paths["foreign_manifest"] / "coil").mkdir(parents=True)
    (paths["foreign_manifest"] / "coil" / "manifest.json").write_text('{"name": "my photos"}\n')
    paths["text"] = root / "notes.txt"
    paths["text"].write_text("just some notes\n")
    paths["payload"] = root / "payload.pth"
    torch.save({"arch": "resnet18", "state_dict": _Payload(tmp_path / PAYLOAD_MARKER)}, paths["payload"])
    paths["list_json"] = root / "list.json"
    paths["list_json"].write_text("[1, 2, 3]\n")
    paths["rows_json"] = root / "rows.json"
    paths["rows_json"].write_text('{"synthetic": [{"cosine": 0.5}], "results": [{"model": "a"}]}\n')
    paths["no_results"] = root / "no_results.json"
    paths["no_results"].write_text('{"results": []}\n')
    paths["invariance"] = root / "invariance.json"
    paths["invariance"].write_text('{"synthetic": [{"family": "h_flip", "cosine_mean": 0.5}]}\n')
    paths["transfer"] = root / "transfer.json"
    paths["transfer"].write_text('{"results": [{"model": "a", "task": "t", "test_score": 0.5}]}\n')
    return paths


MEASURE = ["--quiet", "--no-cache", "--transforms", "h_flip", "--crop-size", "16", "--workers", "0"]
MEASURE_OK = ["--model", "random:resnet18", "--data", "{images}", *MEASURE]
TRANSFER_OK = ["--models", "a=random:resnet18", "--task", "folder:{split}", "--image-size", "16"]
PRETRAIN = [
    "--epochs",
    "1",
    "--batch-size",
    "4",
    "--bn-splits",
    "2",
    "--queue-size",
    "8",
    "--moco-dim",
    "8",
    "--workers",
    "0",
    "--knn-every",
    "-1",
    "--loader",
    "torchvision",
    "--image-size",
    "16",
]
PRETRAIN_OK = ["--data", "{images}", *PRETRAIN]
CORRELATE_OK = ["--invariance", "a={invariance}", "--transfer", "{transfer}"]

# (id, entry point, arguments ({name} is an input path, {out} a fresh output folder), words the error must name)
CASES = [
    # generate
    ("generate-size-small", "generate", ["--size", "5"], ["--size", "5", "[16, 512]"]),
    ("generate-size-large", "generate", ["--size", "600"], ["--size", "600", "[16, 512]"]),
    ("generate-size-word", "generate", ["--size", "big"], ["--size", "'big'", "integer"]),
    ("generate-count-zero", "generate", ["--count", "0"], ["--count", "0", ">= 1"]),
    ("generate-count-negative", "generate", ["--count", "-4"], ["--count", "-4", ">= 1"]),
    (
        "generate-sheet-size-zero",
        "generate",
        ["--no-sets", "--contact-sheet", "{out}/s.png", "--sheet-size", "0"],
        ["--sheet-size", "0"],
    ),
    ("generate-kind-unknown", "generate", ["--kinds", "imagenet"], ["--kinds", "imagenet"]),
    ("generate-device-unknown", "generate", ["--device", "gpu0"], ["--device", "gpu0"]),
    ("generate-out-is-file", "generate", ["--kinds", "coil", "--out", "{text}"], ["notes.txt", "not a folder"]),
    ("generate-out-under-file", "generate", ["--kinds", "coil", "--out", "{text}/sets"], ["notes.txt", "is a file"]),
    (
        "generate-user-folder-in-the-way",
        "generate",
        ["--kinds", "coil", "--size", "16", "--out", "{user_sets}"],
        ["user_sets/coil", "not written by inv_kernels", "refusing"],
    ),
    (
        "generate-foreign-manifest",
        "generate",
        ["--kinds", "coil", "--size", "16", "--out", "{foreign_manifest}"],
        ["foreign_manifest/coil", "not written by inv_kernels"],
    ),
    ("generate-json-is-folder", "generate", ["--no-sets", "--json", "{empty}"], ["--json", "empty", "is a folder"]),
    (
        "generate-sheet-is-folder",
        "generate",
        ["--no-sets", "--contact-sheet", "{empty}"],
        ["--contact-sheet", "empty", "is a folder"],
    ),
    ("generate-cache-is-file", "generate", ["--kinds", "coil", "--cache-dir", "{text}"], ["notes.txt", "not a folder"]),
    # pretrain
    ("pretrain-data-missing", "pretrain", ["--data", "{missing}", *PRETRAIN], ["missing", "does not exist"]),
    ("pretrain-data-empty", "pretrain", ["--data", "{empty}", *PRETRAIN], ["empty", "is empty"]),
    ("pretrain-data-is-file", "pretrain", ["--data", "{text}", *PRETRAIN], ["notes.txt", "not a folder"]),
    ("pretrain-data-flat", "pretrain", ["--data", "{flat}", *PRETRAIN], ["flat", "no class subfolders"]),
    ("pretrain-recipe-unknown", "pretrain", [*PRETRAIN_OK, "--recipe", "sepia"], ["sepia"]),
    ("pretrain-arch-unknown", "pretrain", [*PRETRAIN_OK, "--arch", "vgg"], ["vgg"]),
    ("pretrain-epochs-zero", "pretrain", [*PRETRAIN_OK, "--epochs", "0"], ["epochs", "0"]),
    ("pretrain-lr-nan", "pretrain", [*PRETRAIN_OK, "--lr", "nan"], ["lr", "nan"]),
    ("pretrain-batch-zero", "pretrain", [*PRETRAIN_OK, "--batch-size", "0"], ["batch_size", "0"]),
    ("pretrain-image-size-small", "pretrain", [*PRETRAIN_OK, "--image-size", "5"], ["image_size", "5"]),
    ("pretrain-loader-unknown", "pretrain", [*PRETRAIN_OK, "--loader", "fast"], ["--loader", "fast"]),
    ("pretrain-resume-missing", "pretrain", [*PRETRAIN_OK, "--resume", "{missing}"], ["missing", "does not exist"]),
    ("pretrain-resume-folder", "pretrain", [*PRETRAIN_OK, "--resume", "{empty}"], ["empty", "is a folder"]),
    ("pretrain-resume-text", "pretrain", [*PRETRAIN_OK, "--resume", "{text}"], ["notes.txt"]),
    pytest.param(
        "pretrain-resume-payload", "pretrain", [*PRETRAIN_OK, "--resume", "{payload}"], ["payload.pth"], marks=PAYLOAD
    ),
    ("pretrain-out-is-file", "pretrain", [*PRETRAIN_OK, "--out", "{text}"], ["notes.txt"]),
    # export
    ("export-checkpoint-missing", "export", ["{missing}", "{out}/b.pth"], ["missing", "does not exist"]),
    ("export-checkpoint-folder", "export", ["{empty}", "{out}/b.pth"], ["empty", "is a folder, not a checkpoint"]),
    ("export-checkpoint-text", "export", ["{text}", "{out}/b.pth"], ["notes.txt", "cannot be read"]),
    pytest.param("export-checkpoint-payload", "export", ["{payload}", "{out}/b.pth"], ["payload.pth"], marks=PAYLOAD),
    ("export-out-is-folder", "export", ["{text}", "{empty}"], ["empty", "is a folder"]),
    ("export-out-under-file", "export", ["{text}", "{text}/b.pth"], ["notes.txt", "not a folder"]),
    ("export-out-exists", "export", ["{text}", "{text}"], ["notes.txt", "exists", "--overwrite"]),
    # measure
    ("measure-num-images-zero", "measure", [*MEASURE_OK, "--num-images", "0"], ["--num-images", "0", ">= 1"]),
    ("measure-num-images-negative", "measure", [*MEASURE_OK, "--num-images", "-2"], ["--num-images", "-2"]),
    ("measure-stats-images-zero", "measure", [*MEASURE_OK, "--stats-images", "0"], ["--stats-images", "0"]),
    ("measure-batch-zero", "measure", [*MEASURE_OK, "--batch-size", "0"], ["--batch-size", "0"]),
    ("measure-workers-negative", "measure", [*MEASURE_OK, "--workers", "-1"], ["--workers", "-1"]),
    ("measure-crop-size-small", "measure", [*MEASURE_OK, "--crop-size", "4"], ["--crop-size", "4"]),
    (
        "measure-resize-below-crop",
        "measure",
        [*MEASURE_OK, "--resize-size", "16", "--crop-size", "32"],
        ["resize_size", "16", "32"],
    ),
    ("measure-shrinkage-nan", "measure", [*MEASURE_OK, "--shrinkage", "nan"], ["--shrinkage", "nan"]),
    ("measure-shrinkage-negative", "measure", [*MEASURE_OK, "--shrinkage", "-1"], ["--shrinkage", "-1"]),
    ("measure-shrinkage-word", "measure", [*MEASURE_OK, "--shrinkage", "lots"], ["--shrinkage", "lots"]),
    ("measure-mode-unknown", "measure", [*MEASURE_OK, "--mode", "loose"], ["--mode", "loose"]),
    ("measure-backend-unknown", "measure", [*MEASURE_OK, "--backend", "fast"], ["--backend", "fast"]),
    ("measure-device-unknown", "measure", [*MEASURE_OK, "--device", "gpu0"], ["--device", "gpu0"]),
    ("measure-transform-unknown", "measure", [*MEASURE_OK, "--transforms", "swirl"], ["swirl"]),
    ("measure-transforms-empty", "measure", [*MEASURE_OK, "--transforms", ","], ["transforms", "no transform"]),
    ("measure-model-missing", "measure", ["--model", "{missing}", *MEASURE], ["missing", "does not exist"]),
    ("measure-model-folder", "measure", ["--model", "{empty}", *MEASURE], ["empty", "is a folder, not a checkpoint"]),
    ("measure-model-text", "measure", ["--model", "{text}", *MEASURE], ["notes.txt", "cannot be read"]),
    pytest.param(
        "measure-model-payload", "measure", ["--model", "{payload}", *MEASURE], ["payload.pth"], marks=PAYLOAD
    ),
    ("measure-model-unknown-arch", "measure", ["--model", "random:vgg", *MEASURE], ["vgg"]),
    (
        "measure-data-missing",
        "measure",
        ["--model", "random:resnet18", "--data", "{missing}", *MEASURE],
        ["missing", "does not exist"],
    ),
    (
        "measure-data-empty",
        "measure",
        ["--model", "random:resnet18", "--data", "{empty}", *MEASURE],
        ["empty", "is empty"],
    ),
    (
        "measure-data-is-file",
        "measure",
        ["--model", "random:resnet18", "--data", "{text}", *MEASURE],
        ["notes.txt", "not a folder"],
    ),
    (
        "measure-data-flat",
        "measure",
        ["--model", "random:resnet18", "--data", "{flat}", *MEASURE],
        ["flat", "no class subfolders"],
    ),
    (
        "measure-data-not-images",
        "measure",
        ["--model", "random:resnet18", "--data", "{fake}", *MEASURE],
        ["fake", "could be decoded"],
    ),
    (
        "measure-data-truncated",
        "measure",
        ["--model", "random:resnet18", "--data", "{truncated}", *MEASURE],
        ["truncated", "could be decoded"],
    ),
    ("measure-stats-data-missing", "measure", [*MEASURE_OK, "--stats-data", "{missing}"], ["missing", "not exist"]),
    ("measure-groups-missing", "measure", [*MEASURE_OK, "--groups", "{missing}:coil"], ["missing", "does not exist"]),
    (
        "measure-groups-layout-unknown",
        "measure",
        [*MEASURE_OK, "--groups", "{images}:turntable"],
        ["layout", "turntable"],
    ),
    ("measure-groups-wrong-layout", "measure", [*MEASURE_OK, "--groups", "{images}:coil"], ["images", "coil"]),
    ("measure-groups-empty", "measure", [*MEASURE_OK, "--groups", "{empty}:coil"], ["empty"]),
    ("measure-stats-file-folder", "measure", [*MEASURE_OK, "--stats-file", "{empty}"], ["empty", "is a folder"]),
    ("measure-stats-file-text", "measure", [*MEASURE_OK, "--stats-file", "{text}"], ["notes.txt"]),
    ("measure-out-is-file", "measure", [*MEASURE_OK, "--out", "{text}"], ["notes.txt", "not a folder"]),
    ("measure-out-under-file", "measure", [*MEASURE_OK, "--out", "{text}/run"], ["notes.txt", "is a file"]),
    (
        "measure-cache-dir-is-file",
        "measure",
        ["--model", "random:resnet18", "--data", "{images}", "--quiet", "--cache-dir", "{text}"],
        ["notes.txt", "not a folder"],
    ),
    # transfer
    ("transfer-model-missing", "transfer", ["--models", "a={missing}"], ["missing", "does not exist"]),
    ("transfer-model-folder", "transfer", ["--models", "a={empty}"], ["empty", "is a folder, not a checkpoint"]),
    ("transfer-model-text", "transfer", ["--models", "a={text}"], ["notes.txt", "cannot be read"]),
    pytest.param("transfer-model-payload", "transfer", ["--models", "a={payload}"], ["payload.pth"], marks=PAYLOAD),
    ("transfer-model-second-bad", "transfer", ["--models", "a=random:resnet18,b={text}"], ["notes.txt"]),
    ("transfer-model-empty-spec", "transfer", ["--models", "a="], ["--models", "'a='"]),
    ("transfer-model-unknown-arch", "transfer", ["--models", "a=random:vgg"], ["vgg"]),
    ("transfer-fusion-unknown", "transfer", [*TRANSFER_OK, "--fusion", "blend"], ["fusion", "blend"]),
    ("transfer-combo-unknown", "transfer", [*TRANSFER_OK, "--combos", "a+z"], ["a+z"]),
    ("transfer-folds-one", "transfer", [*TRANSFER_OK, "--folds", "1"], ["--folds", "1", ">= 2"]),
    ("transfer-batch-zero", "transfer", [*TRANSFER_OK, "--batch-size", "0"], ["--batch-size", "0"]),
    ("transfer-workers-negative", "transfer", [*TRANSFER_OK, "--workers", "-1"], ["--workers", "-1"]),
    ("transfer-image-size-small", "transfer", [*TRANSFER_OK, "--image-size", "3"], ["--image-size", "3"]),
    ("transfer-mode-unknown", "transfer", [*TRANSFER_OK, "--mode", "loose"], ["--mode", "loose"]),
    ("transfer-device-unknown", "transfer", [*TRANSFER_OK, "--device", "gpu0"], ["--device", "gpu0"]),
    (
        "transfer-task-unknown",
        "transfer",
        ["--models", "a=random:resnet18", "--task", "nosuch:{split}"],
        ["nosuch", "unknown task"],
    ),
    (
        "transfer-task-no-root",
        "transfer",
        ["--models", "a=random:resnet18", "--task", "cifar10"],
        ["cifar10", "NAME:ROOT"],
    ),
    (
        "transfer-task-missing",
        "transfer",
        ["--models", "a=random:resnet18", "--task", "folder:{missing}"],
        ["missing", "does not exist"],
    ),
    (
        "transfer-task-is-file",
        "transfer",
        ["--models", "a=random:resnet18", "--task", "folder:{text}"],
        ["notes.txt", "not a folder"],
    ),
    ("transfer-task-empty", "transfer", ["--models", "a=random:resnet18", "--task", "folder:{empty}"], ["empty"]),
    (
        "transfer-task-unsplit",
        "transfer",
        ["--models", "a=random:resnet18", "--task", "folder:{images}"],
        ["images", "test"],
    ),
    ("transfer-out-is-file", "transfer", [*TRANSFER_OK, "--out", "{text}"], ["notes.txt", "not a folder"]),
    # correlate
    (
        "correlate-invariance-no-name",
        "correlate",
        ["--invariance", "{invariance}", "--transfer", "{transfer}"],
        ["--invariance", "NAME=PATH"],
    ),
    (
        "correlate-invariance-missing",
        "correlate",
        ["--invariance", "a={missing}", "--transfer", "{transfer}"],
        ["missing", "does not exist"],
    ),
    (
        "correlate-invariance-folder",
        "correlate",
        ["--invariance", "a={empty}", "--transfer", "{transfer}"],
        ["empty", "is a folder"],
    ),
    (
        "correlate-invariance-not-json",
        "correlate",
        ["--invariance", "a={text}", "--transfer", "{transfer}"],
        ["notes.txt", "not valid JSON"],
    ),
    (
        "correlate-invariance-binary",
        "correlate",
        ["--invariance", "a={payload}", "--transfer", "{transfer}"],
        ["payload.pth", "not valid JSON"],
    ),
    (
        "correlate-invariance-list",
        "correlate",
        ["--invariance", "a={list_json}", "--transfer", "{transfer}"],
        ["list.json", "list"],
    ),
    (
        "correlate-invariance-bad-rows",
        "correlate",
        ["--invariance", "a={rows_json}", "--transfer", "{transfer}"],
        ["rows.json", "malformed row"],
    ),
    (
        "correlate-invariance-no-results",
        "correlate",
        ["--invariance", "a={no_results}", "--transfer", "{transfer}"],
        ["no_results.json", "no synthetic"],
    ),
    (
        "correlate-transfer-missing",
        "correlate",
        ["--invariance", "a={invariance}", "--transfer", "{missing}"],
        ["missing", "does not exist"],
    ),
    (
        "correlate-transfer-folder",
        "correlate",
        ["--invariance", "a={invariance}", "--transfer", "{empty}"],
        ["empty", "is a folder"],
    ),
    (
        "correlate-transfer-not-json",
        "correlate",
        ["--invariance", "a={invariance}", "--transfer", "{text}"],
        ["notes.txt", "not valid JSON"],
    ),
    (
        "correlate-transfer-list",
        "correlate",
        ["--invariance", "a={invariance}", "--transfer", "{list_json}"],
        ["list.json", "list"],
    ),
    (
        "correlate-transfer-bad-rows",
        "correlate",
        ["--invariance", "a={invariance}", "--transfer", "{rows_json}"],
        ["rows.json", "malformed row"],
    ),
    (
        "correlate-transfer-no-results",
        "correlate",
        ["--invariance", "a={invariance}", "--transfer", "{no_results}"],
        ["no_results.json", "no results"],
    ),
    ("correlate-out-is-file", "correlate", [*CORRELATE_OK, "--out", "{text}"], ["notes.txt", "not a folder"]),
    # study
    ("study-epochs-zero", "study", ["--epochs", "0"], ["--epochs", "0"]),
    ("study-lr-nan", "study", ["--lr", "nan"], ["--lr", "nan"]),
    ("study-lr-negative", "study", ["--lr", "-0.1"], ["--lr", "-0.1"]),
    ("study-momentum-nan", "study", ["--moco-momentum", "nan"], ["--moco-momentum", "nan"]),
    ("study-momentum-one", "study", ["--moco-momentum", "1"], ["moco_momentum", "1"]),
    ("study-shrinkage-nan", "study", ["--shrinkage", "nan"], ["shrinkage", "nan"]),
    ("study-num-images-zero", "study", ["--num-images", "0"], ["--num-images", "0"]),
    ("study-folds-one", "study", ["--folds", "1"], ["--folds", "1"]),
    ("study-batch-not-multiple", "study", ["--batch-size", "30"], ["batch_size 30", "bn_splits"]),
    ("study-seeds-bad", "study", ["--seeds", "0,x"], ["--seeds", "'x'"]),
    ("study-arch-unknown", "study", ["--arch", "vgg"], ["vgg"]),
    ("study-device-unknown", "study", ["--device", "gpu0"], ["--device", "gpu0"]),
    ("study-image-size-small", "study", ["--image-size", "4"], ["--image-size", "4"]),
    ("study-data-missing", "study", ["--data", "{missing}"], ["missing", "does not exist"]),
    ("study-data-is-file", "study", ["--data", "{text}"], ["notes.txt", "not a folder"]),
    ("study-data-empty", "study", ["--data", "{empty}"], ["empty", "train/"]),
    ("study-data-not-images", "study", ["--data", "{fake_split}"], ["fake_split", "none of its"]),
    ("study-groups-missing", "study", ["--groups", "{missing}"], ["missing", "does not exist"]),
    ("study-groups-layout-unknown", "study", ["--groups", "{images}:turntable"], ["layout", "turntable"]),
    ("study-task-unknown", "study", ["--task", "nosuch:{split}"], ["nosuch", "unknown task"]),
    ("study-task-no-root", "study", ["--task", "cifar10"], ["cifar10", "NAME:ROOT"]),
    ("study-task-missing", "study", ["--task", "folder:{missing}"], ["missing", "does not exist"]),
    ("study-out-is-file", "study", ["--out", "{text}"], ["notes.txt", "not a folder"]),
]


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with the bytes of each file (None for folders)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def _argv(template: list[str], paths: dict[str, Path], out: Path) -> list[str]:
    return [arg.format(out=out, **paths) for arg in template]


def _with_out(name: str, argv: list[str], out: Path) -> list[str]:
    """Adds ``--out`` unless the case sets its own or writes elsewhere (export takes its output file as an
    argument; generate with --cache-dir writes into the cache)."""
    own = name == "export" or "--out" in argv or "--cache-dir" in argv
    return argv if own else [*argv, "--out", str(out)]


def _run_main(name: str, argv: list[str]) -> int:
    try:
        code = MODULES[name].main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    return code


def _check_error(name: str, stderr: str, words: list[str]) -> None:
    prefix = f"python -m pipelines.{name}: error: "
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(prefix), stderr
    assert sum(prefix in line for line in lines) == 1, stderr
    for word in words:
        assert word in lines[-1], (word, lines[-1])


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Inputs under tmp_path/in; every cache and default output folder inside tmp_path, so that any write shows."""
    monkeypatch.setenv("INV_KERNELS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    return make_inputs(tmp_path)


@pytest.mark.parametrize(
    ("case", "name", "template", "words"), CASES, ids=[(c.values if hasattr(c, "values") else c)[0] for c in CASES]
)
def test_bad_input_exits_2_naming_the_problem_and_writes_nothing(
    case, name, template, words, isolated, tmp_path, capsys
):
    out = tmp_path / "out"
    argv = _with_out(name, _argv(template, isolated, out), out)
    before = _snapshot(tmp_path)
    code = _run_main(name, argv)
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    _check_error(name, stderr, words)
    assert not out.exists()
    assert not (tmp_path / PAYLOAD_MARKER).exists()  # no code from a checkpoint ran
    assert _snapshot(tmp_path) == before  # nothing written, nothing changed


SUBPROCESS_CASES = {
    "generate": (["--size", "5", "--out", "{out}"], ["--size", "5"]),
    "pretrain": (["--data", "{missing}", *PRETRAIN, "--out", "{out}"], ["missing"]),
    "export": (["{text}", "{out}/backbone.pth"], ["notes.txt"]),
    "measure": (["--model", "{empty}", *MEASURE, "--out", "{out}"], ["is a folder, not a checkpoint"]),
    "transfer": (["--models", "a={text}", "--out", "{out}"], ["notes.txt"]),
    "correlate": (["--invariance", "a={text}", "--transfer", "{transfer}", "--out", "{out}"], ["notes.txt"]),
    "study": (["--lr", "nan", "--out", "{out}"], ["--lr", "nan"]),
}


@pytest.fixture(scope="module")
def subprocess_runs(tmp_path_factory):
    """Runs one bad-input case of every entry point as ``python -m pipelines.<name>``, all at once."""
    runs = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("INV_KERNELS_CACHE")}
    for name, (template, _) in SUBPROCESS_CASES.items():
        folder = tmp_path_factory.mktemp(f"cli-{name}")
        paths = make_inputs(folder)
        out = folder / "out"
        before = _snapshot(folder)
        process = subprocess.Popen(
            [sys.executable, "-m", f"pipelines.{name}", *_argv(template, paths, out)],
            cwd=folder,
            env={**env, "INV_KERNELS_CACHE": str(folder / "cache"), "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        runs[name] = (process, folder, out, before)
    results = {}
    for name, (process, folder, out, before) in runs.items():
        stdout, stderr = process.communicate(timeout=300)
        results[name] = (process.returncode, stderr, folder, out, before)
    return results


@pytest.mark.parametrize("name", list(SUBPROCESS_CASES))
def test_entry_point_in_a_subprocess(name, subprocess_runs):
    code, stderr, folder, out, before = subprocess_runs[name]
    assert code == 2, stderr
    _check_error(name, stderr, SUBPROCESS_CASES[name][1])
    assert not out.exists() and _snapshot(folder) == before
