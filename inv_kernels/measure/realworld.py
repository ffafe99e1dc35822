"""Real-world invariance groups: the images of one multi-view dataset folder, grouped by the object or scene they
show, with one real factor varied inside each group (Ericsson et al., BMVC 2022, section 4.3 of docs/METHOD.md).

``find_groups(root, layout)`` walks the folder once (sorted), parses every file name once into a dict
group key -> paths and returns the groups sorted by key. The layouts (``LAYOUTS``) are those of COIL-100/COIL-20,
ALOI (viewpoint, illumination, temperature), ALOT (the same three), Flickr1024, RealBlur, ExposureErrors and DaLI.
Unlike the paper's code, nothing rescans the file list per group, globs are sorted and recursive, pairs are matched
by their names (RealBlur, Flickr1024, ExposureErrors) and ALOT-viewpoint has its six lights (``mode="paper"``
reproduces the bug of docs/METHOD.md section 12 where they collapse into one per material).
"""

from __future__ import annotations

import os
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from inv_kernels.data.folders import IMG_EXTENSIONS
from inv_kernels.measure.realworld_layouts import (
    ALOT_FAMILY,
    ALOT_LIGHTS,
    LAYOUTS,
    SPECS,
    Parts,
    ScanInfo,
    paper_alot_light,
)

__all__ = ["ALOT_LIGHTS", "LAYOUTS", "FoundGroups", "ViewGroup", "describe_groups", "find_groups", "paper_alot_light"]

MODES = ("corrected", "paper")
ON_SMALL = ("error", "skip")
_SHOW = 5  # group keys or file names quoted in a message


@dataclass(frozen=True)
class ViewGroup:
    """The images of one object or scene under the varied factor.

    key: names the object/scene/material and the fixed factors ("obj12", "obj3/c2", "mat17/l4", "mat17/c1/r60").
    paths: the image files, sorted.
    """

    key: str
    paths: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)


class FoundGroups(list):
    """What ``find_groups`` returns: a list of ``ViewGroup`` sorted by key, with what the scan saw.

    Attributes:
        root: the folder scanned. layout: the layout used (the detected one for ``layout="auto"``). mode: as given.
        ignored: image files whose names match nothing of the layout (not counted: hidden and non-image files).
        ignored_examples: the first few of them, relative to root.
        unused: files named as the layout names them that belong to no group by design (ALOT's rotated images for
            temperature groups, the reddish image for viewpoint and illumination groups, the other lights in
            ``mode="paper"``, ExposureErrors renderings whose GT image is missing and, in its testing/ folder, the
            retouchings of experts other than C).
        skipped: {key: size} of the groups smaller than min_size dropped by ``on_small="skip"``.
    """

    def __init__(
        self,
        groups: Sequence[ViewGroup],
        *,
        root: str,
        layout: str,
        mode: str,
        ignored: int,
        ignored_examples: tuple[str, ...],
        unused: int,
        skipped: dict[str, int],
    ):
        super().__init__(groups)
        self.root, self.layout, self.mode = root, layout, mode
        self.ignored, self.ignored_examples, self.unused, self.skipped = ignored, ignored_examples, unused, skipped


def _supported() -> str:
    return "; ".join(f"{name!r}: {SPECS[name].description} (e.g. {SPECS[name].example})" for name in LAYOUTS)


def _scan(root: str) -> list[Parts]:
    """Every image file under root (hidden entries skipped), as path parts relative to root, in sorted walk order."""
    exts = tuple(e.lower() for e in IMG_EXTENSIONS)
    found = []
    for folder, subfolders, files in os.walk(root, followlinks=True):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        rel = os.path.relpath(folder, root)
        prefix = () if rel == os.curdir else tuple(rel.split(os.sep))
        found += [(*prefix, f) for f in sorted(files) if not f.startswith(".") and f.lower().endswith(exts)]
    return found


def _parse_all(layout: str, files: list[Parts], stems: list[str], mode: str, info: ScanInfo) -> list:
    parse = SPECS[layout].parse
    return [parse(parts, stem, mode, info) for parts, stem in zip(files, stems)]


def _detect(root: str, files: list[Parts], stems: list[str], mode: str, info: ScanInfo) -> tuple[str, list]:
    """The one layout whose names are found (with its parse of every file), else a ValueError."""
    candidates = [name for name in LAYOUTS if name != "dali" or info.dali_input]  # a bare <scene>/*.png fits all
    parsed = {name: _parse_all(name, files, stems, mode, info) for name in candidates}
    hits = {name: sum(p is not None for p in results) for name, results in parsed.items()}
    matched = [name for name in candidates if hits[name]]
    if len(matched) == 1:
        return matched[0], parsed[matched[0]]
    if not matched:
        raise ValueError(
            f"find_groups: could not detect the layout of {root!r}: none of its {len(files)} image "
            f"names (e.g. {'/'.join(files[0])!r}) matches a supported layout. Supported layouts: "
            f"{_supported()}"
        )
    if set(matched) == set(ALOT_FAMILY):
        raise ValueError(
            f"find_groups: {root!r} holds ALOT names ({hits[matched[0]]} files), which serve three "
            f"factors: pass layout='alot_viewpoint', 'alot_illumination' or 'alot_temperature'"
        )
    found = ", ".join(f"{name} ({hits[name]} files)" for name in matched)
    raise ValueError(
        f"find_groups: the names in {root!r} match several layouts: {found}; pass layout= one of "
        f"them, or point root at the subfolder of one layout"
    )


def find_groups(
    root: str | os.PathLike,
    layout: str = "auto",
    *,
    mode: str = "corrected",
    min_size: int = 2,
    on_small: str = "error",
) -> FoundGroups:
    """The view groups of a real-world multi-view dataset folder, parsed from its file names in one sorted scan.

    Args:
        root: the dataset folder (e.g. coil-100/, aloi_red4_ill/, alot_png4/, Flickr1024/, RealBlur/,
            ExposureErrors/ or one of its training/, validation/, testing/ folders, DaLI/). Image files are found
            recursively, extensions case-insensitive (.png .jpg .jpeg .JPG ...); hidden files and folders are skipped.
        layout: one of ``LAYOUTS`` or "auto" (detected from the names; the three ALOT layouts share one folder
            and must be named).
        mode: "corrected" (default) or "paper". Only alot_viewpoint differs: "paper" keeps, as the paper's code
            does, one light per material (``paper_alot_light``), i.e. 250 groups of 16 where the code's 1500 are
            these repeated 6 times (same mean); "corrected" gives every (material, light) group (1500 for ALOT).
        min_size: the fewest images a group may have, >= 2 (a group of one has no pair to compare).
        on_small: "error" (default): a group with fewer than min_size images raises; "skip": such groups are
            dropped with a warning and listed in the result's ``skipped``.

    Returns:
        A ``FoundGroups`` list of ``ViewGroup`` sorted by key (paths sorted within each group), with the
        attributes layout, ignored (image files matching nothing of the layout), ignored_examples, unused, skipped.

    Raises:
        TypeError: root not a path; layout, mode or on_small not a str; min_size not an int.
        FileNotFoundError: root does not exist. NotADirectoryError: root is a file.
        ValueError: unknown layout, mode or on_small; min_size < 2; root holds no image files; no file matches
            the layout (message shows an expected name); "auto" finds no layout or several; a group with fewer
            than min_size images (keys and sizes named); no group left after skipping.
    """
    op = "find_groups"
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"{op}: root must be a str or path, got {type(root).__name__}")
    for name, value, allowed in (
        ("layout", layout, ("auto", *LAYOUTS)),
        ("mode", mode, MODES),
        ("on_small", on_small, ON_SMALL),
    ):
        if not isinstance(value, str):
            raise TypeError(f"{op}: {name} must be a str, got {type(value).__name__}")
        if value not in allowed:
            extra = f"; supported layouts: {_supported()}" if name == "layout" else ""
            raise ValueError(f"{op}: {name} must be one of {', '.join(map(repr, allowed))}, got {value!r}{extra}")
    if isinstance(min_size, bool) or not isinstance(min_size, int):
        raise TypeError(f"{op}: min_size must be an int, got {type(min_size).__name__}")
    if min_size < 2:
        raise ValueError(f"{op}: min_size must be >= 2 (a group of one image has no pair to compare), got {min_size}")
    root = os.fspath(root)
    if not os.path.exists(root):
        raise FileNotFoundError(f"{op}: folder {root!r} does not exist")
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{op}: {root!r} is not a folder")

    files = _scan(root)  # the one walk of the folder
    if not files:
        expect = "" if layout == "auto" else f" (layout {layout!r} expects names such as {SPECS[layout].example})"
        raise ValueError(f"{op}: folder {root!r} holds no image files ({', '.join(IMG_EXTENSIONS)}){expect}")
    stems = [os.path.splitext(parts[-1])[0] for parts in files]
    info = ScanInfo(dali_input=any(len(p) == 4 and p[:2] == ("input", "png") for p in files))
    if layout == "auto":
        layout, parsed = _detect(root, files, stems, mode, info)
    else:
        parsed = _parse_all(layout, files, stems, mode, info)
    spec = SPECS[layout]

    members: dict[str, list[Parts]] = {}
    ignored, unused = [], 0
    for parts, result in zip(files, parsed):
        if result is None:
            ignored.append("/".join(parts))
        elif result[1]:
            members.setdefault(result[0], []).append(parts)
        else:
            unused += 1
    if not members:
        raise ValueError(
            f"{op}: no file in {root!r} matches layout {layout!r} ({spec.description}); expected names "
            f"such as {spec.example}, found e.g. {'/'.join(files[0])!r} ({len(files)} image files)"
        )
    if spec.keep is not None:
        for key in [k for k, parts in members.items() if not spec.keep(parts)]:
            unused += len(members.pop(key))
        if not members:
            raise ValueError(f"{op}: no complete group in {root!r} for layout {layout!r}; expected {spec.example}")

    small = {key: len(members[key]) for key in sorted(members) if len(members[key]) < min_size}
    if small and on_small == "error":
        shown = ", ".join(
            f"{key!r} ({size} image{'s' if size != 1 else ''})" for key, size in list(small.items())[:_SHOW]
        )
        more = f" and {len(small) - _SHOW} more" if len(small) > _SHOW else ""
        raise ValueError(
            f"{op}: {len(small)} group(s) of layout {layout!r} in {root!r} have fewer than "
            f"min_size={min_size} images: {shown}{more} (missing files or partners?); on_small='skip' "
            f"drops them"
        )
    if small:
        warnings.warn(
            f"{op}: skipped {len(small)} group(s) of layout {layout!r} with fewer than {min_size} images "
            f"in {root!r} (e.g. {next(iter(small))!r})",
            stacklevel=2,
        )
        if len(small) == len(members):
            raise ValueError(f"{op}: every group of layout {layout!r} in {root!r} has fewer than {min_size} images")
    groups = [
        ViewGroup(key, tuple(sorted(os.path.join(root, *p) for p in members[key])))
        for key in sorted(members)
        if key not in small
    ]
    return FoundGroups(
        groups,
        root=root,
        layout=layout,
        mode=mode,
        ignored=len(ignored),
        ignored_examples=tuple(ignored[:_SHOW]),
        unused=unused,
        skipped=small,
    )


def describe_groups(groups: Sequence[ViewGroup]) -> dict:
    """Summary of a list of groups for reports.

    Args:
        groups: ViewGroup objects (a ``FoundGroups`` adds its layout, mode, ignored, unused and skipped counts).

    Returns:
        {"groups", "images", "size_min", "size_median", "size_max"} (plus "layout", "mode", "ignored", "unused",
        "skipped" for a FoundGroups).

    Raises:
        TypeError: an element is not a ViewGroup. ValueError: groups is empty.
    """
    if not groups:
        raise ValueError("describe_groups: groups is empty")
    for g in groups:
        if not isinstance(g, ViewGroup):
            raise TypeError(f"describe_groups: groups must hold ViewGroup objects, got {type(g).__name__}")
    sizes = [len(g.paths) for g in groups]
    summary = {
        "groups": len(sizes),
        "images": sum(sizes),
        "size_min": min(sizes),
        "size_median": statistics.median(sizes),
        "size_max": max(sizes),
    }
    if isinstance(groups, FoundGroups):
        summary.update(
            layout=groups.layout,
            mode=groups.mode,
            ignored=groups.ignored,
            unused=groups.unused,
            skipped=len(groups.skipped),
        )
    return summary
