"""Keypoint-regression tasks (PAPER.md section 6): 300W (68 face landmarks), CelebA aligned (5 landmarks) and Leeds
Sports Pose (14 joints). Targets are (x0, y0, x1, y1, ...) mapped into the out_size-pixel frame of
crop(box) -> Resize(resize_size) -> CenterCrop(out_size); the metric is R^2 (uniform average over outputs).

Modes (PAPER.md section 12):
- 300W: ``paper`` crops a square anchored at the landmarks' min corner, side max(bbox w, h), no margin (the face
  is off-centre); ``corrected`` crops a square centred on the landmarks with a 10 % margin per side.
  Both: random 30/30/40 split (seed 0) of indoor + outdoor; trainval = train + valid.
- LSP: ``paper`` uses a random 60/40 split (seed 0) and ignores the visibility flag; ``corrected`` uses LSP's
  standard split (first half train, second half test) and records per-item visibility (``DownstreamTask.visibility``)
  so a probe can leave invisible joints out of its loss and its R^2. Targets are kept for every joint.
- CelebA: the same in both modes (central square of the aligned image; partition 0 + 1 trainval, 2 test).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from inv_kernels.augment.folder import IMG_EXTENSIONS
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


def w300_task(root: str | Path, *, mode: str = "paper", seed: int = 0, margin: float = 0.1, out_size: int = 224,
              resize_size: int | None = None) -> DownstreamTask:  # fmt: skip
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
    notes = ("face box anchored at the landmarks' min corner, no margin (reference code)" if mode == "paper"
             else f"face box centred on the landmarks with a {margin:.0%} margin per side")
    return DownstreamTask("300w", "regression", "r2", tuple(items[i] for i in trainval), tuple(items[i] for i in test),
                          str(root), mode, out_size, resize_size, target_names=xy_names(W300_POINTS), notes=notes)


def _celeba_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of the data rows of a CelebA list file (1-based line numbers)."""
    rows = []
    with open(path) as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if fields:
                rows.append((number, fields))
    return rows


def celeba_task(root: str | Path, *, mode: str = "paper", image_wh: tuple[int, int] | None = None,
                out_size: int = 224, resize_size: int | None = None) -> DownstreamTask:  # fmt: skip
    """CelebA aligned landmarks from ``root/img_align_celeba/*.jpg``, ``root/list_landmarks_align_celeba.txt``
    (a count line, a line of 10 column names, rows ``name x1 y1 ... x5 y5``) and ``root/list_eval_partition.txt``
    (rows ``name split``, 0 train, 1 valid, 2 test).

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
    image_dir = require_dir(op, root / "img_align_celeba", "CelebA image")
    marks_path = require_file(op, root / "list_landmarks_align_celeba.txt", "CelebA landmark")
    part_path = require_file(op, root / "list_eval_partition.txt", "CelebA partition")
    rows = _celeba_rows(marks_path)
    if len(rows) < 2 or not rows[0][1][0].isdigit():
        raise ValueError(f"{op}: {str(marks_path)!r} must start with a count line and a line of column names")
    declared = int(rows[0][1][0])
    names_line, data = rows[1], rows[2:]
    if len(names_line[1]) != 2 * CELEBA_POINTS:
        raise ValueError(f"{op}: {str(marks_path)!r} line {names_line[0]} names {len(names_line[1])} columns, "
                         f"expected {2 * CELEBA_POINTS}")
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
            raise ValueError(f"{op}: {str(marks_path)!r} line {number} has {len(fields) - 1} values, expected "
                             f"{2 * CELEBA_POINTS}")
        name = fields[0]
        if name not in present:
            raise ValueError(f"{op}: {str(marks_path)!r} line {number} names image {str(image_dir / name)!r}, "
                             f"which is missing")
        if name not in partition:
            raise ValueError(f"{op}: {str(marks_path)!r} line {number}: image {name!r} has no row in "
                             f"{str(part_path)!r}")
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
    return DownstreamTask("celeba", "regression", "r2", tuple(splits["trainval"]), tuple(splits["test"]), str(root),
                          mode, out_size, resize_size, target_names=xy_names(CELEBA_POINTS), skipped=tuple(skipped),
                          notes="central square of the aligned image; partitions 0+1 trainval, 2 test")


def lsp_task(root: str | Path, *, mode: str = "paper", seed: int = 0, out_size: int = 224,
             resize_size: int | None = None) -> DownstreamTask:  # fmt: skip
    """Leeds Sports Pose from ``root/images/im0001.jpg ...`` and ``root/joints.mat`` (variable ``joints``).

    ``joints`` is 3 x 14 x N (LSP: x, y, and a flag that is 1 for an *occluded* joint) or 14 x 3 x N (LSP-extended:
    the flag is 1 for a visible joint); image k (1-based) is ``im%04d.jpg`` (5 digits past 9999).
    Crop: the central square of side min(w, h). Target: 28 values in crop pixels.
    Split: ``paper`` random 60/40 (``random_split`` seed 0), visibility ignored; ``corrected`` the standard first
    half / second half, with visibility recorded on each item.

    Raises:
        FileNotFoundError: a missing folder or joints.mat. ValueError: joints of another shape; a joints column whose
            image is missing (the column and file named).
    """
    op = "lsp_task"
    check_mode(op, mode)
    out_size, resize_size = check_sizes(op, out_size, resize_size)
    root = Path(root)
    image_dir = require_dir(op, root / "images", "LSP image")
    joints_path = require_file(op, root / "joints.mat", "LSP joints")
    import scipy.io

    try:
        joints = np.asarray(scipy.io.loadmat(joints_path)["joints"], dtype=np.float64)
    except KeyError:
        raise ValueError(f"{op}: {str(joints_path)!r} has no variable 'joints'") from None
    except Exception as error:
        raise ValueError(f"{op}: cannot read {str(joints_path)!r} as a MATLAB file: {error}") from None
    if joints.ndim == 3 and joints.shape[:2] == (3, LSP_JOINTS):
        xy, visible = joints[:2].transpose(2, 1, 0), joints[2].T == 0  # (N, 14, 2), (N, 14): flag 1 = occluded
    elif joints.ndim == 3 and joints.shape[:2] == (LSP_JOINTS, 3):
        xy, visible = joints[:, :2].transpose(2, 0, 1), joints[:, 2].T != 0  # LSP-extended: flag 1 = visible
    else:
        raise ValueError(f"{op}: {str(joints_path)!r} joints has shape {joints.shape}, expected (3, 14, N) or "
                         f"(14, 3, N)")
    finite_or_raise(op, xy, repr(str(joints_path)))
    present = {e.name for e in os.scandir(image_dir)}
    items, keep, skipped = [], [], []
    for k in range(xy.shape[0]):
        name = f"im{k + 1:04d}.jpg"
        if name not in present:
            raise ValueError(f"{op}: {str(joints_path)!r} column {k + 1} (of {xy.shape[0]}) has no image "
                             f"{str(image_dir / name)!r}")
        wh = image_size(image_dir / name)
        if wh is None:
            skipped.append(str(image_dir / name))
            continue
        box = centre_square_box(*wh)
        target = as_float_tuple(remap_points(xy[k], box, out_size, resize_size))
        vis = tuple(bool(v) for v in np.repeat(visible[k], 2)) if mode == "corrected" else None
        items.append(TaskItem(str(image_dir / name), target, box, vis))
        keep.append(k)
    n = xy.shape[0]
    if mode == "paper":
        tv_idx, te_idx = random_split(n, 0.6, seed)
        notes = "random 60/40 split (seed 0), visibility ignored (reference code)"
    else:
        tv_idx, te_idx = list(range(n // 2)), list(range(n // 2, n))
        notes = "standard first-half / second-half split; visibility recorded per joint"
    where = {k: i for i, k in enumerate(keep)}
    trainval = tuple(items[where[k]] for k in tv_idx if k in where)
    test = tuple(items[where[k]] for k in te_idx if k in where)
    return DownstreamTask("leeds_sports_pose", "regression", "r2", trainval, test, str(root), mode, out_size,
                          resize_size, target_names=xy_names(LSP_JOINTS), skipped=tuple(skipped), notes=notes)
