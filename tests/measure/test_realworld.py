"""find_groups on tiny fake copies of the public multi-view datasets' folder layouts (docs/METHOD.md section 4.3), named
exactly as the datasets name their files, and on the built-in generated COIL and ALOI sets."""

import io
import os
import random

import pytest
from fixtures import published_layouts as published
from PIL import Image

from inv_kernels.data import generated_dataset
from inv_kernels.measure.realworld import (
    ALOT_LIGHTS,
    LAYOUTS,
    FoundGroups,
    ViewGroup,
    describe_groups,
    find_groups,
    paper_alot_light,
)


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 90)).save(buffer, format=fmt)
    return buffer.getvalue()


_BYTES = {"png": _encoded("PNG"), "jpg": _encoded("JPEG"), "jpeg": _encoded("JPEG")}


def write_images(root, names, shuffle=True):
    """Writes a real 4x4 image at each relative name (PNG or JPEG by suffix), in a random order."""
    names = list(names)
    if shuffle:
        random.shuffle(names)  # the result must not depend on creation order
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_BYTES[name.rsplit(".", 1)[1].lower()])
    return root


def keys_sizes(groups):
    return {g.key: len(g.paths) for g in groups}


def rel(group, root):
    return [os.path.relpath(p, root).replace(os.sep, "/") for p in group.paths]


def check_sorted(groups):
    assert [g.key for g in groups] == sorted(g.key for g in groups)
    for g in groups:
        assert list(g.paths) == sorted(g.paths) and len(set(g.paths)) == len(g.paths)
        assert all(os.path.isfile(p) for p in g.paths)


# ----------------------------------------------------------------------------------------------------------------
# fake folders, one per layout


@pytest.fixture
def coil(tmp_path):
    names = [f"obj{o}__{a}.png" for o in (1, 2, 10) for a in (0, 5, 10, 355)]
    return write_images(tmp_path / "coil-100", names)


ALOI_CODES = (110, 120, 130, 140, 150, 160, 170, 180, 190, 210, 230, 250)


def aloi_names(kind, objects=(1, 2, 12)):
    if kind == "viewpoint":
        return [f"{o}/{o}_r{a}.png" for o in objects for a in range(0, 360, 5)]
    if kind == "illumination":
        return [f"{o}/{o}_l{l}c{c}.png" for o in objects for l in range(1, 9) for c in (1, 2, 3)]
    return [f"{o}/{o}_i{code}.png" for o in objects for code in ALOI_CODES]


ALOT_MATERIALS = (1, 2, 7)


def alot_names(materials=ALOT_MATERIALS):
    """ALOT's 100 images per material: 4 cameras x (6 lights x 4 rotations + the reddish image)."""
    names = []
    for m in materials:
        for c in (1, 2, 3, 4):
            names.append(f"{m}/{m}_c{c}i.png")
            for l in ALOT_LIGHTS:
                names.append(f"{m}/{m}_c{c}l{l}.png")
                names += [f"{m}/{m}_c{c}l{l}r{r}.png" for r in (60, 120, 180)]
    return names


@pytest.fixture
def alot(tmp_path):
    return write_images(tmp_path / "ALOT", alot_names())


REALBLUR_J = "RealBlur-J_ECC_IMCORR_centroid_itensity_ref"


def realblur_names(scenes=("scene001", "scene002"), numbers=(1, 2, 10)):
    return [f"{REALBLUR_J}/{s}/{kind}/{kind}_{n}.png" for s in scenes for kind in ("gt", "blur") for n in numbers]


EXPOSURE_SUFFIXES = ("0", "N1", "N1.5", "P1", "P1.5")


def exposure_names(ids=("a0001-jmac_DSC1459", "a0002-dgw_005", "a0010-kme_264")):
    names = []
    for name in ids:
        names.append(f"GT_IMAGES/{name}.jpg")
        names += [f"INPUT_IMAGES/{name}_{s}.JPG" for s in EXPOSURE_SUFFIXES]
    return names


# ----------------------------------------------------------------------------------------------------------------
# groups per layout


def test_layouts_listed():
    assert set(LAYOUTS) == {
        "coil",
        "aloi_viewpoint",
        "aloi_illumination",
        "aloi_temperature",
        "alot_viewpoint",
        "alot_illumination",
        "alot_temperature",
        "flickr1024",
        "realblur",
        "exposure_errors",
        "dali",
    }
    assert all(isinstance(d, str) and "group" in d and "\n" not in d for d in LAYOUTS.values())


def test_coil_groups_sorted_and_detected(coil):
    (coil / "README.txt").write_text("not an image, not counted")
    groups = find_groups(coil)
    assert isinstance(groups, FoundGroups) and isinstance(groups, list) and groups.layout == "coil"
    assert [g.key for g in groups] == ["obj1", "obj10", "obj2"]
    assert keys_sizes(groups) == {"obj1": 4, "obj10": 4, "obj2": 4}
    assert rel(groups[0], coil) == ["obj1__0.png", "obj1__10.png", "obj1__355.png", "obj1__5.png"]
    assert groups.ignored == 0 and groups.unused == 0 and groups.skipped == {}
    check_sorted(groups)
    assert find_groups(coil, "coil") == groups  # explicit equals detected, and the scan is deterministic
    assert all(isinstance(g, ViewGroup) for g in groups)


def test_coil20_index_names_and_jpeg_any_case(tmp_path):
    root = write_images(
        tmp_path / "coil-20-proc",
        [f"obj{o}__{i}.png" for o in (1, 20) for i in range(72)]
        + ["jpegs/obj3__0.JPG", "jpegs/obj3__5.jpeg", "jpegs/obj3__10.Jpg"],
    )
    groups = find_groups(root, "auto")
    assert keys_sizes(groups) == {"obj1": 72, "obj20": 72, "obj3": 3}
    assert rel(groups[2], root) == ["jpegs/obj3__0.JPG", "jpegs/obj3__10.Jpg", "jpegs/obj3__5.jpeg"]


def test_ignored_files_counted(coil):
    write_images(coil, ["background.png", "obj4_0.png", "sub/obj5__x.jpg"])
    write_images(coil, [".hidden/obj9__0.png", ".obj9__5.png"])  # hidden: skipped, not counted
    (coil / "notes.txt").write_text("x")
    groups = find_groups(coil, "coil")
    assert keys_sizes(groups) == {"obj1": 4, "obj10": 4, "obj2": 4}
    assert groups.ignored == 3
    assert groups.ignored_examples == ("background.png", "obj4_0.png", "sub/obj5__x.jpg")


@pytest.mark.parametrize(
    "kind,layout,size", [("viewpoint", "aloi_viewpoint", 72), ("temperature", "aloi_temperature", 12)]
)
def test_aloi_object_groups(tmp_path, kind, layout, size):
    root = write_images(tmp_path / "ALOI" / kind, aloi_names(kind))
    groups = find_groups(root)
    assert groups.layout == layout
    assert keys_sizes(groups) == {"obj1": size, "obj12": size, "obj2": size}
    assert all(os.path.basename(p).startswith("12_") for p in groups[1].paths)
    check_sorted(groups)
    assert find_groups(root, layout) == groups


def test_aloi_illumination_groups_by_camera(tmp_path):
    root = write_images(tmp_path / "illumination", aloi_names("illumination"))
    groups = find_groups(root)
    assert groups.layout == "aloi_illumination"
    assert keys_sizes(groups) == {f"obj{o}/c{c}": 8 for o in (1, 2, 12) for c in (1, 2, 3)}
    g = dict((g.key, g) for g in groups)["obj12/c3"]
    assert rel(g, root) == [f"12/12_l{l}c3.png" for l in range(1, 9)]
    check_sorted(groups)


def test_aloi_root_with_three_subsets(tmp_path):
    """The paper's ALOI/<mode>/ layout: auto refuses the mixed root, an explicit layout picks its own names."""
    root = tmp_path / "ALOI"
    for kind in ("viewpoint", "illumination", "temperature"):
        write_images(root / kind, aloi_names(kind, objects=(1, 2)))
    with pytest.raises(ValueError, match="several layouts") as info:
        find_groups(root)
    for name in ("aloi_viewpoint (144 files)", "aloi_illumination (48 files)", "aloi_temperature (24 files)"):
        assert name in str(info.value)
    groups = find_groups(root, "aloi_temperature")
    assert keys_sizes(groups) == {"obj1": 12, "obj2": 12}
    assert groups.ignored == 144 + 48


def test_alot_viewpoint_corrected(alot):
    groups = find_groups(alot, "alot_viewpoint")
    assert groups.mode == "corrected"
    assert keys_sizes(groups) == {f"mat{m}/l{l}": 16 for m in ALOT_MATERIALS for l in ALOT_LIGHTS}
    g = dict((g.key, g) for g in groups)["mat2/l8"]
    assert sorted(rel(g, alot)) == sorted(
        f"2/2_c{c}l8{r}.png" for c in (1, 2, 3, 4) for r in ("", "r60", "r120", "r180")
    )
    assert groups.unused == 4 * len(ALOT_MATERIALS)  # the reddish images
    assert groups.ignored == 0
    check_sorted(groups)


def test_alot_viewpoint_paper_collapses_lights(alot):
    """docs/METHOD.md section 12: the paper's code keeps one light per material, chosen by the material index."""
    assert [paper_alot_light(m) for m in range(1, 9)] == [1, 2, 3, 4, 5, 8, 1, 2]
    paper = find_groups(alot, "alot_viewpoint", mode="paper")
    assert paper.mode == "paper"
    assert keys_sizes(paper) == {"mat1/l1": 16, "mat2/l2": 16, "mat7/l1": 16}
    assert paper.unused == len(ALOT_MATERIALS) * (100 - 16)
    corrected = {g.key: g for g in find_groups(alot, "alot_viewpoint")}
    for g in paper:  # each paper group is one of the corrected groups
        assert corrected[g.key] == g
    assert len(corrected) == 6 * len(paper)


def test_alot_illumination_and_temperature(alot):
    ill = find_groups(alot, "alot_illumination")
    assert keys_sizes(ill) == {
        f"mat{m}/c{c}/r{r}": 6 for m in ALOT_MATERIALS for c in (1, 2, 3, 4) for r in (0, 60, 120, 180)
    }
    g = dict((g.key, g) for g in ill)["mat7/c3/r60"]
    assert rel(g, alot) == [f"7/7_c3l{l}r60.png" for l in ALOT_LIGHTS]
    assert ill.unused == 4 * len(ALOT_MATERIALS)
    temp = find_groups(alot, "alot_temperature")
    assert keys_sizes(temp) == {f"mat{m}/c{c}": 2 for m in ALOT_MATERIALS for c in (1, 2, 3, 4)}
    assert rel(dict((g.key, g) for g in temp)["mat1/c4"], alot) == ["1/1_c4i.png", "1/1_c4l8.png"]
    assert temp.unused == len(ALOT_MATERIALS) * (100 - 8)
    assert find_groups(alot, "alot_illumination", mode="paper") == ill  # mode only changes viewpoint


def test_alot_auto_asks_for_the_factor(alot):
    with pytest.raises(ValueError, match="ALOT") as info:
        find_groups(alot)
    for name in ("alot_viewpoint", "alot_illumination", "alot_temperature"):
        assert name in str(info.value)


def test_flickr1024_pairs_recursive(tmp_path):
    names = [
        f"{split}/{i:04d}_{side}.png" for split in ("Train", "Validation", "Test") for i in (1, 2) for side in "LR"
    ] + ["Test/extra/0003_L.png", "Test/extra/0003_R.png"]
    root = write_images(tmp_path / "Flickr1024", names)
    groups = find_groups(root)
    assert groups.layout == "flickr1024"
    assert [g.key for g in groups] == [
        "Test/0001",
        "Test/0002",
        "Test/extra/0003",
        "Train/0001",
        "Train/0002",
        "Validation/0001",
        "Validation/0002",
    ]
    assert all(len(g) == 2 for g in groups)
    assert rel(groups[0], root) == ["Test/0001_L.png", "Test/0001_R.png"]


def test_flickr1024_missing_partner(tmp_path):
    root = write_images(
        tmp_path / "Flickr1024", ["Train/0001_L.png", "Train/0001_R.png", "Train/0002_L.png", "Train/0003_R.png"]
    )
    with pytest.raises(ValueError, match="min_size=2") as info:
        find_groups(root)
    assert "'Train/0002' (1 image)" in str(info.value) and "'Train/0003' (1 image)" in str(info.value)
    assert "2 group(s)" in str(info.value)
    with pytest.warns(UserWarning, match="skipped 2 group"):
        groups = find_groups(root, on_small="skip")
    assert keys_sizes(groups) == {"Train/0001": 2}
    assert groups.skipped == {"Train/0002": 1, "Train/0003": 1}


def test_realblur_pairs_matched_by_number(tmp_path):
    root = write_images(tmp_path / "RealBlur", realblur_names())
    groups = find_groups(root)
    assert groups.layout == "realblur"
    assert keys_sizes(groups) == {f"{REALBLUR_J}/{s}/{n}": 2 for s in ("scene001", "scene002") for n in (1, 2, 10)}
    g = dict((g.key, g) for g in groups)[f"{REALBLUR_J}/scene002/10"]
    assert rel(g, root) == [f"{REALBLUR_J}/scene002/blur/blur_10.png", f"{REALBLUR_J}/scene002/gt/gt_10.png"]
    check_sorted(groups)
    # a missing blurred image is a group of one, not a silent shift of every later pair (the paper's sorted zip)
    os.remove(root / REALBLUR_J / "scene001" / "blur" / "blur_2.png")
    with pytest.raises(ValueError, match=f"'{REALBLUR_J}/scene001/2' \\(1 image\\)"):
        find_groups(root, "realblur")


def test_exposure_errors_groups(tmp_path):
    root = write_images(
        tmp_path / "training", exposure_names() + ["INPUT_IMAGES/a0099-nogt_0.JPG", "INPUT_IMAGES/a0099-nogt_P1.JPG"]
    )
    groups = find_groups(root)
    assert groups.layout == "exposure_errors"
    assert keys_sizes(groups) == {"a0001": 6, "a0002": 6, "a0010": 6}
    assert rel(groups[0], root) == ["GT_IMAGES/a0001-jmac_DSC1459.jpg"] + sorted(
        f"INPUT_IMAGES/a0001-jmac_DSC1459_{s}.JPG" for s in EXPOSURE_SUFFIXES
    )
    assert groups.unused == 2  # renderings without their GT image
    check_sorted(groups)


def test_exposure_errors_without_gt(tmp_path):
    root = write_images(tmp_path / "x", ["INPUT_IMAGES/a0001-a_0.JPG", "INPUT_IMAGES/a0001-a_P1.JPG"])
    with pytest.raises(ValueError, match="no complete group.*exposure_errors.*GT_IMAGES/a0001"):
        find_groups(root, "exposure_errors")


def test_dali_both_forms(tmp_path):
    names = [f"{s}/{i:03d}.png" for s in (1, 2, 12) for i in range(4)]
    nested = write_images(tmp_path / "DaLI", [f"input/png/{n}" for n in names] + ["input/readme.png"])
    groups = find_groups(nested)
    assert groups.layout == "dali" and groups.ignored == 1
    assert keys_sizes(groups) == {"1": 4, "12": 4, "2": 4}
    assert rel(groups[0], nested) == [f"input/png/1/{i:03d}.png" for i in range(4)]
    flat = write_images(tmp_path / "flat", names)
    assert keys_sizes(find_groups(flat, "dali")) == {"1": 4, "12": 4, "2": 4}
    with pytest.raises(ValueError, match="could not detect"):  # a bare <scene>/*.png is not guessed
        find_groups(flat)


# ----------------------------------------------------------------------------------------------------------------
# the public downloads as they unpack (tests/fixtures/published_layouts.py)


def test_published_coil100_and_coil20(tmp_path):
    groups = find_groups(published.coil100(tmp_path))
    assert groups.layout == "coil" and groups.ignored == 0
    assert keys_sizes(groups) == {"obj1": 3, "obj100": 3, "obj2": 3}
    proc = find_groups(published.coil20_proc(tmp_path))
    assert proc.layout == "coil" and keys_sizes(proc) == {"obj1": 3, "obj20": 3}
    assert rel(proc[0], tmp_path / "coil-20-proc") == ["obj1__0.png", "obj1__1.png", "obj1__71.png"]


@pytest.mark.parametrize(
    "kind,layout,key,size",
    [
        ("viewpoint", "aloi_viewpoint", "obj1000", 3),
        ("illumination", "aloi_illumination", "obj1000/c3", 8),
        ("temperature", "aloi_temperature", "obj1000", 12),
    ],
)
def test_published_aloi_tars(tmp_path, kind, layout, key, size):
    root = published.aloi(tmp_path, kind)
    groups = find_groups(root)
    assert groups.layout == layout and groups.ignored == 0
    assert len(groups) == (9 if kind == "illumination" else 3) and keys_sizes(groups)[key] == size
    assert all(p.startswith(str(root / "png4" / "1000")) for p in dict((g.key, g) for g in groups)[key].paths)


def test_published_aloi_tars_extracted_into_one_folder(tmp_path):
    """The three tars share their png4/<obj>/ folders: each layout takes its own names from the merged folder."""
    root = tmp_path / "ALOI"
    for kind in published.ALOI_TARS:
        published.write_files(root, published.aloi_names(kind))
    with pytest.raises(ValueError, match="several layouts"):
        find_groups(root)
    assert keys_sizes(find_groups(root, "aloi_temperature")) == {"obj1": 12, "obj1000": 12, "obj2": 12}
    assert len(find_groups(root, "aloi_illumination")) == 9 and len(find_groups(root, "aloi_viewpoint")) == 3


def test_published_alot(tmp_path):
    root = published.alot(tmp_path)
    view = find_groups(root, "alot_viewpoint")
    assert keys_sizes(view) == {f"mat{m}/l{light}": 16 for m in (1, 2, 250) for light in ALOT_LIGHTS}
    assert view.unused == 3 * 4  # the reddish images
    ill = find_groups(root, "alot_illumination")
    assert len(ill) == 3 * 4 * 4 and set(keys_sizes(ill).values()) == {6}
    temp = find_groups(root, "alot_temperature")
    assert rel(dict((g.key, g) for g in temp)["mat250/c2"], root) == ["png4/250/250_c2i.png", "png4/250/250_c2l8.png"]
    assert find_groups(root, "alot_viewpoint", mode="paper").unused == 3 * (100 - 16)


def test_published_flickr1024(tmp_path):
    root = published.flickr1024(tmp_path)
    groups = find_groups(root)
    assert groups.layout == "flickr1024" and groups.ignored == 0
    assert [g.key for g in groups] == [
        "Test/001",
        "Test/112",
        "Train/0001",
        "Train/0002",
        "Train/0800",
        "Validation/001",
        "Validation/112",
    ]
    assert rel(groups[0], root) == ["Test/001_L.png", "Test/001_R.png"]


def test_published_realblur(tmp_path):
    root = published.realblur(tmp_path)
    groups = find_groups(root)  # the list files are not images: not counted
    assert groups.layout == "realblur" and groups.ignored == 0
    assert len(groups) == 2 * 2 * 3 and set(keys_sizes(groups).values()) == {2}
    pair = dict((g.key, g) for g in groups)[f"{published.REALBLUR_R}/scene232/10"]
    assert rel(pair, root) == [
        f"{published.REALBLUR_R}/scene232/blur/blur_10.png",
        f"{published.REALBLUR_R}/scene232/gt/gt_10.png",
    ]
    j_only = find_groups(root / published.REALBLUR_J)
    assert len(j_only) == 6 and j_only[0].key == "scene001/1"


def test_published_exposure_errors_all_three_splits(tmp_path):
    """training/ and validation/ pair INPUT_IMAGES with GT_IMAGES; testing/ has no GT_IMAGES but the five experts'
    retouched images, of which expert C is the reference (the dataset's own evaluation)."""
    root = published.exposure_errors(tmp_path)
    groups = find_groups(root)
    assert groups.layout == "exposure_errors" and groups.ignored == 0
    ids = ("a0001", "a0002", "a4999")
    assert keys_sizes(groups) == {f"{split}/{i}": 6 for split in ("testing", "training", "validation") for i in ids}
    test_group = dict((g.key, g) for g in groups)["testing/a0001"]
    assert rel(test_group, root) == sorted(
        ["testing/expert_c_testing_set/a0001-jmac_DSC1459.jpg"]
        + [f"testing/INPUT_IMAGES/a0001-jmac_DSC1459_{ev}.JPG" for ev in published.EXPOSURES]
    )
    assert groups.unused == 3 * 4  # the other experts' images
    testing = find_groups(root / "testing")
    assert keys_sizes(testing) == {i: 6 for i in ids}


def test_published_dali(tmp_path):
    groups = find_groups(published.dali(tmp_path))
    assert groups.layout == "dali" and keys_sizes(groups) == {"1": 4, "12": 4, "2": 4}


# ----------------------------------------------------------------------------------------------------------------
# errors


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist"):
        find_groups(tmp_path / "nowhere")
    (tmp_path / "f.png").write_bytes(_BYTES["png"])
    with pytest.raises(NotADirectoryError, match="f.png"):
        find_groups(tmp_path / "f.png")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no image files"):
        find_groups(tmp_path / "empty")
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"holds no image files.*layout 'coil' expects names such as obj1__0\.png"):
        find_groups(tmp_path / "empty", "coil")


def test_nothing_matches_the_layout(coil):
    with pytest.raises(ValueError, match=r"no file .* matches layout 'aloi_viewpoint'.*1/1_r0\.png.*found e\.g\."):
        find_groups(coil, "aloi_viewpoint")


def test_auto_nothing_matches(tmp_path):
    root = write_images(tmp_path / "misc", ["a.png", "b/c.jpg"])
    with pytest.raises(ValueError, match="could not detect the layout") as info:
        find_groups(root)
    for name in LAYOUTS:
        assert repr(name) in str(info.value)


def test_all_groups_too_small(tmp_path):
    root = write_images(tmp_path / "pairs", ["0001_L.png", "0002_R.png"])
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="every group"):
        find_groups(root, on_small="skip")


def test_min_size_above_two(coil):
    with pytest.raises(ValueError, match=r"3 group\(s\).*min_size=5.*'obj1' \(4 images\)"):
        find_groups(coil, min_size=5)
    assert len(find_groups(coil, min_size=4)) == 3


def test_many_small_groups_message_truncated(tmp_path):
    root = write_images(tmp_path / "c", [f"obj{o}__0.png" for o in range(1, 9)], shuffle=False)
    with pytest.raises(ValueError, match="8 group.*and 3 more"):
        find_groups(root)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"layout": "coil100"}, ValueError, "layout must be one of.*got 'coil100'"),
        ({"layout": 3}, TypeError, "layout must be a str"),
        ({"mode": "buggy"}, ValueError, "mode must be one of 'corrected', 'paper'"),
        ({"on_small": "drop"}, ValueError, "on_small must be one of 'error', 'skip'"),
        ({"min_size": 1}, ValueError, "min_size must be >= 2.*got 1"),
        ({"min_size": 2.0}, TypeError, "min_size must be an int"),
        ({"min_size": True}, TypeError, "min_size must be an int"),
    ],
)
def test_bad_arguments(coil, kwargs, error, match):
    with pytest.raises(error, match=match):
        find_groups(coil, **kwargs)


def test_bad_root_type():
    with pytest.raises(TypeError, match="root must be a str or path"):
        find_groups(42)


def test_describe_groups(coil):
    groups = find_groups(coil)
    summary = describe_groups(groups)
    assert summary == {
        "groups": 3,
        "images": 12,
        "size_min": 4,
        "size_median": 4,
        "size_max": 4,
        "layout": "coil",
        "mode": "corrected",
        "ignored": 0,
        "unused": 0,
        "skipped": 0,
    }
    plain = describe_groups(
        [ViewGroup("a", ("x", "y")), ViewGroup("b", ("x", "y", "z", "w")), ViewGroup("c", ("x", "y", "z"))]
    )
    assert plain == {"groups": 3, "images": 9, "size_min": 2, "size_median": 3, "size_max": 4}
    with pytest.raises(ValueError, match="empty"):
        describe_groups([])
    with pytest.raises(TypeError, match="ViewGroup"):
        describe_groups(["a"])


# ----------------------------------------------------------------------------------------------------------------
# the built-in generated sets


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    cache = tmp_path_factory.mktemp("generated-cache")
    return {
        kind: generated_dataset(kind, size=16, count=2, cache_dir=cache, progress=False, device="cpu")
        for kind in ("coil", "aloi")
    }


def test_generated_coil_parses(generated):
    groups = find_groups(generated["coil"], "auto")  # manifest.json is not an image: nothing ignored
    assert groups.layout == "coil" and groups.ignored == 0
    assert keys_sizes(groups) == {"obj1": 72, "obj2": 72}


@pytest.mark.parametrize(
    "kind,layout,sizes",
    [
        ("viewpoint", "aloi_viewpoint", {"obj1": 72, "obj2": 72}),
        ("illumination", "aloi_illumination", {"obj1/c1": 8, "obj2/c1": 8}),
        ("temperature", "aloi_temperature", {"obj1": 12, "obj2": 12}),
    ],
)
def test_generated_aloi_parses(generated, kind, layout, sizes):
    groups = find_groups(generated["aloi"] / kind, "auto")
    assert groups.layout == layout and groups.ignored == 0
    assert keys_sizes(groups) == sizes
    on_root = find_groups(generated["aloi"], layout)
    assert keys_sizes(on_root) == sizes and on_root.ignored == 2 * (72 + 8 + 12) - sum(sizes.values())


# ----------------------------------------------------------------------------------------------------------------
# the measurement driver's group sets


def test_measure_labels_and_caches_an_auto_group_set_under_its_detected_layout(tmp_path):
    from inv_kernels.data import write_dataset
    from inv_kernels.measure.driver import MeasureConfig, Measurement

    data = write_dataset("classification", tmp_path / "cls", size=16, count=2, progress=False)
    coil = published.coil100(tmp_path)
    config = MeasureConfig(
        model="random:resnet18",
        data=str(data),
        num_images=2,
        transforms=("h_flip",),
        groups=(str(coil),),
        out=str(tmp_path / "out"),
        out_size=16,
        resize_size=16,
        workers=0,
        progress=False,
        shrinkage="ledoit_wolf",
        cache_dir=str(tmp_path / "cache"),
    )
    results = Measurement(config).run()
    (group_set,) = results["realworld"]
    assert group_set["name"] == "coil-100:coil" and group_set["num_groups"] == 3
    assert "measure-groups-coil-100-coil" in results["feature_cache"]["written"]
    assert not any("auto" in name for name in results["feature_cache"]["written"])
    again = Measurement(MeasureConfig(**{**config.__dict__, "groups": (f"{coil}:coil",)})).run()
    assert "measure-groups-coil-100-coil" in again["feature_cache"]["read"]  # the same entry as an explicit layout
