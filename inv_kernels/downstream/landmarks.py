"""Keypoint-regression tasks (docs/METHOD.md section 6): 300W (68 face landmarks), CelebA aligned (5 landmarks) and Leeds
Sports Pose (14 joints; the LSP and LSP-extended releases). Targets are (x0, y0, x1, y1, ...) mapped into the
out_size-pixel frame of crop(box) -> Resize(resize_size) -> CenterCrop(out_size); the metric is R^2 (uniform average
over outputs).

Modes (docs/METHOD.md section 12):
- 300W: ``paper`` crops a square anchored at the landmarks' min corner, side max(bbox w, h), no margin (the face
  is off-centre); ``corrected`` crops a square centred on the landmarks with a 10 % margin per side.
  Both: random 30/30/40 split (seed 0) of indoor + outdoor; trainval = train + valid.
- LSP and LSP-extended: ``paper`` uses a random 60/40 split (seed 0) and ignores the visibility flag; ``corrected``
  uses LSP's standard split (first half train, second half test; LSP-extended has none and keeps the 60/40 split) and
  records per-item visibility (``DownstreamTask.visibility``), which the ridge probe uses to leave joints that are not
  visible out of its fit and its R^2. Targets are kept for every joint.
- CelebA: the same in both modes (central square of the aligned image; partition 0 + 1 trainval, 2 test).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from inv_kernels.data.folders import IMG_EXTENSIONS
from inv_kernels.downstream.common import (
    DownstreamTask,
    TaskItem,
    as_float_tuple,
    centre_square_box,
    check_mode,
    check_sizes,
    finite_or_raise,
    image_size,
    landmark_box,
    random_split,
    remap_points,
    require_dir,
    require_file,
)

W300_POINTS = 68
CELEBA_POINTS = 5
LSP_JOINTS = 14


def xy_names(count: int) -> tuple[str, ...]:
    return tuple(f"{axis}{i}" for i in range(count) for axis in ("x", "y"))


def read_pts(path: str | Path, expected: int | None = W300_POINTS) -> np.ndarray:
    """Reads an ibug .pts file: ``version: 1``, ``n_points: N``, ``{``, N lines ``x y``, ``}``.

    Args:
        path: the file. expected: the number of points it must hold (None: any).

    Returns:
        (N, 2) float64 x, y (1-based pixel coordinates as the file stores them).

    Raises:
        ValueError: a malformed file, a count that disagrees with its header, or a count other than ``expected``
            (the file and the counts named).
    """
    path = Path(path)
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    header = {}
    for ln in lines:
        if ln.startswith("{"):
            break
        key, _, value = ln.partition(":")
        header[key.strip()] = value.strip()
    try:
        start, end = lines.index("{"), lines.index("}")
    except ValueError:
        raise ValueError(f"read_pts: {str(path)!r} is not a .pts file (no '{{' ... '}}' block)") from None
    try:
        points = np.asarray([[float(v) for v in ln.split()] for ln in lines[start + 1 : end]], dtype=np.float64)
    except ValueError:
        raise ValueError(f"read_pts: {str(path)!r} has a point line that is not two numbers") from None
    if points.size and (points.ndim != 2 or points.shape[1] != 2):
        raise ValueError(f"read_pts: {str(path)!r} has a point line that is not two numbers")
    declared = header.get("n_points")
    if declared is not None and (not declared.isdigit() or int(declared) != len(points)):
        raise ValueError(f"read_pts: {str(path)!r} declares n_points: {declared} but lists {len(points)} points")
    if expected is not None and len(points) != expected:
        raise ValueError(f"read_pts: {str(path)!r} has {len(points)} points, expected {expected}")
    finite_or_raise("read_pts", points, repr(str(path)))
    return points.reshape(-1, 2)


def w300_task(
    root: str | Path,
    *,
    mode: str = "paper",
    seed: int = 0,
    margin: float = 0.1,
    out_size: int = 224,
    resize_size: int | None = None,
) -> DownstreamTask:
    """300W from ``root/01_Indoor/*.{png,jpg}`` and ``root/02_Outdoor/*`` with a ``<stem>.pts`` beside each image.

    Split: ``random_split`` of the sorted indoor + outdoor images with fraction 0.6 (= train 30 % + valid 30 %) for
    trainval, the remaining 40 % test (600 images: 360 / 240). Target: 136 values, the 68 landmarks in crop pixels.

    Raises:
        FileNotFoundError: a missing folder. ValueError: an image without its .pts (or a .pts without its image),
            a .pts with the wrong number of points (the file named), no images.
    """
    op = "w300_task"
    check_mode(op, mode)
    out_size, resize_size = check_sizes(op, out_size, resize_size)
    root = Path(root)
    images = []
    for sub in ("01_Indoor", "02_Outdoor"):
        folder = require_dir(op, root / sub, "300W")
        names = sorted(os.listdir(folder))
        stems = {Path(n).stem for n in names if n.lower().endswith(IMG_EXTENSIONS)}
        for n in names:
            if n.endswith(".pts") and Path(n).stem not in stems:
                raise ValueError(f"{op}: landmark file {str(folder / n)!r} has no image beside it")
        images += [folder / n for n in names if n.lower().endswith(IMG_EXTENSIONS)]
    if not images:
        raise ValueError(f"{op}: no images in {str(root / '01_Indoor')!r} or {str(root / '02_Outdoor')!r}")
    items = []
    for path in images:
        pts_path = path.with_suffix(".pts")
        if not pts_path.is_file():
            raise ValueError(f"{op}: image {str(path)!r} has no landmark file {str(pts_path)!r}")
        points = read_pts(pts_path, W300_POINTS)
        box = landmark_box(points, mode, margin)
        target = as_float_tuple(remap_points(points, box, out_size, resize_size))
        items.append(TaskItem(str(path), target, box))
    trainval, test = random_split(len(items), 0.6, seed)
    notes = (
        "face box anchored at the landmarks' min corner, no margin (reference code)"
        if mode == "paper"
        else f"face box centred on the landmarks with a {margin:.0%} margin per side"
    )
    return DownstreamTask(
        "300w",
        "regression",
        "r2",
        tuple(items[i] for i in trainval),
        tuple(items[i] for i in test),
        str(root),
        mode,
        out_size,
        resize_size,
        target_names=xy_names(W300_POINTS),
        notes=notes,
    )


def _celeba_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of the data rows of a CelebA list file (1-based line numbers)."""
    rows = []
    with open(path) as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if fields:
                rows.append((number, fields))
    return rows


def _celeba_path(op: str, root: Path, folder: str, name: str) -> Path:
    """``root/folder/name`` (the authors' Img/, Anno/ and Eval/ folders) or ``root/name`` (torchvision's flat
    folder), whichever exists (FileNotFoundError naming both when neither does)."""
    for path in (root / folder / name, root / name):
        if path.exists():
            return path
    raise FileNotFoundError(
        f"{op}: CelebA's {name} is neither at {str(root / folder / name)!r} (the authors' "
        f"layout) nor at {str(root / name)!r} (torchvision's)"
    )


def celeba_task(
    root: str | Path,
    *,
    mode: str = "paper",
    image_wh: tuple[int, int] | None = None,
    out_size: int = 224,
    resize_size: int | None = None,
) -> DownstreamTask:
    """CelebA aligned landmarks from ``img_align_celeba/*.jpg``, ``list_landmarks_align_celeba.txt`` (a count line, a
    line of 10 column names, rows ``name x1 y1 ... x5 y5``) and ``list_eval_partition.txt`` (rows ``name split``, 0
    train, 1 valid, 2 test), either in the authors' folders (``root/Img/``, ``root/Anno/``, ``root/Eval/``, with
    ``img_align_celeba.zip`` unzipped in ``Img/``) or all directly in ``root`` (torchvision's layout).

    Trainval = partitions 0 and 1, test = 2. Crop: the central square of side min(w, h) (178 px of the aligned
    178 x 218 images); target: 10 values in crop pixels.

    Args:
        image_wh: the (width, height) of every image, to skip reading 200 k image headers (default: read each).

    Raises:
        FileNotFoundError: a missing folder or list file. ValueError: a malformed row, a count line that disagrees
            with the rows, a landmark row without a partition, or a row whose image is missing (file, line and
            image named).
    """
    op = "celeba_task"
    check_mode(op, mode)
    out_size, resize_size = check_sizes(op, out_size, resize_size)
    root = Path(root)
    image_dir = require_dir(op, _celeba_path(op, root, "Img", "img_align_celeba"), "CelebA image")
    marks_path = require_file(op, _celeba_path(op, root, "Anno", "list_landmarks_align_celeba.txt"), "CelebA landmark")
    part_path = require_file(op, _celeba_path(op, root, "Eval", "list_eval_partition.txt"), "CelebA partition")
    rows = _celeba_rows(marks_path)
    if len(rows) < 2 or not rows[0][1][0].isdigit():
        raise ValueError(f"{op}: {str(marks_path)!r} must start with a count line and a line of column names")
    declared = int(rows[0][1][0])
    names_line, data = rows[1], rows[2:]
    if len(names_line[1]) != 2 * CELEBA_POINTS:
        raise ValueError(
            f"{op}: {str(marks_path)!r} line {names_line[0]} names {len(names_line[1])} columns, "
            f"expected {2 * CELEBA_POINTS}"
        )
    if declared != len(data):
        raise ValueError(f"{op}: {str(marks_path)!r} declares {declared} rows but has {len(data)}")
    partition = {}
    for number, fields in _celeba_rows(part_path):
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise ValueError(f"{op}: {str(part_path)!r} line {number} is not 'name 0|1|2': {' '.join(fields)!r}")
        partition[fields[0]] = int(fields[1])
    present = {e.name for e in os.scandir(image_dir)}
    splits: dict[str, list[TaskItem]] = {"trainval": [], "test": []}
    skipped = []
    for number, fields in data:
        if len(fields) != 1 + 2 * CELEBA_POINTS:
            raise ValueError(
                f"{op}: {str(marks_path)!r} line {number} has {len(fields) - 1} values, expected {2 * CELEBA_POINTS}"
            )
        name = fields[0]
        if name not in present:
            raise ValueError(
                f"{op}: {str(marks_path)!r} line {number} names image {str(image_dir / name)!r}, which is missing"
            )
        if name not in partition:
            raise ValueError(
                f"{op}: {str(marks_path)!r} line {number}: image {name!r} has no row in {str(part_path)!r}"
            )
        try:
            points = np.asarray([float(v) for v in fields[1:]], dtype=np.float64).reshape(CELEBA_POINTS, 2)
        except ValueError:
            raise ValueError(f"{op}: {str(marks_path)!r} line {number} has a value that is not a number") from None
        path = image_dir / name
        wh = image_wh or image_size(path)
        if wh is None:
            skipped.append(str(path))
            continue
        box = centre_square_box(*wh)
        target = as_float_tuple(remap_points(points, box, out_size, resize_size))
        splits["test" if partition[name] == 2 else "trainval"].append(TaskItem(str(path), target, box))
    return DownstreamTask(
        "celeba",
        "regression",
        "r2",
        tuple(splits["trainval"]),
        tuple(splits["test"]),
        str(root),
        mode,
        out_size,
        resize_size,
        target_names=xy_names(CELEBA_POINTS),
        skipped=tuple(skipped),
        notes="central square of the aligned image; partitions 0+1 trainval, 2 test",
    )


# The two releases: joints.mat's shape names the release; the release names its images and its visibility flag.
_LSP_RELEASES = {
    (3, LSP_JOINTS): ("LSP", 4, "1 for an occluded joint"),
    (LSP_JOINTS, 3): ("LSP-extended", 5, "1 for a visible joint"),
}


def _read_lsp_joints(op: str, path: Path) -> tuple[str, int, np.ndarray, np.ndarray]:
    """(release, digits of its image numbers, xy (N, 14, 2), visible (N, 14) bool) from an LSP joints.mat."""
    import scipy.io

    try:
        joints = np.asarray(scipy.io.loadmat(path)["joints"], dtype=np.float64)
    except KeyError:
        raise ValueError(f"{op}: {str(path)!r} has no variable 'joints'") from None
    except Exception as error:
        raise ValueError(f"{op}: cannot read {str(path)!r} as a MATLAB file: {error}") from None
    release = _LSP_RELEASES.get(joints.shape[:2]) if joints.ndim == 3 else None
    if release is None:
        raise ValueError(
            f"{op}: {str(path)!r} joints has shape {joints.shape}, expected (3, 14, N) (LSP) or "
            f"(14, 3, N) (LSP-extended)"
        )
    if release[0] == "LSP":
        xy, visible = joints[:2].transpose(2, 1, 0), joints[2].T == 0  # (N, 14, 2), (N, 14)
    else:
        xy, visible = joints[:, :2].transpose(2, 0, 1), joints[:, 2].T != 0
    finite_or_raise(op, xy, repr(str(path)))
    return release[0], release[1], xy, visible


def _lsp_image_names(
    op: str, image_dir: Path, joints_path: Path, release: str, digits: int, n: int, allow_missing: bool
) -> tuple[list[str | None], str]:
    """The image name of each of the n joints columns (None where the image is missing, with allow_missing), and a
    note on what is missing ("" when nothing is)."""
    present = {e.name for e in os.scandir(image_dir)}
    names = [f"im{k:0{digits}d}.jpg" for k in range(1, n + 1)]
    found = [name for name in names if name in present]
    if not found:
        shape = next(f"({s[0]}, {s[1]}, {n})" for s, r in _LSP_RELEASES.items() if r[0] == release)
        others = [f"im{1:0{r[1]}d}.jpg ({r[0]})" for r in _LSP_RELEASES.values() if r[0] != release]
        seen = sorted(name for name in present if name.lower().endswith(IMG_EXTENSIONS))[:1]
        raise ValueError(
            f"{op}: {str(joints_path)!r} has shape {shape}, the {release} release, whose images are "
            f"named {names[0]} ...; {str(image_dir)!r} holds none of them (found "
            f"{seen[0] if seen else 'no image'}; the other release names them {others[0]})"
        )
    if len(found) == n:
        return names, ""
    missing = [name for name in names if name not in present]
    counts = f"{str(joints_path)!r} annotates {n} images but {str(image_dir)!r} holds {len(found)} of them"
    shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
    if not allow_missing:
        raise ValueError(
            f"{op}: {counts} (missing: {shown}; a partial download?); pass allow_missing=True to read "
            f"the {len(found)} that exist"
        )
    warnings.warn(
        f"{op}: reading {len(found)} of the {n} images annotated in {str(joints_path)!r} (missing: {shown})",
        stacklevel=3,
    )
    return [name if name in present else None for name in names], f"; {len(found)} of the {n} images present"


def lsp_task(
    root: str | Path,
    *,
    mode: str = "paper",
    seed: int = 0,
    out_size: int = 224,
    resize_size: int | None = None,
    allow_missing: bool = False,
) -> DownstreamTask:
    """Leeds Sports Pose from ``root/images/`` and ``root/joints.mat`` (variable ``joints``), as either release's
    archive unpacks.

    - LSP (``lsp_dataset.zip``): ``joints`` is 3 x 14 x 2000 (x, y, and a flag that is 1 for an *occluded* joint),
      images ``im0001.jpg`` ... ``im2000.jpg``.
    - LSP-extended (``lspet_dataset.zip``): ``joints`` is 14 x 3 x 10000 (x, y, and a flag that is 1 for a
      *visible* joint), images ``im00001.jpg`` ... ``im10000.jpg``.

    Crop: the central square of side min(w, h). Target: 28 values in crop pixels. Split: ``paper`` random 60/40
    (``random_split`` seed 0), visibility not recorded; ``corrected`` LSP's standard split (first half train, second
    half test; LSP-extended publishes none and keeps the seeded 60/40), with per-joint visibility on each item.

    Args:
        allow_missing: read a joints.mat that annotates more images than ``images/`` holds (a partial download) for
            the images that exist, with a warning giving both counts; by default that is an error. Splits are
            made over all annotated images, so each image keeps the split it has in the full download.

    Raises:
        FileNotFoundError: a missing folder or joints.mat. ValueError: joints of another shape; no image named as
            the release names them; missing images without ``allow_missing`` (both counts named).
    """
    op = "lsp_task"
    check_mode(op, mode)
    out_size, resize_size = check_sizes(op, out_size, resize_size)
    root = Path(root)
    image_dir = require_dir(op, root / "images", "LSP image")
    joints_path = require_file(op, root / "joints.mat", "LSP joints")
    release, digits, xy, visible = _read_lsp_joints(op, joints_path)
    n = xy.shape[0]
    names, missing_note = _lsp_image_names(op, image_dir, joints_path, release, digits, n, allow_missing)
    items: dict[int, TaskItem] = {}
    skipped = []
    for k, name in enumerate(names):
        if name is None:
            continue
        wh = image_size(image_dir / name)
        if wh is None:
            skipped.append(str(image_dir / name))
            continue
        box = centre_square_box(*wh)
        target = as_float_tuple(remap_points(xy[k], box, out_size, resize_size))
        vis = tuple(bool(v) for v in np.repeat(visible[k], 2)) if mode == "corrected" else None
        items[k] = TaskItem(str(image_dir / name), target, box, vis)
    if mode == "corrected" and release == "LSP":
        tv_idx, te_idx = list(range(n // 2)), list(range(n // 2, n))
        notes = "LSP's standard first-half / second-half split; visible joints only in the fit and the score"
    else:
        tv_idx, te_idx = random_split(n, 0.6, seed)
        notes = f"{release}: random 60/40 split (seed {seed})"
        notes += (
            "; visible joints only in the fit and the score (LSP-extended has no standard test split)"
            if mode == "corrected"
            else ", visibility ignored (reference code)"
        )
    trainval = tuple(items[k] for k in tv_idx if k in items)
    test = tuple(items[k] for k in te_idx if k in items)
    return DownstreamTask(
        "leeds_sports_pose",
        "regression",
        "r2",
        trainval,
        test,
        str(root),
        mode,
        out_size,
        resize_size,
        target_names=xy_names(LSP_JOINTS),
        skipped=tuple(skipped),
        notes=notes + missing_note,
    )
