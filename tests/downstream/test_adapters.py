"""Downstream adapters on tiny fake folders in every public layout: items, splits, modes, metrics, target remapping
and the error paths."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from fixtures import published_layouts as published
from PIL import Image

from inv_kernels.data import write_dataset
from inv_kernels.downstream import (
    DownstreamTask,
    TaskItem,
    caltech101_task,
    causal3dident_task,
    celeba_task,
    cifar10_task,
    flowers102_task,
    generated_classification_task,
    generated_latents_task,
    get_task,
    image_folder_task,
    lsp_task,
    random_split,
    read_pts,
    remap_points,
    w300_task,
)


def _img(path: Path, w: int = 20, h: int = 16, value: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((h, w, 3), value, dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def _pts(path: Path, points) -> None:
    body = "\n".join(f"{x} {y}" for x, y in points)
    path.write_text(f"version: 1\nn_points: {len(points)}\n{{\n{body}\n}}\n")


# ---------------------------------------------------------------- image folders


def test_image_folder_task_and_cifar(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for c in ("cat", "dog"):
            for i in range(n):
                _img(tmp_path / "cifar" / split / c / f"{i}.jpg", 32, 32)
    task = cifar10_task(tmp_path / "cifar")
    assert task.name == "cifar10" and task.metric == "accuracy" and task.kind == "classification"
    assert len(task.trainval) == 6 and len(task.test) == 4 and task.classes == ("cat", "dog")
    assert task.targets("trainval").tolist() == [0, 0, 0, 1, 1, 1]
    assert task.targets("test").tolist() == [0, 0, 1, 1]
    assert all(it.box is None for it in task.trainval)
    assert get_task("folder", tmp_path / "cifar").name == "cifar"


def test_image_folder_val_and_errors(tmp_path):
    _img(tmp_path / "d" / "train" / "a" / "0.jpg")
    _img(tmp_path / "d" / "val" / "a" / "0.jpg")
    assert len(image_folder_task(tmp_path / "d").test) == 1
    _img(tmp_path / "d" / "val" / "zebra" / "0.jpg")
    with pytest.raises(ValueError, match="zebra"):
        image_folder_task(tmp_path / "d")
    (tmp_path / "e" / "train" / "a").mkdir(parents=True)
    _img(tmp_path / "e" / "train" / "a" / "0.jpg")
    with pytest.raises(FileNotFoundError, match="test.*val"):
        image_folder_task(tmp_path / "e")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        image_folder_task(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="mode must be"):
        image_folder_task(tmp_path / "d", mode="fixed")
    with pytest.raises(ValueError, match="get_task: unknown task 'mnist'"):
        get_task("mnist", tmp_path)


def test_empty_split_is_an_error():
    with pytest.raises(ValueError, match="the test split is empty"):
        DownstreamTask("x", "classification", "accuracy", (TaskItem("a.jpg", 0),), (), "root")


def test_generated_classification_task(tmp_path):
    root = write_dataset("classification", tmp_path / "gen", size=32, count=4, progress=False)
    task = generated_classification_task(root)
    n_cls = len(task.classes)
    assert n_cls >= 2 and len(task.trainval) == 4 * n_cls and len(task.test) == n_cls
    assert sorted(set(task.targets("test").tolist())) == list(range(n_cls))


# ---------------------------------------------------------------- Caltech101


def _caltech(root: Path, counts=(8, 9, 7)) -> None:
    for c, n in enumerate(counts):
        name = "BACKGROUND_Google" if c == 0 else f"class{c}"
        for i in range(n):
            _img(root / "101_ObjectCategories" / name / f"image_{i + 1:04d}.jpg", 12, 10)


def test_caltech101_paper_draws_with_replacement(tmp_path):
    _caltech(tmp_path)
    task = caltech101_task(tmp_path, mode="paper", per_class=5)
    assert task.metric == "mean_per_class_accuracy" and len(task.classes) == 3
    assert len(task.trainval) == 15
    rng = np.random.RandomState(0)
    expected = [rng.choice(n, 5) for n in (8, 9, 7)]  # class order: BACKGROUND_Google, class1, class2
    got = [[int(Path(it.path).stem.split("_")[1]) - 1 for it in task.trainval if it.target == c] for c in range(3)]
    assert got == [e.tolist() for e in expected]
    assert any(len(set(g)) < len(g) for g in got)  # repeats, as the reference code
    tv_paths, test_paths = {it.path for it in task.trainval}, [it.path for it in task.test]
    assert not tv_paths & set(test_paths) and len(test_paths) + len(tv_paths) == 24


def test_caltech101_corrected_draws_without_replacement(tmp_path):
    _caltech(tmp_path)
    task = caltech101_task(tmp_path, mode="corrected", per_class=5)
    assert task.metric == "mean_per_class_accuracy"
    assert len(task.trainval) == 15 and len({it.path for it in task.trainval}) == 15
    assert len(task.test) == 24 - 15
    assert not {it.path for it in task.trainval} & {it.path for it in task.test}
    with pytest.raises(FileNotFoundError, match="101_ObjectCategories"):
        caltech101_task(tmp_path / "missing")


# ---------------------------------------------------------------- Flowers102


def _flowers(root: Path, n: int = 12) -> None:
    for i in range(1, n + 1):
        _img(root / "jpg" / f"image_{i:05d}.jpg", 14, 12)
    labels = np.array([[1 + (i % 3) for i in range(n)]])
    scipy.io.savemat(root / "imagelabels.mat", {"labels": labels})
    scipy.io.savemat(
        root / "setid.mat",
        {"trnid": np.array([[1, 2, 3]]), "valid": np.array([[4, 5, 6]]), "tstid": np.array([[7, 8, 9, 10, 11, 12]])},
    )


def test_flowers_metric_per_mode(tmp_path):
    _flowers(tmp_path)
    paper, corrected = flowers102_task(tmp_path, mode="paper"), flowers102_task(tmp_path, mode="corrected")
    assert paper.metric == "accuracy" and corrected.metric == "mean_per_class_accuracy"
    assert [Path(it.path).name for it in paper.trainval] == [f"image_{i:05d}.jpg" for i in range(1, 7)]
    assert len(paper.test) == 6 and paper.classes == ("1", "2", "3")
    assert paper.targets("trainval").tolist() == [0, 1, 2, 0, 1, 2]


def test_flowers_missing_image_names_row_and_file(tmp_path):
    _flowers(tmp_path)
    (tmp_path / "jpg" / "image_00008.jpg").unlink()
    with pytest.raises(ValueError, match=r"setid.mat.*tstid\[1\] = 8.*image_00008.jpg.*missing"):
        flowers102_task(tmp_path)
    (tmp_path / "imagelabels.mat").unlink()
    with pytest.raises(FileNotFoundError, match="imagelabels.mat"):
        flowers102_task(tmp_path)


# ---------------------------------------------------------------- 300W


def _face_points(shift=0.0):
    pts = np.zeros((68, 2))
    pts[:, 0] = np.linspace(10, 50, 68) + shift  # x span 40
    pts[:, 1] = np.linspace(20, 50, 68)  # y span 30
    pts[5] = (30, 40)
    return pts


def _w300(root: Path, n_in=5, n_out=5) -> None:
    for sub, n, ext in (("01_Indoor", n_in, "png"), ("02_Outdoor", n_out, "jpg")):
        for i in range(n):
            name = f"{sub.split('_')[1].lower()}_{i + 1:03d}"
            _img(root / sub / f"{name}.{ext}", 64, 64)
            _pts(root / sub / f"{name}.pts", _face_points())


def test_w300_paper_crop_and_remap(tmp_path):
    _w300(tmp_path)
    task = w300_task(tmp_path, mode="paper")
    assert task.kind == "regression" and task.metric == "r2" and len(task.target_names) == 136
    assert len(task.trainval) == 6 and len(task.test) == 4
    tv, te = random_split(10, 0.6, 0)
    names = sorted([f"indoor_{i:03d}.png" for i in range(1, 6)]) + sorted([f"outdoor_{i:03d}.jpg" for i in range(1, 6)])
    assert [Path(it.path).name for it in task.trainval] == [names[i] for i in tv]
    item = task.trainval[0]
    assert item.box == (10, 20, 50, 60)  # min corner, side max(40, 30)
    target = np.asarray(item.target).reshape(68, 2)
    np.testing.assert_allclose(target[5], [(30 - 10) * 224 / 40, (40 - 20) * 224 / 40])  # (112, 112)
    np.testing.assert_allclose(target[0], [0.0, 0.0])


def test_w300_corrected_centres_the_face(tmp_path):
    _w300(tmp_path)
    task = w300_task(tmp_path, mode="corrected", out_size=100)
    box = task.trainval[0].box
    side = 40 * 1.2
    assert box == (round(30 - side / 2), round(35 - side / 2), round(30 - side / 2) + 48, round(35 - side / 2) + 48)
    target = np.asarray(task.trainval[0].target).reshape(68, 2)
    np.testing.assert_allclose(target[5], [(30 - box[0]) * 100 / 48, (40 - box[1]) * 100 / 48])
    centre = (target.min(0) + target.max(0)) / 2
    assert np.all(np.abs(centre - 50) < 2)  # the face is centred in the crop


def test_w300_errors(tmp_path):
    _w300(tmp_path, 2, 2)
    bad = tmp_path / "01_Indoor" / "indoor_002.pts"
    _pts(bad, _face_points()[:67])
    with pytest.raises(ValueError, match=r"indoor_002.pts.*has 67 points, expected 68"):
        w300_task(tmp_path)
    bad.write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    with pytest.raises(ValueError, match=r"indoor_002.pts.*declares n_points: 68 but lists 1"):
        w300_task(tmp_path)
    bad.unlink()
    with pytest.raises(ValueError, match=r"indoor_002.png.*has no landmark file.*indoor_002.pts"):
        w300_task(tmp_path)
    _img(tmp_path / "01_Indoor" / "indoor_002.png").unlink()
    _pts(tmp_path / "02_Outdoor" / "orphan.pts", _face_points())
    with pytest.raises(ValueError, match="orphan.pts.*has no image"):
        w300_task(tmp_path)
    with pytest.raises(FileNotFoundError, match="01_Indoor"):
        w300_task(tmp_path / "nothing")


def test_read_pts_roundtrip(tmp_path):
    pts = _face_points()
    _pts(tmp_path / "a.pts", pts)
    np.testing.assert_allclose(read_pts(tmp_path / "a.pts"), pts)


# ---------------------------------------------------------------- CelebA


def _celeba(root: Path, n: int = 6) -> None:
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for name in names:
        _img(root / "img_align_celeba" / name, 18, 22)
    cols = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    rows = [f"{name} 9 13 5 6 9 11 6 16 12 16" for name in names]
    (root / "list_landmarks_align_celeba.txt").write_text(f"{n}\n{cols}\n" + "\n".join(rows) + "\n")
    parts = [0, 0, 0, 1, 2, 2]
    (root / "list_eval_partition.txt").write_text("".join(f"{nm} {p}\n" for nm, p in zip(names, parts)))


def test_celeba_partitions_and_centre_square(tmp_path):
    _celeba(tmp_path)
    task = celeba_task(tmp_path)
    assert len(task.trainval) == 4 and len(task.test) == 2 and len(task.target_names) == 10
    item = task.trainval[0]
    assert item.box == (0, 2, 18, 20)  # central square of 18 x 22
    np.testing.assert_allclose(item.target[:2], [9 * 224 / 18, (13 - 2) * 224 / 18])
    fast = celeba_task(tmp_path, image_wh=(18, 22))
    assert fast.trainval == task.trainval


def test_celeba_errors(tmp_path):
    _celeba(tmp_path)
    (tmp_path / "img_align_celeba" / "000003.jpg").unlink()
    with pytest.raises(ValueError, match=r"list_landmarks_align_celeba.txt.*line 5.*000003.jpg.*missing"):
        celeba_task(tmp_path)
    _img(tmp_path / "img_align_celeba" / "000003.jpg", 18, 22)
    text = (tmp_path / "list_landmarks_align_celeba.txt").read_text().replace("000002.jpg 9 13", "000002.jpg 13")
    (tmp_path / "list_landmarks_align_celeba.txt").write_text(text)
    with pytest.raises(ValueError, match=r"line 4 has 9 values, expected 10"):
        celeba_task(tmp_path)
    (tmp_path / "list_eval_partition.txt").unlink()
    with pytest.raises(FileNotFoundError, match="list_eval_partition.txt"):
        celeba_task(tmp_path)


# ---------------------------------------------------------------- Leeds Sports Pose


def _lsp(root: Path, n: int = 10, layout: str = "lsp") -> np.ndarray:
    for k in range(n):
        _img(root / "images" / f"im{k + 1:04d}.jpg", 30, 20)
    xy = np.random.RandomState(1).uniform(5, 15, size=(2, 14, n))
    flag = np.zeros((1, 14, n))
    flag[0, 3, :] = 1  # joint 3 occluded everywhere (LSP: 1 = occluded)
    joints = np.concatenate([xy, flag])  # (3, 14, N)
    if layout == "lspet":
        joints = np.concatenate([xy, 1 - flag]).transpose(1, 0, 2)  # (14, 3, N), 1 = visible
    scipy.io.savemat(root / "joints.mat", {"joints": joints})
    return xy


def test_lsp_paper_random_split_ignores_visibility(tmp_path):
    xy = _lsp(tmp_path)
    task = lsp_task(tmp_path, mode="paper")
    tv, te = random_split(10, 0.6, 0)
    assert [Path(it.path).name for it in task.trainval] == [f"im{k + 1:04d}.jpg" for k in tv]
    assert len(task.test) == 4 and task.visibility("trainval") is None
    item, k = task.trainval[0], tv[0]
    assert item.box == (5, 0, 25, 20)  # central square of 30 x 20
    np.testing.assert_allclose(
        np.asarray(item.target).reshape(14, 2)[0], [(xy[0, 0, k] - 5) * 224 / 20, xy[1, 0, k] * 224 / 20]
    )


def _visible_pairs(visible: np.ndarray) -> np.ndarray:
    return np.repeat(visible, 2, axis=1)  # (n, 14) -> (n, 28): x and y of a joint share its flag


def test_lsp_download_four_digit_names_and_occluded_flag(tmp_path):
    """LSP: im0001.jpg ..., joints 3 x 14 x N whose third row is 1 for an occluded joint."""
    root, xy, visible = published.lsp(tmp_path, n=10, layout="lsp")
    task = lsp_task(root, mode="corrected")
    assert [Path(it.path).name for it in task.trainval] == [f"im{k:04d}.jpg" for k in range(1, 6)]
    assert [Path(it.path).name for it in task.test] == [f"im{k:04d}.jpg" for k in range(6, 11)]
    np.testing.assert_array_equal(task.visibility("trainval"), _visible_pairs(visible[:5]))
    np.testing.assert_array_equal(task.visibility("test"), _visible_pairs(visible[5:]))
    side = published.SIDE
    np.testing.assert_allclose(np.asarray(task.trainval[0].target).reshape(14, 2), xy[0] * 224 / side)
    assert "standard" in task.notes


def test_lspet_download_five_digit_names_and_visible_flag(tmp_path):
    """LSP-extended: im00001.jpg ..., joints 14 x 3 x N whose third column is 1 for a visible joint."""
    root, xy, visible = published.lsp(tmp_path, n=10, layout="lspet")
    paper = lsp_task(root, mode="paper")
    tv, te = random_split(10, 0.6, 0)
    assert [Path(it.path).name for it in paper.trainval] == [f"im{k + 1:05d}.jpg" for k in tv]
    assert paper.visibility("trainval") is None  # the reference code ignores the flags
    corrected = lsp_task(root, mode="corrected")
    # LSP-extended publishes no test split: both modes use the seeded 60/40 split
    assert [it.path for it in corrected.trainval] == [it.path for it in paper.trainval]
    np.testing.assert_array_equal(corrected.visibility("trainval"), _visible_pairs(visible[tv]))
    np.testing.assert_array_equal(corrected.visibility("test"), _visible_pairs(visible[te]))
    k = tv[0]
    np.testing.assert_allclose(np.asarray(corrected.trainval[0].target).reshape(14, 2), xy[k] * 224 / published.SIDE)


def test_lsp_names_of_the_other_release_are_refused(tmp_path):
    root, _, _ = published.lsp(tmp_path, n=3, layout="lspet")
    joints = scipy.io.loadmat(root / "joints.mat")["joints"]
    scipy.io.savemat(root / "joints.mat", {"joints": joints.transpose(1, 0, 2)})  # LSP's 3 x 14 x N
    with pytest.raises(ValueError, match=r"joints.mat.*\(3, 14, 3\).*LSP.*im0001.jpg.*im00001.jpg"):
        lsp_task(root)


def test_lsp_partial_download_refused_unless_accepted(tmp_path):
    root, _, visible = published.lsp(tmp_path, n=10, present=(1, 2, 3, 7, 9), layout="lspet")
    with pytest.raises(ValueError, match=r"joints.mat.*10 images.*5 of them.*im00004.jpg.*allow_missing=True"):
        lsp_task(root)
    with pytest.warns(UserWarning, match=r"5 of the 10 images"):
        task = lsp_task(root, mode="corrected", allow_missing=True)
    tv, te = random_split(10, 0.6, 0)
    names = {f"im{k:05d}.jpg" for k in (1, 2, 3, 7, 9)}
    assert [Path(it.path).name for it in task.trainval] == [
        f"im{k + 1:05d}.jpg" for k in tv if f"im{k + 1:05d}.jpg" in names
    ]
    assert len(task.trainval) + len(task.test) == 5 and "5 of the 10" in task.notes
    kept = [k for k in tv if f"im{k + 1:05d}.jpg" in names]
    np.testing.assert_array_equal(task.visibility("trainval"), _visible_pairs(visible[kept]))


def test_lsp_errors(tmp_path):
    _lsp(tmp_path, 4)
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": np.zeros((3, 13, 4))})
    with pytest.raises(ValueError, match=r"shape \(3, 13, 4\)"):
        lsp_task(tmp_path)
    (tmp_path / "joints.mat").unlink()
    with pytest.raises(FileNotFoundError, match="joints.mat"):
        lsp_task(tmp_path)


# ---------------------------------------------------------------- Causal3DIdent


def _c3di(root: Path, per_class=(3, 2), test_per_class=(2, 1)) -> None:
    rng = np.random.RandomState(0)
    for split, counts in (("trainset", per_class), ("testset", test_per_class)):
        for c, n in enumerate(counts):
            for i in range(n):
                _img(root / split / f"images_{c}" / f"{i:06d}.png", 16, 16)
            np.save(root / split / f"latents_{c}.npy", rng.uniform(-1, 1, (n, 10)).astype(np.float32))


def test_causal3dident_targets(tmp_path):
    _c3di(tmp_path)
    task = causal3dident_task(tmp_path, target=7)
    lat0 = np.load(tmp_path / "trainset" / "latents_0.npy")
    lat1 = np.load(tmp_path / "trainset" / "latents_1.npy")
    expected = np.concatenate([lat0, lat1])[:, [7]]
    np.testing.assert_allclose(task.targets("trainval"), expected)
    assert task.target_names == ("object_hue",) and task.metric == "r2"
    assert len(causal3dident_task(tmp_path).target_names) == 10
    cls = causal3dident_task(tmp_path, target="class")
    assert cls.kind == "classification" and cls.targets("trainval").tolist() == [0, 0, 0, 1, 1]
    sub = causal3dident_task(tmp_path, max_trainval=3)
    assert len(sub.trainval) == 3 and len(sub.test) == 3
    with pytest.raises(ValueError, match="target must be"):
        causal3dident_task(tmp_path, target=10)


def test_causal3dident_errors(tmp_path):
    _c3di(tmp_path)
    np.save(tmp_path / "trainset" / "latents_1.npy", np.zeros((5, 10), np.float32))
    with pytest.raises(ValueError, match=r"latents_1.npy.*has 5 rows but.*images_1.*holds 2 images"):
        causal3dident_task(tmp_path)
    (tmp_path / "testset" / "latents_0.npy").unlink()
    np.save(tmp_path / "trainset" / "latents_1.npy", np.zeros((2, 10), np.float32))
    with pytest.raises(FileNotFoundError, match="latents_0.npy"):
        causal3dident_task(tmp_path)


def test_generated_latents_task(tmp_path):
    root = write_dataset("latents", tmp_path / "lat", size=32, count=4, progress=False)
    task = generated_latents_task(root, target=[0, 1])
    assert task.name == "generated_latents" and task.targets("trainval").shape[1] == 2
    assert len(task.trainval) > 0 and len(task.test) > 0


def test_remap_points_matches_resize_and_centre_crop():
    # a non-square box: Resize(8) of 20 x 10 -> 16 x 8, CenterCrop(8) starts at x = 4
    out = remap_points(np.array([[10.0, 5.0]]), (0, 0, 20, 10), out_size=8, resize_size=8)
    np.testing.assert_allclose(out, [[10 * 16 / 20 - 4, 5 * 8 / 10]])


# ---------------------------------------------------------------- the public downloads as they unpack


def test_published_imagenet_style_folder(tmp_path):
    task = image_folder_task(published.imagenet_style(tmp_path))  # upper-case .JPEG, val/ for the test split
    assert task.classes == ("n01440764", "n01443537") and len(task.trainval) == 6
    assert [Path(it.path).name for it in task.test] == [
        "ILSVRC2012_val_00000293.JPEG",
        "ILSVRC2012_val_00002138.JPEG",
        "ILSVRC2012_val_00000236.JPEG",
    ]
    assert task.targets("test").tolist() == [0, 0, 1]


def test_published_caltech101(tmp_path):
    task = caltech101_task(published.caltech101(tmp_path), mode="corrected", per_class=4)
    assert task.classes == published.CALTECH_CLASSES  # BACKGROUND_Google and Faces_easy are classes as in the paper
    assert len(task.trainval) == 4 * 5 and len(task.test) == 2 * 5
    assert all(Path(it.path).name.startswith("image_00") for it in task.test)


def test_published_flowers102(tmp_path):
    task = flowers102_task(published.flowers102(tmp_path), mode="corrected")
    assert task.classes == ("1", "77", "102") and task.metric == "mean_per_class_accuracy"
    assert [Path(it.path).name for it in task.trainval] == [f"image_{i:05d}.jpg" for i in range(1, 7)]
    assert task.targets("trainval").tolist() == [1, 1, 0, 0, 2, 2]


def test_published_300w(tmp_path):
    task = w300_task(published.w300(tmp_path), mode="corrected")
    assert len(task.trainval) + len(task.test) == 10 and len(task.target_names) == 136
    assert {Path(it.path).parent.name for it in task.trainval + task.test} == {"01_Indoor", "02_Outdoor"}


def test_published_celeba_authors_folders(tmp_path):
    """The authors' Drive folder: Img/img_align_celeba/, Anno/ and Eval/ (torchvision flattens them into one)."""
    root = published.celeba(tmp_path)
    task = celeba_task(root)
    assert len(task.trainval) == 4 and len(task.test) == 2
    assert Path(task.trainval[0].path) == root / "Img" / "img_align_celeba" / "000001.jpg"
    side = published.SIDE
    np.testing.assert_allclose(task.trainval[0].target[:4], np.array([2, 3, 5, 3]) * 224 / side)


def test_published_causal3dident(tmp_path):
    root = published.causal3dident(tmp_path, per_class=(12, 3))  # 12 images: index 10 sorts after 9 (zero-padded)
    task = causal3dident_task(root, target=[7, 8])
    latents = np.concatenate([np.load(root / "trainset" / f"latents_{c}.npy") for c in (0, 1)])
    np.testing.assert_allclose(task.targets("trainval"), latents[:, [7, 8]])
    assert Path(task.trainval[10].path).name == "000010.png" and task.target_names == ("object_hue", "spotlight_hue")
