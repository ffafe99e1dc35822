"""Name parsers of the real-world multi-view datasets (docs/METHOD.md section 4.3): one per folder layout, each mapping a
file's path (relative to the dataset root) to the key of its view group.

A parser is called once per image file with the path's parts, the file name without its extension and the scan's
``ScanInfo``; it returns ``None`` when the name is not of its layout (the file is *ignored*), ``(key, False)`` when
the name is of the layout but the file takes part in no group by design (the file is *unused*: e.g. ALOT's rotated
images for the temperature groups, or the other lights in the paper's ALOT-viewpoint grouping) and ``(key, True)``
for a member of group ``key``. Numbers in keys are written without leading zeros ("obj12", "mat17/c1/r60").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Parts = tuple[str, ...]  # a file's path relative to the root, split into folders and the file name
Parsed = tuple[str, bool] | None

# ALOT's six light directions (l6 and l7 do not exist); the paper's viewpoint grouping picks one per material.
ALOT_LIGHTS: tuple[int, ...] = (1, 2, 3, 4, 5, 8)
ALOT_FAMILY: tuple[str, ...] = ("alot_viewpoint", "alot_illumination", "alot_temperature")

_COIL = re.compile(r"obj(\d+)__(\d+)")  # obj<object>__<angle or index>
_ALOI_VIEW = re.compile(r"(\d+)_r(\d+)")  # <obj>_r<angle>
_ALOI_ILL = re.compile(r"(\d+)_l(\d+)c(\d+)")  # <obj>_l<light>c<camera>
_ALOI_TEMP = re.compile(r"(\d+)_i(\d+)")  # <obj>_i<colour temperature code>
# <mat>_c<camera>l<light>[r<rotation>] or <mat>_c<camera>i (the reddish illumination)
_ALOT = re.compile(r"(\d+)_c(\d+)(?:l(\d+)(?:r(\d+))?|(i))")
_FLICKR = re.compile(r"(.+)_([LR])")  # <pair>_L / <pair>_R
_EXPOSURE = re.compile(r"([^-]+)-.*")  # <id>-<rest>
# The reference of a group: GT_IMAGES in training/ and validation/; in testing/, which has no GT_IMAGES, expert C's
# retouching (the dataset's own evaluation uses it); the other experts' images take part in no group.
_EXPOSURE_GT = ("GT_IMAGES", "EXPERT_C_TESTING_SET")
_EXPOSURE_OTHER_EXPERTS = re.compile(r"EXPERT_[ABDE]_TESTING_SET")


@dataclass(frozen=True)
class ScanInfo:
    """What the whole scan found that a parser needs: whether DaLI's ``input/png/<scene>/`` folders are present."""

    dali_input: bool


@dataclass(frozen=True)
class Layout:
    """One supported layout: its description (factor varied; group), an example of its names, its parser, and an
    optional test a group must pass (its members' parts) to be kept; groups failing it are unused."""

    name: str
    description: str
    example: str
    parse: Callable[[Parts, str, str, ScanInfo], Parsed]
    keep: Callable[[Sequence[Parts]], bool] | None = None


def _coil(parts: Parts, stem: str, mode: str, info: ScanInfo) -> Parsed:
    m = _COIL.fullmatch(stem)
    return None if m is None else (f"obj{int(m[1])}", True)


def _aloi_viewpoint(parts: Parts, stem: str, mode: str, info: ScanInfo) -> Parsed:
    m = _ALOI_VIEW.fullmatch(stem)
    return None if m is None else (f"obj{int(m[1])}", True)


def _aloi_illumination(parts: Parts, stem: str, mode: str, info: ScanInfo) -> Parsed:
    m = _ALOI_ILL.fullmatch(stem)
    return None if m is None else (f"obj{int(m[1])}/c{int(m[3])}", True)


def _aloi_temperature(parts: Parts, stem: str, mode: str, info: ScanInfo) -> Parsed:
    m = _ALOI_TEMP.fullmatch(stem)
    return None if m is None else (f"obj{int(m[1])}", True)


def paper_alot_light(material: int) -> int:
    """The one light the paper's code uses for ALOT-viewpoint material ``material`` (1-based folder number).

    ``datasets/alot.py`` L39-41 does ``class_idx %= 250`` and then ``light = class_idx % 6``, so group i of its
    1500 is material i % 250 + 1 under light ``ALOT_LIGHTS[(i % 250) % 6]``: each material's 6 groups are one and
    the same group (docs/METHOD.md section 12). The intended light, ``class_idx // 250``, ranges over all 6.
    """
    return ALOT_LIGHTS[(material - 1) % len(ALOT_LIGHTS)]


def _alot_viewpoint(parts: Parts, stem: str, mode: str, info: ScanInfo) -> Parsed:
    m = _ALOT.fullmatch(stem)
    if m is None:
        return None
    if m[5] is not None:  # the reddish image has no light index
        return "", False
    material, light = int(m[1]), int(m[3])
    used = mode == "corrected" or light == paper_alot_light(material)
    return f"mat{material}/l{light}", used  # 4 cameras x 4 rotations


def _alot_illumination(parts: Parts, stem: str, mode: str, info: ScanInfo) -> Parsed:
    m = _ALOT.fullmatch(stem)
    if m is None:
        return None
    if m[5] is not None:
        return "", False
    return f"mat{int(m[1])}/c{int(m[2])}/r{int(m[4] or 0)}", True  # the 6 lights


def _alot_temperature(parts: Parts, stem: str, mode: str, info: ScanInfo) -> Parsed:
    m = _ALOT.fullmatch(stem)
    if m is None:
        return None
    key = f"mat{int(m[1])}/c{int(m[2])}"
    return key, m[5] is not None or (int(m[3]) == 8 and m[4] is None)  # l8 and the reddish i, unrotated


def _flickr1024(parts: Parts, stem: str, mode: str, info: ScanInfo) -> Parsed:
    m = _FLICKR.fullmatch(stem)
    return None if m is None else ("/".join((*parts[:-1], m[1])), True)


def _realblur(parts: Parts, stem: str, mode: str, info: ScanInfo) -> Parsed:
    if len(parts) < 2 or parts[-2] not in ("gt", "blur"):
        return None
    m = re.fullmatch(rf"{parts[-2]}_(\d+)", stem)
    return None if m is None else ("/".join((*parts[:-2], str(int(m[1])))), True)


def _exposure_errors(parts: Parts, stem: str, mode: str, info: ScanInfo) -> Parsed:
    folder = parts[-2].upper() if len(parts) >= 2 else ""
    other_expert = _EXPOSURE_OTHER_EXPERTS.fullmatch(folder) is not None
    if folder != "INPUT_IMAGES" and folder not in _EXPOSURE_GT and not other_expert:
        return None
    m = _EXPOSURE.fullmatch(stem)
    return None if m is None else ("/".join((*parts[:-2], m[1])), not other_expert)


def _has_gt(members: Sequence[Parts]) -> bool:
    return any(p[-2].upper() in _EXPOSURE_GT for p in members)


def _dali(parts: Parts, stem: str, mode: str, info: ScanInfo) -> Parsed:
    if info.dali_input:
        ok = len(parts) == 4 and parts[0] == "input" and parts[1] == "png"
        return (parts[2], True) if ok else None
    return (parts[0], True) if len(parts) == 2 else None


_ALOT_EXAMPLE = "1/1_c1l1.png, 1/1_c1l1r60.png, 1/1_c1i.png"
_SPECS: tuple[Layout, ...] = (
    Layout(
        "coil",
        "viewpoint (turntable); group = object: obj<N>__<angle>.png anywhere under root (COIL-100; "
        "COIL-20's obj<N>__<i>.png too)",
        "obj1__0.png",
        _coil,
    ),
    Layout("aloi_viewpoint", "viewpoint; group = object: <obj>/<obj>_r<angle>.png", "1/1_r0.png", _aloi_viewpoint),
    Layout(
        "aloi_illumination",
        "illumination direction; group = (object, camera): <obj>/<obj>_l<l>c<c>.png",
        "1/1_l1c1.png",
        _aloi_illumination,
    ),
    Layout(
        "aloi_temperature",
        "illumination colour temperature; group = object: <obj>/<obj>_i<code>.png",
        "1/1_i110.png",
        _aloi_temperature,
    ),
    Layout(
        "alot_viewpoint",
        "viewpoint, 4 cameras x 4 rotations; group = (material, light): <mat>/<mat>_c<c>l<l>[r<60|120|180>].png",
        _ALOT_EXAMPLE,
        _alot_viewpoint,
    ),
    Layout(
        "alot_illumination",
        "light direction l1-l5, l8; group = (material, camera, rotation): same names",
        _ALOT_EXAMPLE,
        _alot_illumination,
    ),
    Layout(
        "alot_temperature",
        "illumination colour, l8 vs reddish i; group = (material, camera): same names",
        _ALOT_EXAMPLE,
        _alot_temperature,
    ),
    Layout(
        "flickr1024",
        "stereo viewpoint; group = pair: <name>_L.png + <name>_R.png anywhere under root",
        "Train/0001_L.png + Train/0001_R.png",
        _flickr1024,
    ),
    Layout(
        "realblur",
        "camera-motion blur; group = (scene, n): <scene>/gt/gt_<n>.png + <scene>/blur/blur_<n>.png",
        "scene001/gt/gt_1.png + scene001/blur/blur_1.png",
        _realblur,
    ),
    Layout(
        "exposure_errors",
        "exposure; group = id, the reference plus its renderings: GT_IMAGES/<id>-*.jpg (in "
        "testing/: expert_c_testing_set/<id>-*.jpg) + INPUT_IMAGES/<id>-*.JPG",
        "GT_IMAGES/a0001-jmac_DSC1459.jpg + INPUT_IMAGES/a0001-jmac_DSC1459_0.JPG",
        _exposure_errors,
        _has_gt,
    ),
    Layout(
        "dali",
        "daylight illumination; group = scene folder: input/png/<scene>/*.png or <scene>/*.png",
        "input/png/1/<any>.png",
        _dali,
    ),
)
SPECS: dict[str, Layout] = {spec.name: spec for spec in _SPECS}
LAYOUTS: dict[str, str] = {spec.name: spec.description for spec in _SPECS}
